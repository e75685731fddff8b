"""NIfTI discovery: which files of a folder are volumes, and under which subject id."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from spockmip.errors import DataError
from spockmip.files.outputs import atomic_path
from spockmip.files.volumes import nifti_files, subject_name


def _volume(path: Path) -> Path:
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), dtype=np.float32), np.eye(4)), path)
    return path


def test_subject_names_strip_either_nifti_suffix() -> None:
    assert subject_name(Path("a/sub.01.nii.gz")) == "sub.01"
    assert subject_name(Path("sub.nii")) == "sub"


def test_only_visible_regular_nifti_files_are_volumes_sorted_by_subject(tmp_path: Path) -> None:
    b, a = _volume(tmp_path / "b.nii.gz"), _volume(tmp_path / "a.nii")
    _volume(tmp_path / ".hidden.nii.gz")
    (tmp_path / "notes.txt").write_text("not a volume")
    (tmp_path / "folder.nii.gz").mkdir()
    found = nifti_files(tmp_path)
    assert found == {"a": a, "b": b} and list(found) == ["a", "b"]


def test_a_file_being_written_is_never_discovered(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "a.nii.gz") as temporary:
        _volume(temporary)
        assert nifti_files(tmp_path) == {}
    assert nifti_files(tmp_path) == {"a": tmp_path / "a.nii.gz"}


def test_two_files_of_one_subject_are_both_named(tmp_path: Path) -> None:
    _volume(tmp_path / "x.nii")
    _volume(tmp_path / "x.nii.gz")
    with pytest.raises(DataError) as caught:
        nifti_files(tmp_path)
    assert str(caught.value) == f"{tmp_path}: x.nii and x.nii.gz name the same subject x; keep one"


def test_a_missing_folder_or_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"absent: folder not found$"):
        nifti_files(tmp_path / "absent")
    with pytest.raises(DataError, match=r"a\.nii\.gz: not a folder$"):
        nifti_files(_volume(tmp_path / "a.nii.gz"))
