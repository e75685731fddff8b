"""Sliding-window inference: exact reproduction of the released pipeline, orientation round trip, outputs."""

from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from predict_helpers import predict_file

from spockmip.inference.export import binarise
from spockmip.inference.windows import (
    CPU_WINDOWS_PER_BATCH,
    GPU_WINDOWS_PER_BATCH,
    InferenceConfig,
    accumulator_device,
    blend_weights,
    ensemble_probabilities,
    predict_probabilities,
)
from spockmip.networks.unet import build_model
from spockmip.networks.weights import load_weights
from spockmip.settings.catalogue import RELEASED_PATCH_SIZE, RELEASED_STRIDES

OBLIQUE = np.array(
    [[0.0, 0.0, -0.6, 30.0], [-0.29, 0.05, 0.0, 10.0], [0.05, 0.29, 0.0, -5.0], [0.0, 0.0, 0.0, 1.0]]
)

RELEASED_WINDOW = (RELEASED_PATCH_SIZE, RELEASED_STRIDES)


class ImageAsLogits(torch.nn.Module):
    """A 'network' whose vessel logit is the (normalised) intensity: shows where every voxel lands."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [(x - 0.5) * 40]


def _released_style_reference(model, volume: np.ndarray, patch: int, strides) -> np.ndarray:
    """The released code's inference, written independently with numpy transposes and plain loops."""
    summed = np.zeros(volume.shape, np.float64)
    counts = np.zeros(volume.shape, np.float64)
    starts = []
    for size, stride in zip(volume.shape, strides, strict=True):
        axis = list(range(0, size - patch + 1, stride))
        if axis[-1] != size - patch:
            axis.append(size - patch)
        starts.append(axis)
    for i in starts[0]:
        for j in starts[1]:
            for k in starts[2]:
                block = volume[i : i + patch, j : j + patch, k : k + patch]
                block = block / block.max() if block.max() > 0 else np.zeros_like(block)
                zxy = np.ascontiguousarray(block.transpose(2, 0, 1))[None, None]
                with torch.no_grad():
                    out = torch.sigmoid(model(torch.from_numpy(zxy.astype(np.float32)))[0])[0, 0].numpy()
                summed[i : i + patch, j : j + patch, k : k + patch] += out.transpose(1, 2, 0)
                counts[i : i + patch, j : j + patch, k : k + patch] += 1
    return summed / counts


def test_probabilities_equal_the_released_pipeline_on_a_published_layout_model() -> None:
    torch.manual_seed(0)
    model = build_model("unetmss", init_features=2).eval()
    volume = np.random.default_rng(1).random((40, 36, 24), dtype=np.float32) * 300
    config = InferenceConfig(patch_size=(16, 16, 16), strides=(8, 8, 4), batch_size=5)
    ours = predict_probabilities(model, volume, config)
    reference = _released_style_reference(model, volume, 16, (8, 8, 4))
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_blending_weights_and_constant_predictions() -> None:
    assert np.all(blend_weights((4, 4, 4), "average") == 1)
    gaussian = blend_weights((16, 16, 8), "gaussian")
    assert gaussian.max() == pytest.approx(1.0) and gaussian[0, 0, 0] < gaussian[8, 8, 4]

    class Constant(torch.nn.Module):
        def forward(self, x):
            return [torch.full_like(x, 0.3)]

    volume = np.random.default_rng(2).random((20, 24, 18), dtype=np.float32)
    for blend in ("average", "gaussian"):
        config = InferenceConfig(patch_size=(16, 16, 16), strides=(4, 8, 2), blend=blend)
        probabilities = predict_probabilities(Constant(), volume, config)
        np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-0.3)), rtol=1e-6)


def test_otsu_threshold_with_fallback_and_fixed_values() -> None:
    bimodal = np.concatenate([np.full(900, 0.1), np.full(100, 0.9)]).reshape(10, 10, 10)
    mask, value = binarise(bimodal)
    assert 0.1 <= value < 0.9 and mask.sum() == 100
    mask, value = binarise(np.full((4, 4, 4), 0.7))
    assert value == 0.5 and mask.all()
    mask, value = binarise(bimodal, 0.95)
    assert value == 0.95 and mask.sum() == 0


