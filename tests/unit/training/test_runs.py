"""A training run's data identity: every byte of every image and label file counts."""

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np

from spockmip.data.subjects import load_subject
from spockmip.files.hashing import file_sha256
from spockmip.training.runs import data_identity

SHAPE = (128, 128, 64)


def _pair(folder: Path) -> tuple[Path, Path]:
    """A 4 MiB uncompressed float32 image and its label, so single bytes can be edited in place."""
    image = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    label = (image > 0.9).astype(np.uint8)
    paths = folder / "image.nii", folder / "label.nii"
    for array, path in zip((image, label), paths, strict=True):
        nib.save(nib.Nifti1Image(array, np.eye(4)), path)
    return paths


def _identity(image: Path, label: Path | None) -> dict:
    return data_identity({"train": [load_subject(image, label)]}, fold=0)


def _edit_voxel(path: Path, index: int, value: bytes) -> None:
    """Overwrite voxel ``index`` (in file order) in place: same size, same header."""
    offset = int(nib.load(path).header.get_data_offset())
    with path.open("r+b") as handle:
        handle.seek(offset + index * len(value))
        handle.write(value)


def test_an_unchanged_file_gives_the_same_identity(tmp_path: Path) -> None:
    image, label = _pair(tmp_path)
    assert _identity(image, label) == _identity(image, label)
    assert _identity(image, label)["train"][0][2:] == [file_sha256(image), file_sha256(label)]
    assert _identity(image, None)["train"][0][3] is None


def test_one_edited_voxel_in_the_middle_of_the_image_makes_another_run(tmp_path: Path) -> None:
    image, label = _pair(tmp_path)
    before = _identity(image, label)
    # 128 KiB past the middle of the file: between the blocks a sampled hash would have read.
    _edit_voxel(image, int(np.prod(SHAPE)) // 2 + 32768, np.float32(0.5).tobytes())
    after = _identity(image, label)
    assert after["train"][0][2] != before["train"][0][2] and after["train"][0][3] == before["train"][0][3]


def test_one_edited_label_voxel_makes_another_run(tmp_path: Path) -> None:
    image, label = _pair(tmp_path)
    before = _identity(image, label)
    middle = int(np.prod(SHAPE)) // 2
    flipped = 1 - np.asanyarray(nib.load(label).dataobj).ravel(order="F")[middle]
    _edit_voxel(label, middle, np.uint8(flipped).tobytes())
    assert _identity(image, label)["train"][0][3] != before["train"][0][3]


def test_a_file_is_hashed_whole_and_read_again_once_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"a" * (3 << 20))
    first = file_sha256(path)
    assert first == hashlib.sha256(b"a" * (3 << 20)).hexdigest()
    path.write_bytes(b"a" * (3 << 20) + b"b")
    assert file_sha256(path) != first
    assert file_sha256(tmp_path / "." / "data.bin") == file_sha256(path)
