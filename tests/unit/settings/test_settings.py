"""One home per setting: the schema, the command line, the dataclasses and the workflow all come from
:mod:`spockmip.settings`, and its rules refuse what the schema cannot."""

from __future__ import annotations

import copy
import difflib
import re
import subprocess
import sys

import pytest
import yaml
from import_helpers import heavy_modules_after
from paths import ROOT
from snakemake.utils import update_config, validate

from spockmip.errors import SettingsError
from spockmip.settings import lookup
from spockmip.settings.schema import schema_yaml
from spockmip.settings.workflow import WorkflowSettings, validated_settings

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def test_the_committed_schema_is_generated_from_the_settings() -> None:
    committed, generated = SCHEMA.read_text(), schema_yaml()
    diff = "".join(
        difflib.unified_diff(committed.splitlines(True), generated.splitlines(True), "committed", "generated")
    )
    assert committed == generated, f"run python workflow/schemas/generate.py; the difference:\n{diff}"
    result = subprocess.run(
        [sys.executable, str(SCHEMA.with_name("generate.py")), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_reads_its_config_only_through_the_settings() -> None:
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not re.search(r"\bconfig(\[|\.get\b|\.items\b)", line), f"{path}:{number}: {line}"
    for path in sorted((ROOT / "workflow" / "scripts").glob("*.py")):
        assert "snakemake.config" not in path.read_text(), path


def test_the_train_command_has_an_option_for_every_training_setting() -> None:
    from spockmip.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # the train sub-parser
    options = {option for action in train._actions for option in action.option_strings}
    assert {setting.option for setting in lookup.training_settings().values()} <= options


def test_the_library_defaults_are_the_settings_defaults() -> None:
    from spockmip.objective.deformation import DeformationConfig
    from spockmip.objective.losses import LossConfig
    from spockmip.training.trainer import TrainingConfig, training_config_from_settings

    assert training_config_from_settings({}) == TrainingConfig()
    assert LossConfig().level_weights == lookup.default("training", "level_weights")
    assert DeformationConfig().spacings == lookup.default("training", "deformation_spacings")


def test_the_phantom_generator_has_one_default() -> None:
    from spockmip.datasets.synthetic import PhantomConfig

    config = PhantomConfig()
    assert config.shape == lookup.default("dataset.synthetic", "shape")
    assert config.n_roots == lookup.default("dataset.synthetic", "trees")
    assert config.spacing_mm == (lookup.default("dataset.synthetic", "spacing_mm"),) * 3


def _validated(**sections: dict) -> WorkflowSettings:
    config = copy.deepcopy(sections)
    validate(config, str(SCHEMA))
    return WorkflowSettings(config)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"training": {"learning_rate": float("nan")}}, "config training.learning_rate: not a finite"),
        ({"training": {"gradient_clip": float("inf")}}, "config training.gradient_clip: not a finite"),
        ({"training": {"strides": [80, 16, 16]}}, "config training.strides: [80, 16, 16] exceed"),
        ({"inference": {"patch_size": [32, 32, 32], "strides": [48, 16, 16]}}, "config inference.strides"),
        (
            {"training": {"patch_size": [64, 64, 32]}, "variants": {"m": {"model": "unet", "mip_axis": "z"}}},
            "config training.mip_pairing: released needs a cubic config training.patch_size",
        ),
        ({"variants": {"m": {"model": "unet", "baseline": "x"}}}, "config variants.m.baseline"),
        ({"dataset": {"download": True}}, "config dataset.download"),
        (
            {"training": {"patch_size": [128, 128, 128]}},
            "config training.patch_size: [128, 128, 128] is larger",
        ),
        (
            {"variants": {"m": {"model": "unet", "cldice_weight": 0.5}}},
            "config variants.m.cldice_weight: has no effect unless variants.m.skeleton_loss is cldice "
            "(variant m)",
        ),
        (
            {"variants": {"m": {"model": "unet", "skeleton_loss": "cldice", "skeleton_recall_smooth": 1e-4}}},
            "config variants.m.skeleton_recall_smooth: has no effect unless variants.m.skeleton_loss is "
            "skeleton_recall",
        ),
        (
            {"variants": {"m": {"model": "unet", "skeleton_loss": "skeleton_recall", "cldice_smooth": 2}}},
            "config variants.m.cldice_smooth: has no effect unless variants.m.skeleton_loss is cldice",
        ),
    ],
)
def test_the_rules_between_settings_name_the_key(sections: dict, message: str) -> None:
    workflow = _validated(**sections)
    with pytest.raises(SettingsError) as raised:
        workflow.check()
    assert str(raised.value).startswith(message), raised.value


def test_a_validated_variant_holds_what_was_written_and_a_selected_terms_settings_pass() -> None:
    """Snakemake fills the schema's defaults into the config; a variant's keys have none, so the rules can
    tell what its author wrote from a default (a continuity term's settings without the term)."""
    written = {"model": "unet", "skeleton_loss": "cldice", "cldice_iterations": 3}
    recall = {"model": "unet", "skeleton_loss": "skeleton_recall", "skeleton_recall_weight": 0.0}
    workflow = _validated(variants={"c": dict(written), "s": recall})
    workflow.check()
    assert workflow.variant_keys("c") == sorted(written)
    assert workflow.training("c")["cldice_weight"] == 0.5 and workflow.training("c")["cldice_iterations"] == 3
    assert workflow.training("s")["skeleton_recall_weight"] == 0.0
    assert lookup.default("training", "skeleton_loss") == "none"
    assert lookup.default("training", "cldice_weight") == 0.5
    assert lookup.default("training", "skeleton_recall_weight") == 1.0


def test_every_shipped_config_passes_every_rule() -> None:
    """Each config alone where it stands alone, each overlay on the config it is written for, through the
    one path every config takes (the schema with its maxima, then the rules)."""
    overlays = {"demo_seeds.yaml": "config.yaml", "paper_corrected.yaml": "paper.yaml"}
    for path in sorted((ROOT / "config").glob("*.yaml")):
        config = yaml.safe_load((ROOT / "config" / overlays.get(path.name, path.name)).read_text())
        if path.name in overlays:
            update_config(config, yaml.safe_load(path.read_text()))
        validated_settings(config, str(path))


def test_building_the_command_line_imports_nothing_heavy() -> None:
    assert heavy_modules_after("from spockmip.cli import build_parser; build_parser()") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"postprocessing": {"region_mask": True}},
            r"config postprocessing.region_mask: only a local data set provides region masks .* "
            "dataset.source is synthetic",
        ),
        (
            {"evaluation": {"radius_edges_mm": [0.6, 0.3]}},
            r"config evaluation.radius_edges_mm: \[0.6, 0.3\] must be two increasing distances in mm",
        ),
        ({"evaluation": {"radius_edges_mm": [0.3]}}, r"config evaluation.radius_edges_mm.*too short"),
        (
            {"postprocessing": {"selection_metric": "iou"}},
            r"postprocessing.selection_metric: 'iou' is not one of",
        ),
    ],
)
def test_continuity_and_postprocessing_settings_are_checked(change: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        validated_settings(change)
