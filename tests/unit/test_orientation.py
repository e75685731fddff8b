"""Voxel order: by default the network sees the file's stored order, as the released code fed it."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from predict_helpers import predict_file

from spockmip.axes import to_network
from spockmip.data.sampling import EpochBatches
from spockmip.data.subjects import BatchLoading, grid_positions, load_subject
from spockmip.files.volumes import load_mask
from spockmip.inference.windows import InferenceConfig

# The smallest window a U-Net takes (each side a multiple of 16), sliding over a volume of a few windows.
PATCH = (16, 16, 16)
STRIDES = (8, 8, 8)
# The samplers cut any patch: a small one over the small stored array.
SAMPLER_PATCH = (8, 8, 8)
SAMPLER_STRIDES = (4, 4, 4)
AFFINES = {
    "RAS": np.diag([0.3, 0.3, 0.5, 1.0]),
    "LAS": np.diag([-0.3, 0.3, 0.5, 1.0]),
    "LPS": np.diag([-0.3, -0.3, 0.5, 1.0]),
    # Stored axes are (S, R, A): the first array axis runs along z in the world.
    "permuted": np.array([[0.0, 0.3, 0.0, 0.0], [0.0, 0.0, 0.3, 0.0], [0.5, 0.0, 0.0, 0.0], [0, 0, 0, 1.0]]),
}


class RecordingNetwork(torch.nn.Module):
    """Records every batch it is fed; its logits depend on the position inside the window (not flip-safe)."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.inputs.append(x.clone())
        ramp = torch.linspace(-1.0, 1.0, x.shape[-1])
        return [x * 4 - 2 + ramp]


@pytest.fixture(scope="module")
def windowed() -> np.ndarray:
    """A stored array a few windows large, for the sliding window."""
    return np.random.default_rng(7).random((32, 24, 20), dtype=np.float32) * 200


@pytest.fixture(scope="module")
def stored() -> np.ndarray:
    return np.random.default_rng(7).random((16, 12, 10), dtype=np.float32) * 200


def _save(folder: Path, name: str, array: np.ndarray) -> Path:
    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(array, AFFINES[name]), path)
    return path


def _expected_windows(array: np.ndarray) -> torch.Tensor:
    windows = np.stack(
        [array[i : i + 16, j : j + 16, k : k + 16] for i, j, k in grid_positions(array.shape, PATCH, STRIDES)]
    )
    return to_network(torch.from_numpy(windows / windows.max(axis=(1, 2, 3), keepdims=True))[:, None])


@pytest.mark.parametrize("name", list(AFFINES))
def test_stored_order_feeds_the_stored_array_and_writes_it_back_unchanged(
    tmp_path: Path, windowed: np.ndarray, name: str
) -> None:
    stored = windowed
    image = _save(tmp_path, name, stored)
    network = RecordingNetwork()
    config = InferenceConfig(patch_size=PATCH, strides=STRIDES, batch_size=7)
    predict_file(network, image, tmp_path / "seg.nii.gz", config, probabilities_path=tmp_path / "p.nii.gz")
    torch.testing.assert_close(torch.cat(network.inputs), _expected_windows(stored), rtol=0, atol=0)

    reference = RecordingNetwork()
    predict_file(
        reference,
        _save(tmp_path, "RAS", stored),
        tmp_path / "ras.nii.gz",
        config,
        probabilities_path=tmp_path / "ras_p.nii.gz",
    )
    written = nib.load(tmp_path / "p.nii.gz")
    np.testing.assert_array_equal(written.affine, nib.load(image).affine)
    # Same stored array, same network input, so the same probabilities whatever the affine says.
    np.testing.assert_array_equal(written.get_fdata(), nib.load(tmp_path / "ras_p.nii.gz").get_fdata())


def test_canonical_order_is_an_explicit_option_that_reorients(tmp_path: Path, windowed: np.ndarray) -> None:
    stored = windowed
    image = _save(tmp_path, "LPS", stored)
    config = InferenceConfig(patch_size=PATCH, strides=STRIDES)
    network = RecordingNetwork()
    predict_file(
        network,
        image,
        tmp_path / "c.nii.gz",
        config,
        probabilities_path=tmp_path / "cp.nii.gz",
        orientation="canonical",
    )
    canonical = np.asanyarray(nib.as_closest_canonical(nib.load(image)).dataobj)
    torch.testing.assert_close(torch.cat(network.inputs), _expected_windows(canonical), rtol=0, atol=0)
    predict_file(
        RecordingNetwork(), image, tmp_path / "s.nii.gz", config, probabilities_path=tmp_path / "sp.nii.gz"
    )
    on_canonical = nib.load(tmp_path / "cp.nii.gz")
    np.testing.assert_array_equal(on_canonical.affine, nib.load(image).affine)  # back on the file's grid
    assert not np.array_equal(on_canonical.get_fdata(), nib.load(tmp_path / "sp.nii.gz").get_fdata())


def test_subjects_and_masks_load_in_stored_order_by_default(tmp_path: Path, stored: np.ndarray) -> None:
    image = _save(tmp_path, "permuted", stored)
    label_array = (stored > 150).astype(np.uint8)
    label = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(label_array, AFFINES["permuted"]), label)
    subject = load_subject(image, label, mip_axes=("z",))
    np.testing.assert_array_equal(subject.image, stored)
    np.testing.assert_array_equal(subject.affine, nib.load(image).affine)
    np.testing.assert_array_equal(subject.label_mips["z"], label_array.max(axis=2))
    np.testing.assert_array_equal(load_mask(label), label_array)
    canonical = load_subject(image, label, orientation="canonical")
    assert canonical.image.shape == (12, 10, 16) and nib.aff2axcodes(canonical.affine) == ("R", "A", "S")
    with pytest.raises(ValueError, match="orientation"):
        load_subject(image, orientation="RAS")  # type: ignore[arg-type]


@pytest.mark.parametrize("sampling", ["queue", "grid"])
def test_a_non_ras_subject_trains_in_canonical_order(
    tmp_path: Path, stored: np.ndarray, sampling: str
) -> None:
    """Reorienting an LPS file to RAS+ flips two axes; the subject's arrays must still reach torch (and
    torchio's queue) as the flipped voxels, not as a view torch cannot take."""
    label = (stored > 150).astype(np.uint8)
    nib.save(nib.Nifti1Image(label, AFFINES["LPS"]), tmp_path / "label.nii.gz")
    subject = load_subject(
        _save(tmp_path, "LPS", stored), tmp_path / "label.nii.gz", mip_axes=("z",), orientation="canonical"
    )
    assert all(stride > 0 for stride in (*subject.image.strides, *subject.label.strides))
    batches = EpochBatches([subject], sampling, SAMPLER_PATCH, SAMPLER_STRIDES, 6, ("z",), BatchLoading(3))
    samples = [sample for batch in batches(seed=1) for sample in zip(*batch.values(), strict=True)]
    assert len(samples) == 6
    canonical_image, canonical_label = stored[::-1, ::-1], label[::-1, ::-1]
    for image, target, start, _, _ in samples:
        block = tuple(slice(s, s + 8) for s in start.tolist())
        assert torch.equal(image, to_network(torch.from_numpy(canonical_image[block].copy())[None]))
        assert torch.equal(
            target, to_network(torch.from_numpy(canonical_label[block].astype(np.float32))[None])
        )
