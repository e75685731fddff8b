"""Provenance records, from a real workflow run twice: two copies of a small project at different paths,
run with different --cores under different host names, make the same computation. Their records differ
only in the fields that may differ between machines, and their checkpoints are byte-identical."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from workflow_helpers import copy_project, snakemake

from spockmip.cli import main
from spockmip.runtime.records import HOSTNAME_VARIABLE, machine_dependent

# One variant, one pair of folds, one epoch, three 48x48x32 phantoms (one for testing); no loader processes
# and no Betti matching error, which only cost time here.
CONFIG = {
    "dataset": {"name": "demo", "source": "synthetic",
                "synthetic": {"n_subjects": 3, "seed": 3, "shape": [48, 48, 32], "spacing_mm": 0.3}},
    "split": {"folds": 2, "seed": 1, "test_subjects": 1},
    "training": {"init_features": 2, "patch_size": [32, 32, 32], "strides": [16, 16, 16], "batch_size": 4,
                 "epochs": 1, "patches_per_epoch": 8, "learning_rate": 1.0e-3, "queue_workers": 0},
    "evaluation": {"betti_matching": False},
    "variants": {"unet": {"model": "unet"}},
    "inference": {"patch_size": [32, 32, 32], "strides": [16, 16, 16]},
    "resources": {"train": {"threads": 1}, "predict": {"threads": 1}},
}  # fmt: skip
# The per-fold summary table: it needs every training, prediction set and scoring of the variant.
TARGET = "results/demo/tables/summary.provenance.json"
RUNS = [f"results/demo/unet/fold{fold}" for fold in (0, 1)]
RECORDS = sorted(
    [
        TARGET,
        "results/demo/unet/ensemble/predictions/provenance.json",
        *(f"{run}/{folder}/provenance.json" for run in RUNS for folder in ("model", "predictions")),
        *(f"{run}/validation/predictions/provenance.json" for run in RUNS),
    ]
)
CHECKPOINTS = [f"{run}/model/{name}" for run in RUNS for name in ("best.pt", "final.pt")]


def _run(workdir: Path, cores: str, host: str) -> None:
    env = {**os.environ, HOSTNAME_VARIABLE: host}
    snakemake(workdir, "--cores", cores, TARGET, "--configfile", "config/test.yaml", env=env)


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The two copies, run at the same time (each job has one thread either way)."""
    first = copy_project(tmp_path_factory.mktemp("first") / "project", CONFIG)
    second = copy_project(tmp_path_factory.mktemp("second") / "elsewhere" / "project", CONFIG)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(_run, first, "1", "host-one"), pool.submit(_run, second, "2", "host-two")]
        for run in runs:
            run.result()
    return first, second


def _records(workdir: Path) -> dict[str, dict[str, Any]]:
    found = sorted(workdir.glob("results/**/*provenance.json"))
    return {str(path.relative_to(workdir)): json.loads(path.read_text()) for path in found}


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted field, value) of every leaf of a record; lists are leaves."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def _differing(first: Mapping[str, Any], second: Mapping[str, Any]) -> set[str]:
    ours, theirs = dict(_leaves(first)), dict(_leaves(second))
    return {field for field in ours.keys() | theirs.keys() if ours.get(field, KeyError) != theirs.get(field)}


def test_the_two_copies_records_differ_in_machine_fields_only(copies: tuple[Path, Path]) -> None:
    first, second = (_records(workdir) for workdir in copies)
    assert sorted(first) == sorted(second) == RECORDS
    for name, record in first.items():
        differing = _differing(record, second[name])
        assert "machine.host" in differing, (name, "the fake host names must show")
        assert all(machine_dependent(field) for field in differing), (name, sorted(differing))
        assert record["machine"]["host"] == "host-one" and second[name]["machine"]["host"] == "host-two"
        assert record["run"]["wall_seconds"] > 0 and record["run"]["peak_memory_mib"]["self"] > 0
        assert record["versions"]["packages"]["torch"] == torch.__version__
        for path in [*record["inputs"], *record["outputs"]]:
            assert not Path(path).is_absolute() and (copies[0] / path).is_file(), (name, path)
    # What the fixed fields hold: the training's images, labels and split; a table's inputs.
    training = first["results/demo/unet/fold0/model/provenance.json"]
    assert training["kind"] == "training" and training["settings"]["epochs"] == 1
    assert "results/demo/splits.json" in training["inputs"]
    assert sum(path.startswith("resources/demo/images/") for path in training["inputs"]) == 2
    assert training["run"]["epochs_trained"] == 1 and training["run"]["epochs_resumed"] == 0
    prediction = first["results/demo/unet/ensemble/predictions/provenance.json"]
    assert sorted(p for p in prediction["inputs"] if p.endswith(".pt")) == [
        f"{run}/model/best.pt" for run in RUNS
    ]
    assert list(prediction["thresholds"]) == [p for p in prediction["outputs"] if p.endswith(".nii.gz")]
    table = first[TARGET]
    assert table["kind"] == "table" and table["machine"]["device"] is None
    assert set(table["outputs"]) == {f"results/demo/tables/{n}" for n in ("metrics.csv", "summary.csv",
                                     "summary.md", "summary.tex", "summary.html")}  # fmt: skip


def test_every_recorded_hash_is_the_files(copies: tuple[Path, Path]) -> None:
    workdir = copies[0]
    for name, record in _records(workdir).items():
        for path, digest in {**record["inputs"], **record["outputs"]}.items():
            assert hashlib.sha256((workdir / path).read_bytes()).hexdigest() == digest, (name, path)


def test_identical_reruns_write_byte_identical_checkpoints_that_carry_the_fixed_part(
    copies: tuple[Path, Path],
) -> None:
    first, second = copies
    record = json.loads((first / RUNS[0] / "model" / "provenance.json").read_text())
    for name in CHECKPOINTS:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    carried = torch.load(first / CHECKPOINTS[0], weights_only=True)["provenance"]
    assert set(carried) == {"format", "kind", "code", "settings", "identity", "versions"}
    assert carried["code"] == {key: value for key, value in record["code"].items() if key != "git"}
    assert all(carried[key] == record[key] for key in ("format", "kind", "settings", "identity", "versions"))
    assert not any(field.startswith(("machine", "run")) for field, _ in _leaves(carried))


def test_the_command_prints_a_record_and_refuses_a_file_without_one(
    copies: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    first = copies[0]
    checkpoint = first / CHECKPOINTS[0]
    assert main(["provenance", str(checkpoint)]) == 0
    assert json.loads(capsys.readouterr().out) == torch.load(checkpoint, weights_only=True)["provenance"]
    assert main(["provenance", str(first / TARGET)]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((first / TARGET).read_text())
    for path in (first / "results/demo/splits.json", first / RUNS[0] / "state" / "checkpoint.pt"):
        assert main(["provenance", str(path)]) == 1
        error = capsys.readouterr().err
        assert error.splitlines() == [
            f"spockmip provenance: error: {path}: holds no spockmip provenance record"
        ]


def test_the_report_shows_the_records_behind_the_table(copies: tuple[Path, Path]) -> None:
    first = copies[0]
    snakemake(first, TARGET, "--configfile", "config/test.yaml", "--report", "report.html")
    html = (first / "report.html").read_text()
    assert '"Provenance": {"Tables": ["results/demo/tables/summary.provenance.json"]' in html
    for run in RUNS:
        assert f"{run}/model/provenance.json" in html
    assert "its provenance record" in html, "the table's caption links its record"
