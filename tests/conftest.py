"""Shared fixtures: a small phantom data set written to disk once per test session."""

from pathlib import Path

import pytest

from spockmip.synthetic import PhantomConfig, write_phantom_dataset

PHANTOM_SHAPE = (48, 48, 32)


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 48×48×32 phantoms: images/<id>.nii.gz and labels/<id>.nii.gz."""
    folder = tmp_path_factory.mktemp("phantoms") / "data"
    write_phantom_dataset(folder, n_subjects=4, seed=7, config=PhantomConfig(shape=PHANTOM_SHAPE))
    return folder
