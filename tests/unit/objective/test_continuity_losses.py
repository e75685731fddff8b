"""Continuity terms: soft-clDice and Skeleton Recall, their skeleton tubes, and the objective without them."""

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.morphology import dilation, skeletonize

import spockmip.data.subjects
import spockmip.objective.losses
from spockmip.data.sampling import EpochBatches
from spockmip.data.subjects import BatchLoading, load_subject, skeleton_tube
from spockmip.objective.batch import batch_loss
from spockmip.objective.deformation import DeformationConfig
from spockmip.objective.losses import (
    LossConfig,
    combine,
    deep_supervision_loss,
    focal_tversky,
    level_probabilities,
    mip_term,
    segmentation_loss,
    skeleton_recall,
    soft_cldice,
    soft_skeleton,
)


def _cylinder(shape: tuple[int, int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    """A straight tube along the first axis, through the whole array, of Euclidean ``radius``."""
    _, h, w = np.indices(shape)
    return (((h - centre[0]) ** 2 + (w - centre[1]) ** 2) <= radius**2).astype(np.float32)


def _batch(*volumes: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(volumes))[:, None]


def test_the_soft_skeleton_of_a_straight_tube_is_its_centre_line() -> None:
    tube = _batch(_cylinder((20, 17, 17), (8, 8), 2.0))
    skeleton = soft_skeleton(tube, iterations=10)
    centre = torch.zeros_like(tube, dtype=torch.bool)
    centre[..., 8, 8] = True
    assert torch.allclose(skeleton[centre], torch.ones(20))
    assert skeleton[~centre].abs().max().item() < 1e-6


def test_skeleton_recall_is_zero_on_a_covering_prediction_and_counts_missed_tube_voxels() -> None:
    labels = [_cylinder((12, 15, 15), (7, 7), 3.0), _cylinder((12, 15, 15), (5, 6), 2.0)]
    tubes = _batch(*(skeleton_tube(label) for label in labels))
    sizes = tubes.sum(dim=(1, 2, 3, 4))
    assert torch.all(sizes > 0)
    smooth = 1e-5
    covering = _batch(*labels)
    assert skeleton_recall(covering, tubes, smooth).item() == pytest.approx(0.0, abs=1e-7)

    prediction = covering.clone()
    missed = []
    for sample, m in ((0, 5), (1, 3)):
        places = tubes[sample].flatten().nonzero()[:m, 0]
        prediction[sample].view(-1)[places] = 0.0
        missed.append(m)
    prediction.requires_grad_(True)
    loss = skeleton_recall(prediction, tubes, smooth)
    expected = np.mean([m / (float(size) + smooth) for m, size in zip(missed, sizes, strict=True)])
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    (gradient,) = torch.autograd.grad(loss, prediction)
    assert torch.all(gradient[tubes == 0] == 0)
    assert torch.all(gradient[tubes == 1] < 0)


def test_cldice_of_a_perfect_binary_prediction_is_zero_and_grows_with_a_break() -> None:
    label = _batch(_cylinder((24, 13, 13), (6, 6), 2.0), _cylinder((24, 13, 13), (4, 7), 1.0))
    assert soft_cldice(label, label).item() == pytest.approx(0.0, abs=1e-6)
    broken = label.clone()
    broken[:, :, 10:14] = 0
    assert soft_cldice(broken, label).item() > 0.05


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda p, g: soft_cldice(p, g), "soft_cldice"),
        (lambda p, g: skeleton_recall(p, g), "skeleton_recall"),
        (lambda p, g: soft_skeleton(p), "soft_skeleton"),
    ],
)
def test_logits_are_refused(call, name: str) -> None:
    label = _batch(_cylinder((8, 8, 8), (4, 4), 1.0))
    logits = torch.randn(1, 1, 8, 8, 8) * 5
    with pytest.raises(ValueError, match=f"{name} expects probabilities"):
        call(logits, label)


@pytest.mark.parametrize("loss", [soft_cldice, skeleton_recall])
def test_non_binary_targets_are_refused(loss) -> None:
    fractional = _batch(_cylinder((8, 8, 8), (4, 4), 1.0)) * 0.7
    with pytest.raises(ValueError, match=f"{loss.__name__} expects a binary label"):
        loss(torch.rand(1, 1, 8, 8, 8), fractional)


