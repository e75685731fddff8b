"""Focal Tversky loss, deep supervision, the SPOCKMIP MIP loss, and the continuity terms soft-clDice and
Skeleton Recall.

Every loss here takes probabilities (sigmoid already applied), computes in fp32 even under autocast (the
soft counts are sums over ~10⁶ voxels), and is vectorised over the batch: per-sample quantities are sums
over all but the first dimension, never a Python loop over samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from spockmip.axes import VolumeAxis
from spockmip.objective.mip import network_patch_mip, network_patch_mips, projection_axes, released_patch_mips
from spockmip.settings.lookup import check_fields, default

MipTarget = Literal["volume", "patch"]
MipPairing = Literal["released", "consistent"]
BaselineScale = Literal["released", "unit"]
SkeletonLoss = Literal["none", "cldice", "skeleton_recall"]
_PROJECTIONS = {"released": released_patch_mips, "consistent": network_patch_mips}


@dataclass(frozen=True)
class LossConfig:
    """Loss hyper-parameters, defaults from the released SPOCKMIP training code.

    ``mip_pairing``: ``released`` projects the prediction over another axis than the target (the released
    code's defect, which produced the paper's numbers); ``consistent`` projects both over the named axis
    (the described method). ``baseline_scale``: without a MIP term the released total is still
    ``floss_weight · floss`` (``released``); ``unit`` back-propagates floss itself. ``skeleton_loss``
    selects the continuity term (none, soft-clDice or Skeleton Recall); the ``cldice_*`` and
    ``skeleton_recall_*`` fields apply only to their own term.
    """

    alpha: float = default("training", "alpha")
    gamma: float = default("training", "gamma")
    smooth: float = default("training", "smooth")
    level_weights: tuple[float, ...] = default("training", "level_weights")
    mip_axis: str = default("training", "mip_axis")
    mip_target: MipTarget = default("training", "mip_target")
    mip_pairing: MipPairing = default("training", "mip_pairing")
    floss_weight: float = default("training", "floss_weight")
    mip_weight: float = default("training", "mip_weight")
    baseline_scale: BaselineScale = default("training", "baseline_scale")
    skeleton_loss: SkeletonLoss = default("training", "skeleton_loss")
    cldice_weight: float = default("training", "cldice_weight")
    cldice_iterations: int = default("training", "cldice_iterations")
    cldice_smooth: float = default("training", "cldice_smooth")
    skeleton_recall_weight: float = default("training", "skeleton_recall_weight")
    skeleton_recall_smooth: float = default("training", "skeleton_recall_smooth")

    def __post_init__(self) -> None:
        check_fields(self, "loss")
        if self.cldice_smooth <= 0 or self.skeleton_recall_smooth <= 0:
            raise ValueError("cldice_smooth and skeleton_recall_smooth must be positive")

    @property
    def axes(self) -> tuple[VolumeAxis, ...]:
        return projection_axes(self.mip_axis)

    @property
    def needs_tube(self) -> bool:
        """Whether batches must carry the label's skeleton tube
        (:func:`spockmip.data.subjects.skeleton_tube`)."""
        return self.skeleton_loss == "skeleton_recall"

    @property
    def volume_target_axes(self) -> tuple[VolumeAxis, ...]:
        """Axes whose whole-volume label MIPs the data must supply (none for ``mip_target: patch``)."""
        return self.axes if self.mip_target == "volume" else ()


def _tversky_counts(
    prediction: torch.Tensor, target: torch.Tensor, per_sample: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    p, g = prediction.float(), target.float()
    dims = tuple(range(1, p.dim())) if per_sample else tuple(range(p.dim()))
    tp = (p * g).sum(dims)
    fn = ((1 - p) * g).sum(dims)
    fp = (p * (1 - g)).sum(dims)
    return tp, fn, fp


def focal_tversky(
    prediction: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.7,
    gamma: float = 0.75,
    smooth: float = 1.0,
    per_sample: bool = False,
) -> torch.Tensor:
    """|1 − TI|^γ with TI = (TP + s) / (TP + α·FN + (1−α)·FP + s).

    α > 0.5 weighs missed vessel voxels more than false alarms, which suits a ~1 % foreground. With
    ``per_sample`` the index is computed per batch element and the losses averaged (the MIP loss's
    reduction); otherwise the whole batch is one flattened set (the segmentation loss's reduction).
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    tp, fn, fp = _tversky_counts(prediction, target, per_sample)
    tversky = (tp + smooth) / (tp + alpha * fn + (1 - alpha) * fp + smooth)
    return (1 - tversky).abs().pow(gamma).mean()


def level_probabilities(outputs: Sequence[torch.Tensor], size: Sequence[int]) -> list[torch.Tensor]:
    """Sigmoid of every output, side outputs upsampled (nearest) to the patch size ``size``.

    Nearest upsampling commutes with the sigmoid, so the sigmoid runs on the small tensors first.
    """
    probabilities = []
    for logits in outputs:
        prob = torch.sigmoid(logits.float())
        if tuple(prob.shape[2:]) != tuple(size):
            prob = F.interpolate(prob, size=tuple(size), mode="nearest")
        probabilities.append(prob)
    return probabilities


def weighted_levels(terms: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Σ_l w_l · term_l over the output levels, full resolution first."""
    if len(terms) > len(weights):
        raise ValueError(f"{len(terms)} outputs but only {len(weights)} level weights")
    return sum(w * t for w, t in zip(weights, terms, strict=False))  # type: ignore[return-value]


def level_focal_tversky(
    probabilities: Sequence[torch.Tensor], target: torch.Tensor, config: LossConfig
) -> list[torch.Tensor]:
    """FTL(p_l, y) of each output level with the run's parameters: the terms of the deep-supervision loss,
    which validation also reports one by one (level 0 alone, or weighted)."""
    return [focal_tversky(p, target, config.alpha, config.gamma, config.smooth) for p in probabilities]


def deep_supervision_loss(
    probabilities: Sequence[torch.Tensor], target: torch.Tensor, config: LossConfig
) -> torch.Tensor:
    """Σ_l w_l · FTL(p_l, y) over the output levels (one level for the plain U-Net)."""
    return weighted_levels(level_focal_tversky(probabilities, target, config), config.level_weights)


def mip_loss(
    probabilities: Sequence[torch.Tensor],
    mip_targets: Mapping[VolumeAxis, torch.Tensor],
    config: LossConfig,
) -> torch.Tensor:
    """Σ_axes Σ_l w_l · mean_b FTL(MIP_axis(p_l), target_axis), on patches in network order.

    ``mip_targets[axis]`` is (B, 1, A, B') in the volume's order of the two axes that remain after
    projecting over ``axis`` (see :func:`spockmip.objective.mip.crop_mip`). The prediction's projection
    follows
    ``config.mip_pairing``; the released pairing compares 2D arrays of different axes element by element,
    which only lines up on cubic patches, so other shapes are refused rather than silently misread.
    """
    # All axes of one level are projected together: one fused backward per level instead of one per axis.
    project = _PROJECTIONS[config.mip_pairing]
    projections = [project(p, config.axes) for p in probabilities]
    total = torch.zeros((), device=probabilities[0].device)
    for axis in config.axes:
        target = mip_targets[axis]
        predicted = tuple(projections[0][axis].shape)
        if predicted != tuple(target.shape):
            raise ValueError(
                f"mip_pairing {config.mip_pairing!r}: the prediction's MIP {predicted} and the target "
                f"{tuple(target.shape)} differ; the released pairing needs a cubic patch"
            )
        terms = [
            focal_tversky(level[axis], target, config.alpha, config.gamma, config.smooth, per_sample=True)
            for level in projections
        ]
        total = total + weighted_levels(terms, config.level_weights)
    return total


def label_patch_mip_targets(
    label: torch.Tensor, axes: Sequence[VolumeAxis]
) -> dict[VolumeAxis, torch.Tensor]:
    """MIP targets of the label patch itself (``mip_target: patch``), for network-ordered labels."""
    return {axis: network_patch_mip(label, axis) for axis in axes}


class LossTerms(NamedTuple):
    """The total to back-propagate and its parts, kept apart for the learning curves.

    ``segmentation`` is the whole segmentation part, the weighted continuity term included;
    ``continuity`` is that term before its weight (Σ_l w_l·clDice or Σ_l w_l·Skeleton Recall, zero
    without one), so that a curve shows whether the term itself falls, which the sum can hide.
    """

    total: torch.Tensor
    segmentation: torch.Tensor
    mip: torch.Tensor
    continuity: torch.Tensor


def combine(
    segmentation: torch.Tensor, mip: torch.Tensor, config: LossConfig, continuity: torch.Tensor
) -> LossTerms:
    """0.7·floss + 0.3·MIP loss; without a MIP axis 0.7·floss (released) or floss (``baseline_scale: unit``).

    The released code starts both sums at 0.001 and always forms 0.7·floss + 0.3·mip; without a MIP term
    mip stays at its start value. Those constants shift the reported loss, never the gradient, so they are
    left out here; the 0.7 scale of the baseline is kept because gradient clipping makes it matter.
    ``continuity`` is only reported: it is already part of ``segmentation``.
    """
    if not config.axes:
        scale = config.floss_weight if config.baseline_scale == "released" else 1.0
        return LossTerms(scale * segmentation, segmentation, mip, continuity)
    return LossTerms(
        config.floss_weight * segmentation + config.mip_weight * mip, segmentation, mip, continuity
    )


def segmentation_loss(
    outputs: Sequence[torch.Tensor],
    label: torch.Tensor,
    config: LossConfig,
    volume_mip_targets: Mapping[VolumeAxis, torch.Tensor] | None = None,
    extra_segmentation: Callable[[list[torch.Tensor]], torch.Tensor] | None = None,
    tube: torch.Tensor | None = None,
) -> LossTerms:
    """The SPOCKMIP objective for one batch of network-ordered logits and labels: the one implementation
    that training runs (:func:`spockmip.objective.batch.batch_loss`), so testing it tests training's
    objective.

    ``volume_mip_targets`` are the whole-volume MIP crops of each sample; they are required when the
    config asks for ``mip_target: volume`` and ignored for ``patch``. ``extra_segmentation`` adds a term
    computed from the level probabilities to the segmentation part before the MIP term, as DS6's
    deformation branch does; it is called at that point so the operations keep training's order.

    With ``skeleton_loss`` cldice the deep-supervised FTL becomes (1 − w)·FTL + w·clDice, with
    skeleton_recall FTL + w_sr·Skeleton Recall (:func:`continuity_segmentation`), before the extra term;
    ``tube`` is then the batch's skeleton tubes (required for Skeleton Recall). The term before its weight
    is returned as well (:attr:`LossTerms.continuity`). With ``skeleton_loss`` none (the default) nothing
    of them is computed, whatever the weights, the objective is the one without them, bit for bit, and
    ``continuity`` is zero.
    """
    probabilities = level_probabilities(outputs, label.shape[2:])
    floss = deep_supervision_loss(probabilities, label, config)
    floss, continuity = continuity_segmentation(floss, probabilities, label, config, tube)
    if extra_segmentation is not None:
        floss = floss + extra_segmentation(probabilities)
    mip = mip_term(probabilities, label, config, volume_mip_targets)
    return combine(floss, mip, config, continuity)


def mip_term(
    probabilities: Sequence[torch.Tensor],
    label: torch.Tensor,
    config: LossConfig,
    volume_mip_targets: Mapping[VolumeAxis, torch.Tensor] | None,
) -> torch.Tensor:
    """The MIP loss with targets chosen by ``config.mip_target``; zero when no axis is configured."""
    if not config.axes:
        return torch.zeros((), device=label.device)
    if config.mip_target == "patch":
        targets = label_patch_mip_targets(label, config.axes)
    elif volume_mip_targets is None:
        raise ValueError("mip_target 'volume' needs the whole-volume MIP crops of each patch")
    else:
        targets = {axis: volume_mip_targets[axis].to(label.device) for axis in config.axes}
    return mip_loss(probabilities, targets, config)


# ---------------------------------------------------------------------------------------------------------
# Continuity terms: soft-clDice (Shit et al., CVPR 2021) and Skeleton Recall (Kirchhoff et al., ECCV 2024)


def _expect_probabilities(function: str, tensor: torch.Tensor) -> None:
    low, high = float(tensor.detach().min()), float(tensor.detach().max())
    if not (low >= 0.0 and high <= 1.0):
        raise ValueError(
            f"{function} expects probabilities in [0, 1], got values in [{low:g}, {high:g}] "
            "(apply the sigmoid to logits first)"
        )


def _expect_binary(function: str, target: torch.Tensor) -> None:
    if not bool(((target == 0) | (target == 1)).all()):
        raise ValueError(f"{function} expects a binary label (0 or 1); binarise it (label >= 0.5) first")


def _expect_same_shape(function: str, prediction: torch.Tensor, target: torch.Tensor) -> None:
    if prediction.shape != target.shape:
        raise ValueError(
            f"{function}: prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
        )
    if prediction.dim() != 5:
        raise ValueError(f"{function} expects (B, C, D, H, W) volumes, got {tuple(prediction.shape)}")


def binarise(label: torch.Tensor) -> torch.Tensor:
    """The label as 0/1 floats, foreground where it is at least 0.5 (padded or warped labels are not
    binary)."""
    return (label >= 0.5).float()


def _soft_min_pool(x: torch.Tensor, kernel: tuple[int, int, int]) -> torch.Tensor:
    return -F.max_pool3d(-x, kernel, stride=1, padding=tuple(k // 2 for k in kernel))


def _soft_erode(x: torch.Tensor) -> torch.Tensor:
    """Soft erosion: the voxel-wise minimum over a 6-neighbourhood cross, as three 1D min-pools."""
    along = [_soft_min_pool(x, kernel) for kernel in ((3, 1, 1), (1, 3, 1), (1, 1, 3))]
    return torch.minimum(torch.minimum(along[0], along[1]), along[2])


def _soft_dilate(x: torch.Tensor) -> torch.Tensor:
    """Soft dilation: a 3×3×3 max-pool."""
    return F.max_pool3d(x, 3, stride=1, padding=1)


def _soft_skeleton(x: torch.Tensor, iterations: int) -> torch.Tensor:
    eroded = _soft_erode(x)
    skeleton = F.relu(x - _soft_dilate(eroded))
    for _ in range(iterations):
        x = eroded
        eroded = _soft_erode(x)  # the erosion of this step's opening is the next step's erosion
        delta = F.relu(x - _soft_dilate(eroded))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton


def soft_skeleton(x: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """Differentiable soft skeleton of (B, C, D, H, W) probabilities by iterated soft erosion and opening.

    skel₀ = relu(x − open(x)); then ``iterations`` times: x ← erode(x), δ = relu(x − open(x)),
    skel ← skel + relu(δ − skel·δ). Only structures up to about ``iterations`` voxels in radius are reduced
    to their centre; thicker ones keep the part not yet eroded.
    """
    _expect_probabilities("soft_skeleton", x)
    if x.dim() != 5:
        raise ValueError(f"soft_skeleton expects (B, C, D, H, W) volumes, got {tuple(x.shape)}")
    return _soft_skeleton(x.float(), iterations)


def _cldice(
    prediction: torch.Tensor,
    target: torch.Tensor,
    target_skeleton: torch.Tensor,
    iterations: int,
    smooth: float,
) -> torch.Tensor:
    prediction_skeleton = _soft_skeleton(prediction, iterations)
    precision = ((prediction_skeleton * target).sum() + smooth) / (prediction_skeleton.sum() + smooth)
    sensitivity = ((target_skeleton * prediction).sum() + smooth) / (target_skeleton.sum() + smooth)
    return 1 - 2 * precision * sensitivity / (precision + sensitivity)


def soft_cldice(
    prediction: torch.Tensor, target: torch.Tensor, iterations: int = 10, smooth: float = 1.0
) -> torch.Tensor:
    """1 − soft clDice of probabilities against a binary label, summed over the whole batch.

    Tprec = (Σ skel(p)·g + s) / (Σ skel(p) + s), Tsens = (Σ skel(g)·p + s) / (Σ skel(g) + s),
    loss = 1 − 2·Tprec·Tsens / (Tprec + Tsens).
    """
    _expect_same_shape("soft_cldice", prediction, target)
    _expect_probabilities("soft_cldice", prediction)
    _expect_binary("soft_cldice", target)
    p, g = prediction.float(), target.float()
    with torch.no_grad():
        target_skeleton = _soft_skeleton(g, iterations)
    return _cldice(p, g, target_skeleton, iterations, smooth)


def _skeleton_recall(prediction: torch.Tensor, tube: torch.Tensor, smooth: float) -> torch.Tensor:
    dims = tuple(range(1, prediction.dim()))
    recall = ((prediction * tube).sum(dims) + smooth) / (tube.sum(dims) + smooth)
    return (1 - recall).mean()


def skeleton_recall(prediction: torch.Tensor, tube: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """1 − soft recall of the foreground probability on the label's skeleton tube, per sample, averaged
    over the batch: recall_i = (Σ p_i·tube_i + s) / (Σ tube_i + s). Voxels outside the tube get no
    gradient."""
    _expect_same_shape("skeleton_recall", prediction, tube)
    _expect_probabilities("skeleton_recall", prediction)
    _expect_binary("skeleton_recall", tube)
    return _skeleton_recall(prediction.float(), tube.float(), smooth)


def continuity_segmentation(
    floss: torch.Tensor,
    probabilities: Sequence[torch.Tensor],
    label: torch.Tensor,
    config: LossConfig,
    tube: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The segmentation part with the continuity term, and the term before its weight:
    ((1 − w)·floss + w·C, C) with C = Σ_l w_l·clDice(p_l, g) for ``skeleton_loss`` cldice,
    (floss + w_sr·C, C) with C = Σ_l w_l·SkeletonRecall(p_l, tube) for skeleton_recall, and
    (floss, 0) for none.

    ``probabilities`` are the level probabilities at the patch size (sigmoid outputs, so valid by
    construction), ``label`` is binarised here at 0.5 and its soft skeleton, which no level changes, is
    computed once without gradient. C is the tensor the sum is formed from, with (1 − w)·floss computed
    before it as in the sum written out: reporting C adds no operation to the objective or its gradient.
    """
    if config.skeleton_loss == "cldice":
        target = binarise(label)
        with torch.no_grad():
            target_skeleton = _soft_skeleton(target, config.cldice_iterations)
        terms = [
            _cldice(p, target, target_skeleton, config.cldice_iterations, config.cldice_smooth)
            for p in probabilities
        ]
        kept = (1 - config.cldice_weight) * floss
        continuity = weighted_levels(terms, config.level_weights)
        return kept + config.cldice_weight * continuity, continuity
    if config.skeleton_loss == "skeleton_recall":
        if tube is None:
            raise ValueError(
                "skeleton_loss skeleton_recall needs the batch's skeleton tubes (the 'tube' entry the data "
                "pipeline adds, spockmip.data.subjects.skeleton_tube)"
            )
        tube = tube.to(probabilities[0].device).float()
        terms = [_skeleton_recall(p, tube, config.skeleton_recall_smooth) for p in probabilities]
        continuity = weighted_levels(terms, config.level_weights)
        return floss + config.skeleton_recall_weight * continuity, continuity
    return floss, torch.zeros((), device=label.device)
