"""Provenance records: what they hold, where they name files, and what they refuse to read."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from paths import ROOT

from spockmip.errors import DataError
from spockmip.runtime import records
from spockmip.runtime.records import (
    HOSTNAME_VARIABLE,
    MACHINE_FIELDS,
    Stopwatch,
    git_state,
    host_name,
    machine_dependent,
    read_record,
    shown_path,
    write_file_record,
)


def test_a_machine_field_covers_what_lies_under_it_and_nothing_else() -> None:
    assert machine_dependent("versions.packages.torch") and machine_dependent("run.peak_memory_mib.self")
    assert machine_dependent("machine.host")
    assert not machine_dependent("machine.hostname") and not machine_dependent("machine")
    assert not any(
        machine_dependent(f) for f in ("code.fingerprint", "code.git.commit", "inputs", "settings")
    )


def test_paths_are_named_relative_to_the_root_when_they_lie_under_it(tmp_path: Path) -> None:
    assert shown_path(tmp_path / "results" / "a.csv", tmp_path) == "results/a.csv"
    outside = tmp_path.parent / "elsewhere.csv"
    assert shown_path(outside, tmp_path) == str(outside)
    assert shown_path(tmp_path / "results" / ".." / "b.csv", tmp_path) == "b.csv"


def test_the_host_name_is_the_variables_where_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOSTNAME_VARIABLE, "container-7")
    assert host_name() == "container-7"
    monkeypatch.delenv(HOSTNAME_VARIABLE)
    assert host_name() and host_name() != "container-7"


def test_code_outside_git_or_without_git_records_no_commit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    git_state.cache_clear()
    try:
        if (ROOT / ".git").exists():
            assert re.fullmatch(r"[0-9a-f]{40}", git_state()["commit"])
        git_state.cache_clear()
        monkeypatch.setattr(records, "PACKAGE_DIR", tmp_path)
        assert git_state() is None
        git_state.cache_clear()
        monkeypatch.setattr(records, "PACKAGE_DIR", ROOT / "src" / "spockmip")
        monkeypatch.setenv("PATH", str(tmp_path))  # no git to run
        assert git_state() is None
    finally:
        git_state.cache_clear()


def test_a_table_record_hashes_its_files_and_reads_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("in.csv").write_text("a\n1\n")
    Path("out.csv").write_text("b\n2\n")
    watch = Stopwatch.start()
    settings = {"order": ("x", "y")}
    write_file_record(
        "out.provenance.json", "table", "0.1.0+abc", settings, ["in.csv"], ["out.csv"], watch, 1
    )
    record = read_record("out.provenance.json")
    assert record == json.loads(Path("out.provenance.json").read_text())
    assert record["kind"] == "table" and record["settings"] == {"order": ["x", "y"]}
    assert record["code"]["fingerprint"] == "0.1.0+abc" and record["machine"]["threads"] == 1
    assert list(record["inputs"]) == ["in.csv"] and list(record["outputs"]) == ["out.csv"]
    # This process has imported torch: its CUDA build is recorded; a table computes on no device.
    assert record["machine"]["device"] is None and record["versions"]["cuda"] == torch.version.cuda
    assert record["run"]["gpu_memory_mib"] is None and record["run"]["peak_memory_mib"]["self"] > 0
    assert record["run"]["started"] == watch.started


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("folder", "is a folder, not a file"),
        ("not json", "not a JSON file"),
        ('{"format": 1}', "holds no spockmip provenance record"),
        ({"state_dict": {}}, "holds no spockmip provenance record"),
        (b"\x00" * 64, "neither a JSON record nor a readable torch checkpoint"),
    ],
)
def test_a_file_without_a_record_is_refused_naming_it(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / ("thing.json" if isinstance(content, str) and content != "folder" else "thing.pt")
    if content == "folder":
        path.mkdir()
    elif isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(DataError, match=re.escape(f"{path}: {message}")):
        read_record(path)


def test_the_docs_list_the_machine_fields() -> None:
    docs = (ROOT / "docs" / "provenance.md").read_text().split("## Fields that may differ", 1)[1]
    listed = [line.split("`")[1] for line in docs.split("\n## ", 1)[0].splitlines() if line.startswith("| `")]
    assert listed == list(MACHINE_FIELDS)


def test_on_a_cuda_device_the_record_names_the_gpu_and_torchs_peak_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The GPU branch without a GPU: a stand-in for torch answers as a CUDA build with one device does."""
    cuda = SimpleNamespace(
        is_available=lambda: True,
        get_device_name=lambda device: f"Stand-in GPU ({device})",
        max_memory_allocated=lambda device: 3 * 2**20,
        max_memory_reserved=lambda device: 4 * 2**20,
    )
    stand_in = SimpleNamespace(
        cuda=cuda,
        device=lambda name: name,
        version=SimpleNamespace(cuda="12.8"),
        backends=SimpleNamespace(cudnn=SimpleNamespace(is_available=lambda: True, version=lambda: 91000)),
    )
    monkeypatch.setitem(sys.modules, "torch", stand_in)
    assert records.machine("cuda:0", 4)["gpu"] == "Stand-in GPU (cuda:0)"
    assert records.usage(Stopwatch.start(), "cuda:0")["gpu_memory_mib"] == {
        "max_allocated": 3.0,
        "max_reserved": 4.0,
    }
    assert (records.versions()["cuda"], records.versions()["cudnn"]) == ("12.8", 91000)
    assert (
        records.machine("cpu", 4)["gpu"] is None
        and records.usage(Stopwatch.start(), "cpu")["gpu_memory_mib"] is None
    )