def test_the_tube_is_the_released_transform_and_ignores_fractional_label_values() -> None:
    rng = np.random.default_rng(0)
    label = _cylinder((16, 16, 16), (8, 7), 3.0)
    label[2:6, 2:5, 10:14] = 1.0
    fractional = np.where(label > 0, rng.uniform(0.5, 1.0, label.shape), rng.uniform(0.0, 0.49, label.shape))
    binary = (fractional >= 0.5).astype(np.float32)
    assert np.array_equal(skeleton_tube(fractional), skeleton_tube(binary))
    released = dilation(dilation(skeletonize(binary > 0).astype(np.int16))) * binary.astype(np.int16)
    assert np.array_equal(skeleton_tube(binary), released.astype(np.float32))
    assert not skeleton_tube(np.zeros((6, 6, 6))).any()


@pytest.fixture(scope="module")
def subjects(phantom_dir: Path):
    return [
        load_subject(
            phantom_dir / "images" / f"{n}.nii.gz", phantom_dir / "labels" / f"{n}.nii.gz", mip_axes=("z",)
        )
        for n in ("phantom000", "phantom001")
    ]


@pytest.mark.parametrize("sampling", ["released_grid", "queue", "grid", "uniform"])
def test_every_sampler_computes_the_tube_once_per_patch_and_only_when_asked(
    subjects, sampling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, ...]] = []

    def counted(label: np.ndarray) -> np.ndarray:
        calls.append(label.shape)
        return skeleton_tube(label)

    monkeypatch.setattr(spockmip.data.subjects, "skeleton_tube", counted)
    patch = (16, 16, 16)
    for wanted in (False, True):
        calls.clear()
        batches = EpochBatches(subjects, sampling, patch, (8, 8, 8), 8, ("z",), BatchLoading(4), tube=wanted)
        seen = 0
        for batch in batches(seed=1):
            seen += batch["label"].shape[0]
            assert ("tube" in batch) == wanted
            if wanted:
                assert batch["tube"].shape == batch["label"].shape
                assert torch.all(batch["tube"] <= (batch["label"] >= 0.5).float())
                for label, tube in zip(batch["label"], batch["tube"], strict=True):
                    # Computed in the volume's voxel order; the batch holds it in network order.
                    own = skeleton_tube(label[0].permute(1, 2, 0).numpy())
                    assert torch.equal(tube[0], torch.from_numpy(own).permute(2, 0, 1))
        assert seen == 8
        assert len(calls) == (8 if wanted else 0)


def _segmentation_loss_without_continuity(
    outputs: Sequence[torch.Tensor], label: torch.Tensor, config: LossConfig, extra=None
) -> spockmip.objective.losses.LossTerms:
    """The objective as it was before the continuity terms existed, from the unchanged parts."""
    probabilities = level_probabilities(outputs, label.shape[2:])
    floss = deep_supervision_loss(probabilities, label, config)
    if extra is not None:
        floss = floss + extra(probabilities)
    continuity = torch.zeros(())
    return combine(floss, mip_term(probabilities, label, config, None), config, continuity)


def _outputs(seed: int, batch: int = 2, size: int = 16) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(batch, 1, size // 2**level, size // 2**level, size // 2**level, generator=generator)
        .mul(3)
        .requires_grad_(True)
        for level in range(3)
    ]


def test_the_weights_default_to_the_authors_values_and_no_term_is_selected() -> None:
    config = LossConfig()
    assert config.skeleton_loss == "none" and not config.needs_tube
    assert (config.cldice_weight, config.skeleton_recall_weight) == (0.5, 1.0)
    assert LossConfig(skeleton_loss="skeleton_recall").needs_tube
    assert not LossConfig(skeleton_loss="cldice").needs_tube


def test_the_selected_term_is_part_of_the_runs_fingerprint() -> None:
    from spockmip.training.trainer import TrainingConfig

    fingerprints = {
        TrainingConfig(loss=LossConfig(skeleton_loss=selected)).fingerprint()
        for selected in ("none", "cldice", "skeleton_recall")
    }
    assert len(fingerprints) == 3


