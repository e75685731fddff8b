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
from train_settings_helpers import SETTINGS

from spockmip.data.splits import make_split, write_split
from spockmip.settings.lookup import variant_settings
from spockmip.training.trainer import training_config_from_settings


@pytest.fixture
def split_file(tmp_path: Path) -> Path:
    path = tmp_path / "splits.json"
    write_split(make_split(["phantom000", "phantom001", "phantom002", "phantom003"], 3, 1, 1), path)
    return path


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
    assert f"{path}: variants.plain: " in lines[0] and "'epoch' was unexpected" in lines[0]
    assert not out.exists()


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
