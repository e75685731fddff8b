"""The phantoms must be reproducible to the byte and look like TOF-MRA vessel trees to a segmenter."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from paths import ROOT
from scipy import ndimage
from skimage.morphology import skeletonize

from spockmip.datasets import synthetic
from spockmip.datasets.synthetic import (
    MIN_SIDE,
    Phantom,
    PhantomConfig,
    generate_phantom,
    phantom_affine,
    subject_seed,
    write_phantom,
    write_phantom_dataset,
)
from spockmip.errors import SettingsError

SMALL = PhantomConfig(shape=(64, 64, 48))
SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def phantoms() -> list[Phantom]:
    return [generate_phantom(seed, SMALL) for seed in SEEDS]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = write_phantom_dataset(tmp_path / "a", 2, seed=11, config=SMALL)
    second = write_phantom_dataset(tmp_path / "b", 2, seed=11, config=SMALL)
    assert first == second == ["phantom000", "phantom001"]
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(files_a) == [
        "images/phantom000.nii.gz",
        "images/phantom001.nii.gz",
        "labels/phantom000.nii.gz",
        "labels/phantom001.nii.gz",
    ]
    assert files_a == files_b


def test_different_seeds_and_subjects_differ(tmp_path: Path) -> None:
    write_phantom_dataset(tmp_path / "a", 2, seed=11, config=SMALL)
    write_phantom_dataset(tmp_path / "b", 1, seed=12, config=SMALL)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a["images/phantom000.nii.gz"] != b["images/phantom000.nii.gz"]
    assert a["labels/phantom000.nii.gz"] != b["labels/phantom000.nii.gz"]
    assert a["images/phantom000.nii.gz"] != a["images/phantom001.nii.gz"]


def test_subject_does_not_depend_on_dataset_size(tmp_path: Path) -> None:
    write_phantom_dataset(tmp_path / "one", 1, seed=5, config=SMALL)
    write_phantom_dataset(tmp_path / "three", 3, seed=5, config=SMALL)
    one, three = _files(tmp_path / "one"), _files(tmp_path / "three")
    assert one["images/phantom000.nii.gz"] == three["images/phantom000.nii.gz"]
    assert subject_seed(5, 0) != subject_seed(5, 1) != subject_seed(6, 1)


def test_label_is_binary_sparse_and_darker_outside(phantoms: list[Phantom]) -> None:
    for phantom in phantoms:
        assert phantom.label.dtype == np.uint8
        assert phantom.image.dtype == np.float32
        assert set(np.unique(phantom.label)) == {0, 1}
        assert 0.003 <= phantom.vessel_fraction <= 0.05
        assert np.isfinite(phantom.image).all() and phantom.image.min() >= 0  # Rician magnitude
        vessel = phantom.label.astype(bool)
        inside, outside = phantom.image[vessel].mean(), phantom.image[~vessel].mean()
        assert inside > 2.0 * outside


def test_thin_vessels_about_one_voxel_in_radius(phantoms: list[Phantom]) -> None:
    for phantom in phantoms:
        vessel = phantom.label.astype(bool)
        skeleton = skeletonize(vessel)
        radius = ndimage.distance_transform_edt(vessel)[skeleton]
        assert (radius <= 1.5).mean() >= 0.3, "too few thin vessels"
        assert radius.max() >= 2.0, "no thick vessels"


def test_trees_are_connected_not_dust(phantoms: list[Phantom]) -> None:
    for phantom in phantoms:
        labelled, n_components = ndimage.label(phantom.label, structure=np.ones((3, 3, 3)))
        # Every tree is 26-connected by construction; trees may touch and merge.
        assert 1 <= n_components <= SMALL.n_roots
        sizes = np.bincount(labelled.ravel())[1:]
        assert sizes.max() >= 0.3 * sizes.sum()


def test_nifti_geometry_and_types(tmp_path: Path) -> None:
    config = PhantomConfig(shape=(40, 32, 24), spacing_mm=(0.3, 0.3, 0.5))
    phantom = generate_phantom(7, config)
    write_phantom(phantom, tmp_path / "image.nii.gz", tmp_path / "label.nii.gz")
    expected = phantom_affine(config.shape, config.spacing_mm, config.tilt_deg, config.centre_mm)
    assert not np.allclose(expected[:3, :3], np.diag(np.diag(expected[:3, :3]))), "affine should be oblique"
    assert np.linalg.norm(expected[:3, 3]) > 1.0, "affine should have an origin offset"
    np.testing.assert_allclose(
        expected[:3, :3] @ (np.array(config.shape) - 1) / 2 + expected[:3, 3], config.centre_mm
    )
    for name, dtype in (("image", np.float32), ("label", np.uint8)):
        image = nib.load(tmp_path / f"{name}.nii.gz")
        header = image.header
        assert image.shape == config.shape
        assert header.get_data_dtype() == dtype
        np.testing.assert_allclose(image.affine, expected, atol=1e-6)
        np.testing.assert_allclose(header.get_zooms(), config.spacing_mm, rtol=1e-6)
        assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1
        np.testing.assert_allclose(header.get_qform(), expected, atol=1e-4)
        assert header.get_xyzt_units() == ("mm", "sec")
        data = np.asarray(image.dataobj)
        assert data.dtype == dtype
        np.testing.assert_array_equal(data, getattr(phantom, name))
    assert nib.load(tmp_path / "label.nii.gz").header.get_intent()[0] == "label"


def test_non_cubic_odd_shape() -> None:
    phantom = generate_phantom(3, PhantomConfig(shape=(MIN_SIDE + 1, 45, 23)))
    assert phantom.image.shape == phantom.label.shape == (MIN_SIDE + 1, 45, 23)
    assert phantom.label.any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (MIN_SIDE - 1, 64, 64)},
        {"shape": (64, 64)},
        {"shape": (64, 64, 0)},
        {"spacing_mm": (0.3, 0.0, 0.3)},
        {"n_roots": 0},
        {"min_radius_vox": 0.5},
        {"root_radius_vox": (3.0, 2.0)},
        {"root_radius_vox": (2.0, 8.0), "shape": (32, 32, 32)},
        {"vessel_fraction": 0.0},
        {"noise_std": -0.1},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PhantomConfig(**kwargs)  # type: ignore[arg-type]


def test_negative_seed_rejected() -> None:
    with pytest.raises(ValueError, match="seed"):
        generate_phantom(-1, SMALL)


def test_dataset_refuses_non_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_phantom_dataset(target, 1, seed=0, config=SMALL)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_dataset_fills_existing_empty_directory(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()
    assert write_phantom_dataset(target, 1, seed=0, config=SMALL) == ["phantom000"]
    assert sorted(_files(target)) == ["images/phantom000.nii.gz", "labels/phantom000.nii.gz"]


def test_failed_dataset_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fail_on_second(phantom: Phantom, image_path: Path, label_path: Path) -> None:
        calls.append(image_path)
        if len(calls) == 2:
            raise OSError("disk full")
        write_phantom(phantom, image_path, label_path)

    monkeypatch.setattr(synthetic, "write_phantom", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        write_phantom_dataset(tmp_path / "data", 3, seed=0, config=SMALL)
    assert list(tmp_path.iterdir()) == []


def test_default_root_radius_grows_with_field_of_view() -> None:
    assert PhantomConfig(shape=(64, 64, 48)).root_radius_vox == (2.0, 3.0)
    assert PhantomConfig(shape=(480, 640, 163)).root_radius_vox == (5.0, 7.5)
    assert PhantomConfig(shape=(40, 40, 40), root_radius_vox=(1.5, 2.0)).root_radius_vox == (1.5, 2.0)


def test_thin_vessel_shares_count_length_and_nearest_voxels() -> None:
    # One straight vessel along x: the first 8 centre-line points (4 voxels) thin, the last 24 thick.
    label = np.zeros((16, 8, 8), dtype=np.uint8)
    label[:, 4, 4] = 1
    centreline = np.stack([np.arange(32) * 0.5, np.full(32, 4.0), np.full(32, 4.0)], axis=1)
    radii = np.where(np.arange(32) < 8, 1.0, 2.0)
    phantom = Phantom(
        image=label.astype(np.float32),
        label=label,
        affine=np.eye(4),
        seed=0,
        config=SMALL,
        centreline=centreline,
        radii=radii,
    )
    length, voxels = phantom.thin_vessel_shares()
    assert length == pytest.approx(0.25)
    # Voxels x = 0..3 lie on thin points, x = 4..15 nearest to thick ones (x = 3.5 is the last thin point).
    assert voxels == pytest.approx(4 / 16)
    assert phantom.thin_vessel_shares(max_radius=3.0) == (1.0, 1.0)


def test_demo_phantoms_keep_a_real_share_of_thin_vessels(phantoms: list[Phantom]) -> None:
    # The MIP loss is about thin-vessel continuity: the phantoms must not be all thick tubes.
    for phantom in phantoms:
        length, voxels = phantom.thin_vessel_shares()
        assert length >= 0.4, synthetic.describe(phantom)
        assert voxels >= 0.15, synthetic.describe(phantom)
        assert "thin vessels" in synthetic.describe(phantom)


def test_every_demo_window_crosses_a_vessel() -> None:
    # A window without vessel, divided by its own maximum, is bright noise to the network; the demo's
    # phantoms are dense enough that no inference window is vessel-free (docs/demo.md).
    import yaml

    from spockmip.data.subjects import grid_positions

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    phantoms, inference = config["dataset"]["synthetic"], config["inference"]
    phantom_config = PhantomConfig(shape=tuple(phantoms["shape"]), n_roots=phantoms["trees"])
    patch = inference["patch_size"]
    for index in range(phantoms["n_subjects"]):
        label = generate_phantom(subject_seed(phantoms["seed"], index), phantom_config).label
        for start in grid_positions(label.shape, patch, inference["strides"]):
            window = label[tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))]
            assert window.sum() >= 30, f"phantom {index}: window at {start}: {window.sum()} vessel voxels"


@pytest.mark.parametrize("spacing", [1e-300, 1e-4, (1.0, 1.0, 1e-10)])
def test_a_spacing_spockmip_would_read_as_singular_is_refused(spacing: float | tuple) -> None:
    spacing_mm = spacing if isinstance(spacing, tuple) else (spacing,) * 3
    with pytest.raises(SettingsError, match=r"^spacing_mm must give voxels of at least 1e-09 mm³"):
        PhantomConfig(spacing_mm=spacing_mm)
    PhantomConfig(spacing_mm=(1e-3, 1e-3, 1e-3))


def test_a_spacing_beyond_the_header_float32_range_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^spacing_mm \(1e\+39, 1e\+39, 1e\+39\) .* float32 range"):
        PhantomConfig(spacing_mm=(1e39,) * 3)
