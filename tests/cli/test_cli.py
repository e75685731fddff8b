"""The command line must write datasets, explain every command, and fail cleanly without leftovers."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spockmip import __version__
from spockmip.cli import build_parser, main
from spockmip.datasets.synthetic import subject_seed

SMALL_SHAPE = ["40", "36", "24"]
CONSOLE_SCRIPT = Path(sys.executable).parent / "spockmip"


def _command_names() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def test_synth_through_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    argv = ["synth", "--out", str(out), "--n-subjects", "2", "--seed", "4", "--shape", *SMALL_SHAPE]
    assert main([*argv, "--spacing", "0.4"]) == 0
    printed = capsys.readouterr().out
    for subject in ("phantom000", "phantom001"):
        for kind in ("images", "labels"):
            path = out / kind / f"{subject}.nii.gz"
            assert path.is_file()
            assert str(path) in printed
            image = nib.load(path)
            assert image.shape == (40, 36, 24)
            assert image.header.get_zooms() == pytest.approx((0.4, 0.4, 0.4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"], "staging directory left behind"


def test_synth_trees_default_is_the_generators_and_is_used(tmp_path: Path) -> None:
    from spockmip.datasets.synthetic import PhantomConfig, generate_phantom
    from spockmip.settings.lookup import default

    assert PhantomConfig().n_roots == default("dataset.synthetic", "trees")
    out = tmp_path / "data"
    argv = ["synth", "--out", str(out), "--n-subjects", "1", "--shape", *SMALL_SHAPE, "--trees", "1"]
    assert main(argv) == 0
    written = np.asanyarray(nib.load(out / "labels" / "phantom000.nii.gz").dataobj)
    config = PhantomConfig(shape=(40, 36, 24), n_roots=1)
    seed = default("dataset.synthetic", "seed")
    assert np.array_equal(written, generate_phantom(subject_seed(seed, 0), config).label)


def test_synth_through_console_script(tmp_path: Path) -> None:
    assert CONSOLE_SCRIPT.is_file(), f"console script not installed at {CONSOLE_SCRIPT}"
    out = tmp_path / "data"
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "synth", "--out", str(out), "--n-subjects", "1", "--shape", *SMALL_SHAPE],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (out / "images" / "phantom000.nii.gz").is_file()
    assert (out / "labels" / "phantom000.nii.gz").is_file()
    assert "phantom000" in result.stdout


def test_commands_are_registered() -> None:
    assert "synth" in _command_names()


@pytest.mark.parametrize("command", [[], *[[name] for name in _command_names()]])
def test_help_on_every_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    assert "usage: spockmip" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"spockmip {__version__}"


def test_missing_command_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) != 0
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shape", "0", "40", "40"], "less than the minimum of 16"),
        (["--shape", "-3", "40", "40"], "less than the minimum of 16"),
        (["--shape", "8", "40", "40"], "less than the minimum of 16"),
        (["--shape", "40", "40"], "takes 1 or 3 values"),
        (["--shape", "40", "x", "40"], "not an integer"),
        (["--n-subjects", "0"], "less than the minimum of 1"),
        (["--seed", "-1"], "less than the minimum of 0"),
        (["--spacing", "-0.3"], "less than the minimum of 0.001"),
        (["--spacing", "nan"], "not a finite number"),
        (["--spacing", "1e-300"], "--spacing: 1e-300 is less than the minimum of 0.001"),
    ],
)
def test_bad_arguments_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["synth", "--out", str(tmp_path / "data"), "--shape", *SMALL_SHAPE, *extra]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err and "error" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_missing_out_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--shape", *SMALL_SHAPE]) != 0
    assert "--out" in capsys.readouterr().err


def test_existing_output_is_not_touched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["synth", "--out", str(out), "--shape", *SMALL_SHAPE]) == 1
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_bad_arguments_through_console_script_have_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "synth", "--out", str(tmp_path / "data"), "--shape", "8", "8", "8"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "error" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("problem", ["missing", "both"])
def test_train_names_the_label_file_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    data = tmp_path / "data"
    assert main(["synth", "--out", str(data), "--n-subjects", "2", "--shape", *SMALL_SHAPE]) == 0
    label = data / "labels" / "phantom001.nii.gz"
    if problem == "missing":
        label.unlink()
        expected = f"{label}: not found (nor .nii); --data holds images/<id>.nii[.gz]"
    else:
        nib.save(nib.load(label), data / "labels" / "phantom001.nii")
        expected = f"{data / 'labels'}: both phantom001.nii.gz and phantom001.nii exist for phantom001"
    capsys.readouterr()
    argv = ["train", "--data", str(data), "--train", "phantom000", "--validation", "phantom001"]
    assert main([*argv, "--output", str(tmp_path / "run"), "--epochs", "1"]) != 0
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
