"""`spockmip train --config/--variant/--split/--fold` trains what the workflow trains, options override.

The settings → TrainingConfig path exists once (:func:`spockmip.settings.lookup.variant_settings` and
:func:`spockmip.training.trainer.training_config_from_settings`); these tests hold the command line and the
workflow to it.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from cli_helpers import spockmip
from snakemake.utils import validate

from spockmip.cli import _train_settings, build_parser
from spockmip.data.splits import make_split, write_split
from spockmip.errors import SettingsError
from spockmip.settings.lookup import variant_settings
from spockmip.training.trainer import training_config_from_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "dataset": {"name": "cli"},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "batch_size": 4,
                 "patches_per_epoch": 8, "epochs": 1, "seed": 5},
    "variants": {
        "plain": {"model": "unet"},
        "mip": {"model": "unetmss", "mip_axis": "z", "epochs": 2, "baseline": "plain"},
    },
}  # fmt: skip


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(SETTINGS, sort_keys=False))
    return path


@pytest.fixture
def split_file(tmp_path: Path) -> Path:
    path = tmp_path / "splits.json"
    write_split(make_split(["phantom000", "phantom001", "phantom002", "phantom003"], 3, 1, 1), path)
    return path


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


def test_train_from_the_settings_file_and_the_split(
    phantom_dir: Path, settings_file: Path, split_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = spockmip("train", "--data", str(phantom_dir), "--config", str(settings_file),
                      "--variant", "mip", "--split", str(split_file), "--fold", "1", "--out", str(out),
                      "--patches-per-epoch", "4", "--threads", "1", "--no-progress")  # fmt: skip
    assert result.returncode == 0, result.stderr
    state = torch.load(out / "state" / "checkpoint.pt", weights_only=False)
    expected = training_config_from_settings({**variant_settings(SETTINGS, "mip"), "patches_per_epoch": 4})
    assert state["fingerprint"] == expected.fingerprint()
    fold = make_split(["phantom000", "phantom001", "phantom002", "phantom003"], 3, 1, 1)["folds"][1]
    assert state["data"]["fold"] == 1
    assert [entry[0] for entry in state["data"]["train"]] == fold["train"]
    assert [entry[0] for entry in state["data"]["validation"]] == fold["validation"]
    assert len(state["history"]) == 2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--variant", "nope"], "variants.nope: no such variant"),
        ([], "give --variant, one of plain, mip"),
        (["--variant", "plain", "--fold", "0"], "--fold: needs --split"),
        (["--variant", "plain", "--split", "SPLIT"], "--split: needs --fold"),
        (["--variant", "plain", "--split", "SPLIT", "--fold", "7"], "no fold 7"),
        (["--variant", "plain", "--split", "SPLIT", "--fold", "0", "--train", "phantom000"], "not both"),
    ],
)
def test_bad_settings_fail_with_one_line_and_write_nothing(
    phantom_dir: Path,
    settings_file: Path,
    split_file: Path,
    tmp_path: Path,
    arguments: list[str],
    message: str,
) -> None:
    arguments = [str(split_file) if a == "SPLIT" else a for a in arguments]
    out = tmp_path / "run"
    result = spockmip("train", "--data", str(phantom_dir), "--config", str(settings_file),
                      "--output", str(out), *arguments)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("spockmip train: error: ") and message in lines[0]
    assert not out.exists()


def test_an_unknown_key_is_named(phantom_dir: Path, tmp_path: Path) -> None:
    bad = copy.deepcopy(SETTINGS)
    bad["variants"]["plain"]["epoch"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    out = tmp_path / "run"
    result = spockmip("train", "--data", str(phantom_dir), "--config", str(path), "--variant", "plain",
                      "--train", "phantom000", "--validation", "phantom001",
                      "--output", str(out))  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert str(path) in lines[0] and "epoch: unknown training setting" in lines[0]
    assert not out.exists()


def test_a_continuity_setting_without_its_term_is_refused_from_either_door(settings_file: Path) -> None:
    continuity = copy.deepcopy(SETTINGS)
    continuity["variants"]["cl"] = {"model": "unet", "skeleton_loss": "cldice", "cldice_iterations": 3}
    continuity["variants"]["stray"] = {"model": "unet", "cldice_iterations": 3}
    settings_file.write_text(yaml.safe_dump(continuity, sort_keys=False))
    file = ("--config", str(settings_file), "--variant")
    chosen = _config(*file, "cl")
    assert chosen.loss.skeleton_loss == "cldice" and chosen.loss.cldice_iterations == 3
    assert chosen.loss.cldice_weight == 0.5
    with pytest.raises(SettingsError) as raised:
        _config(*file, "stray")
    assert str(raised.value) == (
        f"{settings_file}: variants.stray.cldice_iterations: has no effect unless --skeleton-loss is cldice"
    )
    assert _config(*file, "stray", "--skeleton-loss", "cldice").loss.cldice_iterations == 3
    with pytest.raises(SettingsError) as raised:
        _config(*file, "cl", "--skeleton-recall-weight", "2")
    assert str(raised.value) == (
        f"--skeleton-recall-weight: has no effect unless {settings_file}: variants.cl.skeleton_loss is "
        "skeleton_recall"
    )
    with pytest.raises(
        SettingsError, match=r"^--cldice-weight: has no effect unless --skeleton-loss is cldice"
    ):
        _config("--cldice-weight", "0.5")
    with pytest.raises(SettingsError, match=r"^--cldice-smooth: .* unless --skeleton-loss is cldice$"):
        _config("--skeleton-loss", "skeleton_recall", "--cldice-smooth", "2")
    selected = _config("--skeleton-loss", "skeleton_recall", "--skeleton-recall-weight", "0")
    assert selected.loss.needs_tube and selected.loss.skeleton_recall_weight == 0.0


def test_the_train_command_refuses_a_stray_continuity_setting_in_one_line(
    phantom_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    result = spockmip("train", "--data", str(phantom_dir), "--train", "phantom000", "--validation",
                      "phantom001", "--output", str(out), "--skeleton-recall-smooth", "1e-4")  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0] == (
        "spockmip train: error: --skeleton-recall-smooth: has no effect unless --skeleton-loss is "
        "skeleton_recall"
    )
    assert not out.exists()


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
