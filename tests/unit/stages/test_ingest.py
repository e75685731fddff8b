"""SMILE-UHURA ingestion on a fabricated release with the real folder names and file extensions."""

import hashlib
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from release_helpers import RELEASE_SUBJECTS, make_release

from spockmip.datasets.smile_uhura import scan_release
from spockmip.errors import DataError
from spockmip.stages.ingest import ingest_release


def _outputs(folder: Path) -> dict[str, tuple[Path, Path]]:
    return {
        s: (folder / "images" / f"{s}.nii.gz", folder / "labels" / f"{s}.nii.gz") for s in RELEASE_SUBJECTS
    }


def test_release_is_paired_validated_copied_and_checksummed(phantom_dir: Path, tmp_path: Path) -> None:
    release = make_release(phantom_dir, tmp_path / "release")
    pairs = scan_release(release)
    assert [(p.subject, p.part) for p in pairs] == sorted(
        RELEASE_SUBJECTS.items(), key=lambda x: (x[1] != "train", x[0])
    )
    out = tmp_path / "resources"
    ingest_release(release, list(RELEASE_SUBJECTS), _outputs(out), out / "manifest.tsv")
    manifest = pd.read_csv(out / "manifest.tsv", sep="\t")
    assert list(manifest["subject"]) == list(RELEASE_SUBJECTS)
    row = manifest.set_index("subject").loc["sub017"]
    assert row["part"] == "validate"
    assert row["label_sha256"] == hashlib.sha256(Path(row["label"]).read_bytes()).hexdigest()
    copied = nib.load(out / "labels" / "sub017.nii.gz")
    original = nib.load(release / "validate_label" / "sub017.nii")
    np.testing.assert_array_equal(np.asanyarray(copied.dataobj), np.asanyarray(original.dataobj))
    np.testing.assert_array_equal(copied.affine, original.affine)


def _break(release: Path, problem: str) -> None:
    label_path = release / "train_label" / "sub002.nii"
    label = nib.load(label_path, mmap=False)  # not memory-mapped: the file is rewritten below
    mask = np.asanyarray(label.dataobj)
    if problem == "missing label":
        label_path.unlink()
    elif problem == "shape mismatch":
        nib.save(nib.Nifti1Image(mask[:-1], label.affine), label_path)
    elif problem == "non-binary label":
        nib.save(nib.Nifti1Image(mask * 3, label.affine), label_path)
    elif problem == "duplicate subject":
        shutil.copy(release / "train" / "sub002.nii.gz", release / "validate" / "sub002.nii.gz")
        shutil.copy(label_path, release / "validate_label" / "sub002.nii")
    elif problem == "duplicate file":
        shutil.copy(release / "train" / "sub002.nii.gz", release / "train" / "sub002.nii")
    elif problem == "missing folder":
        shutil.rmtree(release / "validate_label")


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing label", r"train/sub002\.nii\.gz: no matching file for sub002 in .*train_label"),
        ("shape mismatch", r"train_label/sub002\.nii: shape \(47, 48, 32\) differs from image"),
        ("non-binary label", r"train_label/sub002\.nii: label must contain only 0 and 1, found values 0, 3"),
        ("duplicate subject", r"duplicate subject sub002: in .*train and .*validate"),
        ("duplicate file", r"train: sub002\.nii and sub002\.nii\.gz name the same subject sub002; keep one"),
        (
            "missing folder",
            r"release folder\(s\) missing: .*validate_label; download the SMILE-UHURA release",
        ),
    ],
)
def test_bad_release_layouts_are_named_and_leave_no_output(
    phantom_dir: Path, tmp_path: Path, problem: str, message: str
) -> None:
    release = make_release(phantom_dir, tmp_path / "release")
    _break(release, problem)
    out = tmp_path / "resources"
    with pytest.raises(DataError, match=message):
        ingest_release(release, list(RELEASE_SUBJECTS), _outputs(out), out / "manifest.tsv")
    assert not out.exists()


def test_config_subjects_must_match_the_release(phantom_dir: Path, tmp_path: Path) -> None:
    release = make_release(phantom_dir, tmp_path / "release")
    subjects = ["sub001", "sub002", "sub005", "sub099"]
    outputs = {s: (tmp_path / f"{s}.nii.gz", tmp_path / f"{s}_l.nii.gz") for s in subjects}
    with pytest.raises(
        DataError, match="not in the release: sub099; in the release but not in the config: sub017"
    ):
        ingest_release(release, subjects, outputs, tmp_path / "manifest.tsv")
    with pytest.raises(DataError, match=r"no data folder given: set dataset\.path or SPOCKMIP_DATA"):
        ingest_release("", subjects, outputs, tmp_path / "manifest.tsv")
