"""`spockmip train --config/--variant` builds the TrainingConfig the workflow builds, options override.

The settings → TrainingConfig path exists once (:func:`spockmip.settings.lookup.variant_settings` and
:func:`spockmip.training.trainer.training_config_from_settings`); these tests hold the command line's
reading of a settings file, and the workflow's schema defaults, to it without running the command
(tests/cli/test_train_settings.py runs it).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from paths import ROOT
from snakemake.utils import validate
from train_settings_helpers import SETTINGS

from spockmip.cli import _train_settings, build_parser
from spockmip.errors import SettingsError
from spockmip.settings.lookup import complete_training, variant_settings
from spockmip.training.trainer import training_config_from_settings


def _config(*argv: str):
    return training_config_from_settings(
        *_train_settings(build_parser().parse_args(["train", "--data", "d", "--output", "o", *argv]))
    )


def test_the_command_line_builds_the_workflows_config_and_options_override(settings_file: Path) -> None:
    for name in SETTINGS["variants"]:
        workflow = training_config_from_settings(variant_settings(SETTINGS, name))
        assert _config("--config", str(settings_file), "--variant", name) == workflow
    mip = training_config_from_settings(variant_settings(SETTINGS, "mip"))
    assert mip.epochs == 2 and mip.init_features == 2 and mip.loss.mip_axis == "z" and mip.seed == 5
    overridden = _config("--config", str(settings_file), "--variant", "mip", "--epochs", "3", "--deform",
                         "--patch-size", "48", "--mip-axis", "none")  # fmt: skip
    assert overridden.epochs == 3 and overridden.deform and overridden.patch_size == (48, 48, 48)
    assert overridden.loss.mip_axis == "none" and overridden.init_features == 2 and overridden.seed == 5
    assert _config() == training_config_from_settings({})


def test_the_workflow_schemas_defaults_change_nothing() -> None:
    """The workflow fills in the schema's defaults; the command line reads the file as written."""
    for name in ("config.yaml", "paper.yaml", "paper_corrected.yaml"):
        written = yaml.safe_load((ROOT / "config" / name).read_text())
        validated = copy.deepcopy(written)
        validate(validated, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
        for variant in written["variants"]:
            assert training_config_from_settings(
                variant_settings(written, variant)
            ) == training_config_from_settings(variant_settings(validated, variant)), (name, variant)


def test_a_continuity_setting_without_its_term_is_refused_from_either_door(settings_file: Path) -> None:
    """A file the workflow refuses (a variant with a continuity setting but not its term) is refused
    whichever variant is chosen, as the workflow words it; in a valid file, an option that has no effect
    without the term is refused naming the option and the file's key."""
    continuity = copy.deepcopy(SETTINGS)
    continuity["variants"]["cl"] = {"model": "unet", "skeleton_loss": "cldice", "cldice_iterations": 3}
    settings_file.write_text(yaml.safe_dump(continuity, sort_keys=False))
    file = ("--config", str(settings_file), "--variant")
    chosen = _config(*file, "cl")
    assert chosen.loss.skeleton_loss == "cldice" and chosen.loss.cldice_iterations == 3
    assert chosen.loss.cldice_weight == 0.5
    with pytest.raises(SettingsError) as raised:
        _config(*file, "cl", "--skeleton-recall-weight", "2")
    assert str(raised.value) == (
        f"--skeleton-recall-weight: has no effect unless {settings_file}: variants.cl.skeleton_loss is "
        "skeleton_recall"
    )
    continuity["variants"]["stray"] = {"model": "unet", "cldice_iterations": 3}
    settings_file.write_text(yaml.safe_dump(continuity, sort_keys=False))
    for variant in ("stray", "cl"):
        with pytest.raises(SettingsError) as raised:
            _config(*file, variant, "--skeleton-loss", "cldice")
        assert str(raised.value) == (
            f"{settings_file}: variants.stray.cldice_iterations: has no effect unless "
            "variants.stray.skeleton_loss is cldice (variant stray)"
        )
    with pytest.raises(
        SettingsError, match=r"^--cldice-weight: has no effect unless --skeleton-loss is cldice"
    ):
        _config("--cldice-weight", "0.5")
    with pytest.raises(SettingsError, match=r"^--cldice-smooth: .* unless --skeleton-loss is cldice$"):
        _config("--skeleton-loss", "skeleton_recall", "--cldice-smooth", "2")
    selected = _config("--skeleton-loss", "skeleton_recall", "--skeleton-recall-weight", "0")
    assert selected.loss.needs_tube and selected.loss.skeleton_recall_weight == 0.0


def test_compile_flows_from_the_settings_file_and_the_command_line(settings_file: Path) -> None:
    """``compile`` is a training setting like the others: the schema's default, the file, the option."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["training"]["properties"]["compile"]["default"] is False
    assert not _config("--config", str(settings_file), "--variant", "mip").compile
    compiled = {**SETTINGS, "training": {**SETTINGS["training"], "compile": True}}
    assert training_config_from_settings(variant_settings(compiled, "plain")).compile
    settings_file.write_text(yaml.safe_dump(compiled, sort_keys=False))
    assert _config("--config", str(settings_file), "--variant", "mip").compile
    assert not _config("--config", str(settings_file), "--variant", "mip", "--no-compile").compile
    assert _config("--compile").compile


def test_a_training_config_gives_back_the_flat_settings_it_was_built_from() -> None:
    """What the trainer describes at the start of a run (:meth:`TrainingConfig.settings`) is what the
    workflow described for the variant before any job ran."""
    for name in ("paper.yaml", "paper_corrected.yaml", "continuity.yaml"):
        written = yaml.safe_load((ROOT / "config" / name).read_text())
        for variant in written["variants"]:
            given = variant_settings(written, variant)
            settings = complete_training(given)
            config = training_config_from_settings(settings, given=set(given))
            assert config.settings() == settings, (name, variant)