def test_predict_file_writes_in_the_input_orientation_with_its_exact_header(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    pattern = (rng.random((34, 20, 18)) > 0.8).astype(np.float32)
    image = nib.Nifti1Image(pattern * 250 + 5, OBLIQUE)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = b"oblique test volume"
    nib.save(image, tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(pattern.astype(np.uint8), OBLIQUE), tmp_path / "label.nii.gz")
    config = InferenceConfig(patch_size=(16, 16, 16), strides=(8, 8, 8))
    threshold = predict_file(
        ImageAsLogits(),
        tmp_path / "img.nii.gz",
        tmp_path / "out" / "seg.nii.gz",
        config,
        probabilities_path=tmp_path / "out" / "prob.nii.gz",
        label_path=tmp_path / "label.nii.gz",
        figures_dir=tmp_path / "figures",
    )
    assert 0 < threshold < 1
    segmentation = nib.load(tmp_path / "out" / "seg.nii.gz")
    stored = nib.load(tmp_path / "img.nii.gz")
    assert segmentation.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(segmentation.affine, stored.affine)
    np.testing.assert_array_equal(segmentation.header.get_qform(), stored.header.get_qform())
    np.testing.assert_array_equal(segmentation.header.get_sform(), stored.header.get_sform())
    assert segmentation.header.get_xyzt_units() == ("mm", "sec")
    assert segmentation.header["descrip"].tobytes().startswith(b"oblique test volume")
    assert int(segmentation.header["qform_code"]) == int(image.header["qform_code"])
    np.testing.assert_array_equal(np.asanyarray(segmentation.dataobj), pattern.astype(np.uint8))
    probabilities = nib.load(tmp_path / "out" / "prob.nii.gz").get_fdata()
    assert probabilities.shape == pattern.shape and probabilities[pattern > 0].min() > 0.99
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "img_overlay.png",
        "img_prediction_mip.png",
    ]
    assert not list((tmp_path / "out").glob(".*")), "temporary files left behind"


def test_predict_file_leaves_nothing_behind_on_bad_input(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), OBLIQUE), tmp_path / "small.nii.gz")
    with pytest.raises(ValueError, match="smaller than the patch"):
        predict_file(
            ImageAsLogits(),
            tmp_path / "small.nii.gz",
            tmp_path / "out" / "seg.nii.gz",
            InferenceConfig(*RELEASED_WINDOW),
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_inference_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="blend: 'median' is not one of average, gaussian"):
        InferenceConfig(*RELEASED_WINDOW, blend="median")
    with pytest.raises(ValueError, match="strides"):
        InferenceConfig(patch_size=(16, 16, 16), strides=(32, 8, 8))


def test_outputs_get_ordinary_file_permissions(tmp_path: Path) -> None:
    """Atomic writes must not leave results readable by their owner alone (mkstemp's default)."""
    import os

    from spockmip.files.outputs import FILE_MODE, atomic_path

    with atomic_path(tmp_path / "result.csv") as temporary:
        temporary.write_text("a,b\n")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "result.csv").stat().st_mode & 0o777 == FILE_MODE == 0o666 & ~umask


class Scaled(torch.nn.Module):
    """A 'network' with its own fixed logit map, so each ensemble member gives different probabilities."""

    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [(x - self.offset) * self.scale]


