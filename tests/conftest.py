"""Shared fixtures: a small phantom data set written to disk once per test session."""

import shutil
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


WORKFLOW_TESTS = Path(__file__).resolve().parent / "workflow"


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test under tests/workflow/ runs Snakemake and gets the ``workflow`` marker, whatever its file
    declares: ``-m workflow`` selects them all and ``-m "not workflow"`` leaves them all out."""
    if item.path.is_relative_to(WORKFLOW_TESTS):
        item.add_marker(pytest.mark.workflow)


@pytest.fixture(scope="module")
def fold_weights(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two width-2 UNet3D checkpoints that record no window geometry."""
    from spockmip.networks.unet import build_model
    from spockmip.networks.weights import spec_of

    folder = tmp_path_factory.mktemp("folds")
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build_model("unet", init_features=2)
        paths.append(folder / f"fold{seed}.pt")
        torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": model.state_dict()}, paths[-1])
    return paths


@pytest.fixture
def images(phantom_dir: Path, tmp_path: Path) -> Path:
    """A folder of two phantom images (:data:`predict_helpers.SUBJECTS`) and a file that is not a volume."""
    from predict_helpers import SUBJECTS

    folder = tmp_path / "images"
    folder.mkdir()
    for subject in SUBJECTS:
        shutil.copy(phantom_dir / "images" / f"{subject}.nii.gz", folder)
    (folder / "notes.txt").write_text("not a volume")
    return folder


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    """:data:`train_settings_helpers.SETTINGS` written as a workflow settings file."""
    import yaml
    from train_settings_helpers import SETTINGS

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(SETTINGS, sort_keys=False))
    return path