@pytest.mark.parametrize(
    "config",
    [
        LossConfig(),
        LossConfig(cldice_weight=0.3, skeleton_recall_weight=2.0, baseline_scale="unit"),
        LossConfig(mip_axis="multi", mip_target="patch", mip_pairing="consistent"),
    ],
)
def test_without_a_skeleton_loss_the_objective_is_bit_identical_whatever_the_weights(
    config: LossConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("a continuity term was computed with skeleton_loss none")

    monkeypatch.setattr(spockmip.objective.losses, "_soft_skeleton", forbidden)
    monkeypatch.setattr(spockmip.objective.losses, "_skeleton_recall", forbidden)
    label = (torch.rand(2, 1, 16, 16, 16, generator=torch.Generator().manual_seed(3)) > 0.8).float()
    extra = lambda probabilities: 0.25 * probabilities[0].mean()  # noqa: E731  (a DS6-like extra term)
    for extra_term in (None, extra):
        outputs = _outputs(5)
        new = segmentation_loss(outputs, label, config, extra_segmentation=extra_term)
        new_gradients = torch.autograd.grad(new.total, outputs)
        outputs = _outputs(5)
        old = _segmentation_loss_without_continuity(outputs, label, config, extra_term)
        old_gradients = torch.autograd.grad(old.total, outputs)
        for a, b in zip(new, old, strict=True):
            assert torch.equal(a, b)
        for a, b in zip(new_gradients, old_gradients, strict=True):
            assert torch.equal(a, b)


def test_continuity_terms_are_weighted_per_level_against_the_full_resolution_targets() -> None:
    raw = np.stack([_cylinder((16, 16, 16), (8, 8), 2.5), _cylinder((16, 16, 16), (5, 9), 1.5)])
    label = torch.from_numpy(raw)[:, None] * 0.9 + 0.05  # fractional: binarised at 0.5 for the skeletons
    binary = (label >= 0.5).float()
    tube = torch.from_numpy(np.stack([skeleton_tube(v) for v in raw]))[:, None]
    outputs = _outputs(7)
    p = level_probabilities(outputs, (16, 16, 16))
    weights = LossConfig().level_weights
    ftl = sum(w * focal_tversky(q, label) for w, q in zip(weights, p, strict=False))
    cl = sum(w * soft_cldice(q, binary, 4, 1.0) for w, q in zip(weights, p, strict=False))
    sr = sum(w * skeleton_recall(q, tube, 1e-5) for w, q in zip(weights, p, strict=False))
    # Each selected alone, at its default weight (the authors'), the other term's weight ignored.
    expected = {"cldice": 0.5 * ftl + 0.5 * cl, "skeleton_recall": ftl + sr}
    for selected, value in expected.items():
        config = LossConfig(skeleton_loss=selected, cldice_iterations=4)
        terms = segmentation_loss(outputs, label, config, tube=tube)
        assert terms.segmentation.item() == pytest.approx(value.item(), rel=1e-6), selected
        assert terms.total.item() == pytest.approx(0.7 * terms.segmentation.item(), rel=1e-6)
    scaled = LossConfig(skeleton_loss="skeleton_recall", skeleton_recall_weight=0.25)
    value = segmentation_loss(outputs, label, scaled, tube=tube).segmentation
    assert value.item() == pytest.approx((ftl + 0.25 * sr).item(), rel=1e-6)
    with pytest.raises(ValueError, match="skeleton tubes"):
        segmentation_loss(outputs, label, LossConfig(skeleton_loss="skeleton_recall"))


@pytest.mark.parametrize("levels", [1, 3])
def test_the_continuity_term_is_reported_before_its_weight(levels: int) -> None:
    """LossTerms.continuity is the deep-supervised term the segmentation part is formed from, computed
    here with the public functions (one level is the plain U-Net), and zero without a term."""
    raw = np.stack([_cylinder((16, 16, 16), (8, 8), 2.5), _cylinder((16, 16, 16), (5, 9), 1.5)])
    label = torch.from_numpy(raw)[:, None] * 0.9 + 0.05
    binary = (label >= 0.5).float()
    tube = torch.from_numpy(np.stack([skeleton_tube(v) for v in raw]))[:, None]
    outputs = _outputs(11)[:levels]
    p = level_probabilities(outputs, (16, 16, 16))
    weights = LossConfig().level_weights
    ftl = sum(w * focal_tversky(q, label) for w, q in zip(weights, p, strict=False))
    cl = sum(w * soft_cldice(q, binary, 4, 1.0) for w, q in zip(weights, p, strict=False))
    sr = sum(w * skeleton_recall(q, tube, 1e-5) for w, q in zip(weights, p, strict=False))

    config = LossConfig(skeleton_loss="cldice", cldice_weight=0.3, cldice_iterations=4)
    cldice = segmentation_loss(outputs, label, config)
    assert torch.allclose(cldice.continuity, cl, rtol=1e-6)
    assert torch.allclose(cldice.segmentation, 0.7 * ftl + 0.3 * cldice.continuity, rtol=1e-6)
    config = LossConfig(skeleton_loss="skeleton_recall", skeleton_recall_weight=0.25)
    recall = segmentation_loss(outputs, label, config, tube=tube)
    assert torch.allclose(recall.continuity, sr, rtol=1e-6)
    assert torch.allclose(recall.segmentation, ftl + 0.25 * recall.continuity, rtol=1e-6)
    none = segmentation_loss(outputs, label, LossConfig())
    assert none.continuity.dim() == 0 and none.continuity.item() == 0.0


@pytest.mark.parametrize("selected", ["cldice", "skeleton_recall"])
def test_a_selected_term_at_weight_zero_is_computed_and_counts_for_nothing(
    selected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The term's cost without its effect: the control of an ablation."""
    calls = []
    for name in ("_cldice", "_skeleton_recall"):
        original = getattr(spockmip.objective.losses, name)
        monkeypatch.setattr(
            spockmip.objective.losses, name, lambda *a, _f=original: calls.append(a) or _f(*a)
        )
    label = torch.from_numpy(np.stack([_cylinder((16, 16, 16), (8, 8), 2.5)]))[:, None]
    tube = torch.from_numpy(skeleton_tube(label[0, 0].numpy()))[None, None]
    zero = LossConfig(skeleton_loss=selected, cldice_weight=0.0, skeleton_recall_weight=0.0)
    outputs = _outputs(9, batch=1)
    with_term = segmentation_loss(outputs, label, zero, tube=tube)
    gradients = torch.autograd.grad(with_term.total, outputs)
    assert len(calls) == 3  # one per level
    outputs = _outputs(9, batch=1)
    without = segmentation_loss(outputs, label, LossConfig())
    for a, b in zip(gradients, torch.autograd.grad(without.total, outputs), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(with_term.total, without.total)


def test_the_training_step_reads_the_batch_tube_and_refuses_bad_weights() -> None:
    label = torch.from_numpy(np.stack([_cylinder((16, 16, 16), (8, 8), 2.0)]))[:, None]
    tube = torch.from_numpy(skeleton_tube(label[0, 0].numpy()))[None, None]
    model = lambda image: [image * 4 - 2]  # noqa: E731
    batch = {"image": label.clone(), "label": label, "tube": tube}
    settings = SimpleNamespace(
        loss=LossConfig(skeleton_loss="skeleton_recall"),
        deform=False,
        deformation=DeformationConfig(),
    )
    with_tube = batch_loss(model, batch, settings, torch.device("cpu"), None)  # type: ignore[arg-type]
    recall = skeleton_recall(torch.sigmoid(label * 4 - 2), tube)
    ftl = focal_tversky(torch.sigmoid(label * 4 - 2), label)
    assert with_tube.segmentation.item() == pytest.approx((ftl + recall).item(), rel=1e-6)
    with pytest.raises(ValueError, match="cldice_weight"):
        LossConfig(cldice_weight=1.5)
    with pytest.raises(ValueError, match="skeleton_recall_weight"):
        LossConfig(skeleton_recall_weight=-1.0)
    with pytest.raises(ValueError, match="skeleton_loss"):
        LossConfig(skeleton_loss="clDice")