def test_fold_ensemble_probability_is_the_mean_of_the_members(tmp_path: Path) -> None:
    volume = np.random.default_rng(3).random((20, 18, 16), dtype=np.float32)
    config = InferenceConfig(patch_size=(16, 16, 16), strides=(8, 8, 8))
    members = [Scaled(10.0, 0.3), Scaled(-4.0, 0.6), Scaled(25.0, 0.5)]
    single = [predict_probabilities(model, volume, config) for model in members]
    mean = ensemble_probabilities(members, volume, config)
    np.testing.assert_allclose(mean, np.mean(single, axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(ensemble_probabilities(members[:1], volume, config), single[0])

    # Weights sources on disk are loaded by the same function (what `predict --weights a.pt b.pt` needs).
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"fold{seed}.pt")
        torch.save({"state_dict": build_model("unet", init_features=2).state_dict()}, paths[-1])
    loaded = [load_weights(path) for path in paths]
    np.testing.assert_allclose(
        ensemble_probabilities(paths, volume, config),
        np.mean([predict_probabilities(model, volume, config) for model in loaded], axis=0),
        rtol=1e-6,
        atol=1e-7,
    )
    with pytest.raises(ValueError, match="at least one model"):
        ensemble_probabilities([], volume, config)


def test_the_batch_of_windows_defaults_to_the_device_kind() -> None:
    assert (
        InferenceConfig(*RELEASED_WINDOW).windows_per_batch(torch.device("cpu")) == CPU_WINDOWS_PER_BATCH == 4
    )
    assert InferenceConfig(*RELEASED_WINDOW).windows_per_batch(torch.device("cuda")) == GPU_WINDOWS_PER_BATCH
    assert InferenceConfig(*RELEASED_WINDOW, batch_size=7).windows_per_batch(torch.device("cuda")) == 7
    with pytest.raises(ValueError, match="batch_size: 0 is less than the minimum of 1"):
        InferenceConfig(*RELEASED_WINDOW, batch_size=0)


def test_accumulators_stay_on_the_gpu_only_when_they_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three float32 volumes (two sums and their quotient) within half the free memory, else the host."""
    shape, needed = (100, 100, 50), 3 * 4 * 100 * 100 * 50
    free = {"bytes": 2 * needed}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free["bytes"], 10 * needed))
    assert accumulator_device(shape, torch.device("cuda")) == torch.device("cuda")
    free["bytes"] = 2 * needed - 1
    assert accumulator_device(shape, torch.device("cuda")) == torch.device("cpu")
    assert accumulator_device(shape, torch.device("cpu")) == torch.device("cpu")


def test_compiled_prediction_is_one_graph_for_every_batch_and_the_same_numbers(
    compile_without_codegen: list[torch.nn.Module],
) -> None:
    """With compile, the last batch is padded to the full size: one static graph serves all (no
    recompilation for a short batch), and the padding never reaches the result."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    model = build_model("unetmss", init_features=2).eval()
    volume = np.random.default_rng(5).random((40, 36, 32), dtype=np.float32) * 50
    config = InferenceConfig(
        patch_size=(16, 16, 16), strides=(8, 8, 8), batch_size=5
    )  # 48 windows: 9 x 5 + 3
    plain = predict_probabilities(model, volume, config)
    counters.clear()
    compiled = predict_probabilities(model, volume, replace(config, compile=True))
    assert compile_without_codegen == [model] and counters["stats"]["unique_graphs"] == 1
    np.testing.assert_array_equal(compiled, plain)


def test_the_inference_settings_are_the_catalogues() -> None:
    """The typed settings the prediction door builds hold every ``inference`` entry of the catalogue, and
    their defaults are the catalogue's."""
    from dataclasses import fields

    from spockmip.inference.planning import InferenceSettings
    from spockmip.settings.catalogue import INFERENCE

    assert [field.name for field in fields(InferenceSettings)] == list(INFERENCE)
    defaults = InferenceSettings.of({})
    assert {name: getattr(defaults, name) for name in INFERENCE} == {
        n: s.default for n, s in INFERENCE.items()
    }
    assert InferenceSettings.of({"strides": [8, 8, 8]}).strides == (8, 8, 8)


def test_a_null_window_is_the_checkpoints_else_the_released_one() -> None:
    from spockmip.errors import SettingsError
    from spockmip.inference.planning import InferenceSettings

    def spell(key: str) -> str:
        return f"--{key}"

    null = InferenceSettings.of({})
    assert null.window([(None, None)], spell) == (RELEASED_PATCH_SIZE, RELEASED_STRIDES)
    assert null.window([((32, 32, 32), (16, 16, 16))] * 2, spell) == ((32, 32, 32), (16, 16, 16))
    given = InferenceSettings.of({"patch_size": (48, 48, 48), "strides": (24, 24, 24)})
    assert given.window([((32, 32, 32), (16, 16, 16))], spell) == ((48, 48, 48), (24, 24, 24))
    with pytest.raises(SettingsError, match="--patch_size: the weights record different patch_size"):
        null.window([((32, 32, 32), (16, 16, 16)), ((64, 64, 64), (16, 16, 16))], spell)
