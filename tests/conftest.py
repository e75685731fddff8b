"""Shared fixtures: a small phantom data set written to disk once per test session."""

from pathlib import Path
from typing import Any

import pytest
import torch

from spockmip.datasets.synthetic import PhantomConfig, write_phantom_dataset

PHANTOM_SHAPE = (48, 48, 32)


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 48×48×32 phantoms: images/<id>.nii.gz and labels/<id>.nii.gz."""
    folder = tmp_path_factory.mktemp("phantoms") / "data"
    write_phantom_dataset(folder, n_subjects=4, seed=7, config=PhantomConfig(shape=PHANTOM_SHAPE))
    return folder


@pytest.fixture
def compile_without_codegen(monkeypatch: pytest.MonkeyPatch) -> list[torch.nn.Module]:
    """``torch.compile`` through dynamo's eager backend, recording what it compiles.

    The compiled code paths run (graph capture, guards, recompilation), without the minutes inductor's
    code generation takes on a CPU; the graph runs the same kernels, so results stay bit-identical.
    """
    compiled: list[torch.nn.Module] = []
    compile_ = torch.compile

    def eager(model: torch.nn.Module, **options: Any) -> torch.nn.Module:
        compiled.append(model)
        torch._dynamo.reset()
        return compile_(model, backend="eager", **options)

    monkeypatch.setattr(torch, "compile", eager)
    return compiled
