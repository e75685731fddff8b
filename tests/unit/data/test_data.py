"""Loading, validation, orientation and patch sampling on real NIfTI files."""

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from spockmip.axes import to_volume
from spockmip.data.subjects import (
    PatchDataset,
    PatchSpec,
    grid_plan,
    grid_positions,
    grid_starts,
    load_subject,
    normalise_patches,
    released_grid_starts,
    uniform_plan,
)
from spockmip.errors import DataError
from spockmip.files.volumes import from_canonical
from spockmip.objective.mip import PAD_VALUE, network_patch_mip

RNG = np.random.default_rng(0)
# Oblique, non-RAS: axes permuted and flipped, rotated by a few degrees, anisotropic voxels.
_THETA = np.deg2rad(7.0)
OBLIQUE_AFFINE = np.array(
    [
        [0.0, -0.3 * np.sin(_THETA), -0.5 * np.cos(_THETA), 40.0],
        [-0.3, 0.0, 0.0, 12.0],
        [0.0, 0.3 * np.cos(_THETA), -0.5 * np.sin(_THETA), -8.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _write(path: Path, array: np.ndarray, affine: np.ndarray = OBLIQUE_AFFINE) -> Path:
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    image = RNG.random((20, 18, 12), dtype=np.float32) * 100
    label = (RNG.random((20, 18, 12)) > 0.9).astype(np.uint8)
    return _write(tmp_path / "sub001.nii.gz", image), _write(tmp_path / "sub001_label.nii", label)


def test_canonical_option_reorients_and_round_trips_to_the_input_orientation(pair) -> None:
    image_path, label_path = pair
    subject = load_subject(
        image_path, label_path, patch_size=(8, 8, 8), mip_axes=("x", "z"), orientation="canonical"
    )
    assert subject.name == "sub001"
    assert nib.aff2axcodes(subject.affine) == ("R", "A", "S")
    original = nib.load(image_path)
    np.testing.assert_array_equal(
        from_canonical(subject.image, original), original.get_fdata(dtype=np.float32)
    )
    canonical = nib.as_closest_canonical(original)
    np.testing.assert_allclose(subject.affine, canonical.affine)
    assert set(subject.label_mips) == {"x", "z"}
    np.testing.assert_array_equal(subject.label_mips["z"], subject.label.max(axis=2))


def _expect_error(match: str, *args, **kwargs) -> None:
    with pytest.raises(DataError, match=match):
        load_subject(*args, **kwargs)


def test_bad_inputs_raise_errors_that_name_the_file(tmp_path: Path, pair) -> None:
    image_path, _ = pair
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(image_path.read_bytes()[:400])
    _expect_error("truncated.nii.gz: not a readable NIfTI", truncated)
    garbage = tmp_path / "garbage.nii"
    garbage.write_bytes(gzip.compress(b"no nifti here") * 10)
    _expect_error("garbage.nii: not a readable NIfTI", garbage)
    _expect_error("missing.nii.gz: file not found", tmp_path / "missing.nii.gz")
    _expect_error("nolabel.nii: file not found", image_path, tmp_path / "nolabel.nii")

    other_shape = _write(tmp_path / "shape.nii", np.zeros((20, 18, 11), np.uint8))
    _expect_error(r"shape.nii: shape \(20, 18, 11\) differs from image", image_path, other_shape)
    shifted = OBLIQUE_AFFINE.copy()
    shifted[0, 3] += 0.5
    other_affine = _write(tmp_path / "affine.nii", np.zeros((20, 18, 12), np.uint8), shifted)
    _expect_error("affine.nii: affine differs", image_path, other_affine)
    nonbinary = _write(tmp_path / "nonbinary.nii", np.full((20, 18, 12), 2, np.uint8))
    _expect_error("nonbinary.nii: label must contain only 0 and 1, found values 2", image_path, nonbinary)

    with_nan = RNG.random((20, 18, 12)).astype(np.float32)
    with_nan[3, 4, 5] = np.nan
    _expect_error("nan.nii.gz: 1 non-finite intensities", _write(tmp_path / "nan.nii.gz", with_nan))
    _expect_error(
        r"sub001.nii.gz: volume .* smaller than the patch \(16, 16, 16\)", image_path, patch_size=(16,) * 3
    )
    four_d = _write(tmp_path / "four_d.nii", np.zeros((4, 4, 4, 2), np.float32))
    _expect_error("four_d.nii: expected a 3D volume", four_d)


def test_tiny_affine_differences_within_tolerance_are_accepted(tmp_path: Path, pair) -> None:
    image_path, _ = pair
    nudged = OBLIQUE_AFFINE.copy()
    nudged[1, 3] += 1e-6
    label = _write(tmp_path / "nudged.nii", np.zeros((20, 18, 12), np.uint8), nudged)
    assert load_subject(image_path, label).label.sum() == 0


def test_grid_covers_the_volume_with_the_requested_overlap() -> None:
    assert grid_starts(100, 64, 32) == [0, 32, 36]
    assert grid_starts(64, 64, 16) == [0]
    assert grid_starts(80, 64, 16) == [0, 16]
    positions = grid_positions((100, 70, 40), (64, 64, 32), (32, 32, 16))
    covered = np.zeros((100, 70, 40), bool)
    for i, j, k in positions:
        covered[i : i + 64, j : j + 64, k : k + 32] = True
    assert covered.all()
    assert len(positions) == 3 * 2 * 2


def test_normalisation_divides_each_patch_by_its_maximum_and_guards_empty_patches() -> None:
    patch = np.array([[[0.0, 2.0], [4.0, 8.0]]] * 2, dtype=np.float32)
    batch = torch.from_numpy(np.stack([patch, np.zeros_like(patch), np.full_like(patch, -3.0), patch * 3]))
    normalised = normalise_patches(batch).numpy()
    assert normalised.dtype == np.float32
    np.testing.assert_array_equal(normalised[0], patch / 8)
    np.testing.assert_array_equal(normalised[3], patch / 8)
    assert np.all(normalised[1:3] == 0) and np.all(np.isfinite(normalised))


def test_batched_normalisation_is_the_per_patch_numpy_division_bit_for_bit() -> None:
    """What the host computed per patch before the division moved to the batch's device."""
    patches = (RNG.random((5, 9, 7, 6)) * 1000).astype(np.float32)
    expected = np.stack([p / p.max() for p in patches])
    np.testing.assert_array_equal(normalise_patches(torch.from_numpy(patches)).numpy(), expected)


def test_patch_dataset_items_are_network_ordered_and_carry_volume_mip_crops(pair) -> None:
    image_path, label_path = pair
    subject = load_subject(image_path, label_path, mip_axes=("x", "y", "z"), orientation="canonical")
    assert subject.image.shape == (12, 20, 18)  # canonical (RAS) order of the (P, S, L) file
    patch_size = (8, 16, 18)  # spans the whole volume along z
    plan = grid_plan([subject], patch_size, (4, 8, 6))
    dataset = PatchDataset([subject], plan, patch_size, ("x", "y", "z"))
    item = dataset[len(dataset) - 1]
    assert item["image"].shape == (1, 18, 8, 16)
    assert item["label"].shape == (1, 18, 8, 16)
    np.testing.assert_array_equal(to_volume(item["image"])[0].numpy(), subject.image[4:12, 4:20, 0:18])
    assert tuple(int(v) for v in item["start"]) == (4, 4, 0)
    np.testing.assert_array_equal(to_volume(item["label"])[0].numpy(), subject.label[4:12, 4:20, 0:18])
    assert item["mip_x"].shape == (1, 16, 18) and item["mip_y"].shape == (1, 8, 18)
    assert item["mip_z"].shape == (1, 8, 16)
    # The patch spans z entirely, so its own MIP over z equals the whole-volume MIP crop.
    np.testing.assert_array_equal(network_patch_mip(item["label"], "z").numpy(), item["mip_z"].numpy())


def test_uniform_plan_is_seeded_and_stays_inside_the_volumes(pair) -> None:
    image_path, label_path = pair
    subjects = [load_subject(image_path, label_path), load_subject(image_path, label_path, name="copy")]
    first = uniform_plan(subjects, (8, 8, 8), 200, np.random.default_rng(5))
    again = uniform_plan(subjects, (8, 8, 8), 200, np.random.default_rng(5))
    assert first == again and len(first) == 200
    assert {spec.subject for spec in first} == {0, 1}
    starts = np.array([spec.start for spec in first])
    highest = np.array(subjects[0].image.shape) - 8
    assert starts.min() >= 0 and np.all(starts.max(axis=0) <= highest)
    assert np.all(starts.max(axis=0) >= highest - 2)


def test_patch_dataset_rejects_subjects_without_labels(pair) -> None:
    image_path, _ = pair
    with pytest.raises(DataError, match="need labels; missing for sub001"):
        PatchDataset([load_subject(image_path)], [], (8, 8, 8))


def test_dataloader_batches_mip_targets(pair) -> None:
    image_path, label_path = pair
    subject = load_subject(image_path, label_path, mip_axes=("z",))
    dataset = PatchDataset([subject], grid_plan([subject], (8, 8, 8), (4, 4, 4)), (8, 8, 8), ("z",))
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch["image"].shape == (3, 1, 8, 8, 8) and batch["mip_z"].shape == (3, 1, 8, 8)


@pytest.mark.parametrize(
    ("size", "stride", "starts"),
    [
        (480, 32, list(range(0, 449, 32))),  # 480 % 64 != 0: one extra start, 448, overhangs by 32
        (163, 16, list(range(0, 113, 16))),  # the slice axis of a SMILE-UHURA volume: last start 112
        (640, 32, list(range(0, 577, 32))),  # a multiple of the patch: no extra start, flush at 576
        (100, 32, [0, 32, 64]),  # 100 % 64 != 0: 64 overhangs by 28, while the flush grid ends at 36
    ],
)
def test_released_grid_starts_follow_the_released_mip_data_set(size: int, stride: int, starts) -> None:
    assert released_grid_starts(size, 64, stride) == starts
    assert grid_starts(size, 64, stride)[-1] == size - 64


def test_released_grid_patches_that_overhang_are_centre_padded_alike(pair) -> None:
    image_path, label_path = pair
    subject = load_subject(image_path, label_path, mip_axes=("x", "z"))
    assert subject.image.shape == (20, 18, 12)
    patch_size = (16, 16, 8)
    plan = grid_plan([subject], patch_size, (8, 8, 4), layout="released")
    assert sorted({spec.start[0] for spec in plan}) == [0, 8]  # 20 % 16 != 0: 8 overhangs by 4
    item = PatchDataset([subject], plan, patch_size, ("x", "z"))[plan.index(PatchSpec(0, (8, 0, 4)))]
    label = to_volume(item["label"])[0].numpy()
    # X: 12 voxels kept of 16 -> 2 padded before, 2 after; Y: 16 of 18 kept; Z: 8 of 8 from 4.
    np.testing.assert_array_equal(label[2:14], subject.label[8:20, 0:16, 4:12])
    assert np.all(label[:2] == np.float32(PAD_VALUE)) and np.all(label[14:] == np.float32(PAD_VALUE))
    image = to_volume(item["image"])[0].numpy()
    np.testing.assert_array_equal(image[2:14], subject.image[8:20, 0:16, 4:12])
    mip_z = item["mip_z"][0].numpy()  # (X, Y) crop of the whole-volume MIP over z, padded like the patch
    np.testing.assert_array_equal(mip_z[2:14], subject.label_mips["z"][8:20, 0:16])
    assert np.all(mip_z[:2] == np.float32(PAD_VALUE))
