"""Every choice set is declared once, in the catalogue: each ``Literal`` that types a setting in the
library names exactly its catalogue tuple, and every numeric setting that could exhaust time or memory has
an upper bound that the shipped configs stay well under."""

from __future__ import annotations

import typing

import pytest
import yaml
from paths import ROOT

from spockmip.data import sampling
from spockmip.files import volumes
from spockmip.inference import windows
from spockmip.networks import unet
from spockmip.objective import deformation, losses
from spockmip.settings import catalogue
from spockmip.settings.lookup import training_settings
from spockmip.settings.setting import Setting
from spockmip.training import trainer

TIES = [
    (unet.Activation, catalogue.ACTIVATIONS),
    (unet.ModelName, catalogue.MODELS),
    (trainer.ValidationCriterion, catalogue.VALIDATION_CRITERIA),
    (trainer.ValidationGrid, catalogue.VALIDATION_GRIDS),
    (windows.Blend, catalogue.BLENDS),
    (volumes.Orientation, catalogue.ORIENTATIONS),
    (deformation.FieldKind, catalogue.DEFORMATIONS),
    (deformation.LabelMode, catalogue.LABEL_MODES),
    (deformation.ConsistencyTarget, catalogue.CONSISTENCY_TARGETS),
    (losses.MipTarget, catalogue.MIP_TARGETS),
    (losses.MipPairing, catalogue.MIP_PAIRINGS),
    (losses.BaselineScale, catalogue.BASELINE_SCALES),
    (losses.SkeletonLoss, catalogue.SKELETON_LOSSES),
    (sampling.Sampling, catalogue.SAMPLINGS),
]


@pytest.mark.parametrize(("alias", "choices"), TIES, ids=[str(alias) for alias, _ in TIES])
def test_each_literal_is_its_catalogue_tuple(alias, choices) -> None:
    assert typing.get_args(alias) == choices


def test_the_mip_pairings_computed_are_the_catalogues() -> None:
    assert tuple(losses._PROJECTIONS) == catalogue.MIP_PAIRINGS


# Settings that can exhaust time or memory, each bounded above.
BOUNDED = {
    "training": ["init_features", "patch_size", "strides", "batch_size", "epochs", "patches_per_epoch",
                 "seed", "queue_workers", "num_workers", "seeds", "cldice_iterations"],
    "dataset.synthetic": ["n_subjects", "seed", "shape", "trees"],
    "split": ["folds", "seed"],
    "inference": ["patch_size", "strides", "batch_size"],
    "statistics": ["bootstrap_samples", "seed"],
}  # fmt: skip


def _entries() -> dict[str, Setting]:
    tables = {
        "training": {**training_settings(), **catalogue.REPLICATES},
        "dataset.synthetic": catalogue.SYNTHETIC,
        "split": catalogue.SPLIT,
        "inference": catalogue.INFERENCE,
        "statistics": catalogue.STATISTICS,
    }
    return {
        f"{section}.{name}": tables[section][name] for section, names in BOUNDED.items() for name in names
    }


def _values(node, key: str = ""):
    """Every (key, number) of a YAML document, list items under their list's key."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _values(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _values(value, key)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield key, node


def test_every_setting_that_can_exhaust_time_or_memory_is_bounded_ten_times_above_the_shipped_configs() -> (
    None
):
    shipped: dict[str, float] = {}
    for path in sorted((ROOT / "config").glob("*.yaml")):
        for key, value in _values(yaml.safe_load(path.read_text())):
            shipped[key] = max(shipped.get(key, value), value)
    for key, setting in _entries().items():
        assert setting.maximum is not None, key
        defaults = setting.default if isinstance(setting.default, tuple) else (setting.default or 0,)
        largest = max(shipped.get(setting.name, 0), *defaults)
        assert setting.maximum >= 10 * largest, (key, setting.maximum, largest)


def test_seeds_stay_within_what_every_generator_accepts() -> None:
    import numpy as np
    import torch

    for key, setting in _entries().items():
        if key.endswith("seed") or key.endswith("seeds"):
            torch.Generator().manual_seed(setting.maximum)
            np.random.SeedSequence(setting.maximum)
            np.random.RandomState(setting.maximum)
            torch.Generator().manual_seed(setting.maximum + catalogue.MAX_WORKERS)
