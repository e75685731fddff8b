"""The training objective: what one batch costs, DS6's deformation branch included, and the validation losses.

The objective reads only the loss and deformation settings of a run (:class:`ObjectiveSettings`), so it
depends on neither the training loop nor its config class, and benchmarks and tests can call it on a batch
alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from spockmip.data.subjects import normalise_patches
from spockmip.objective.deformation import (
    DeformationConfig,
    Warp,
    consistency_loss,
    random_bspline_field,
    warp_label,
)
from spockmip.objective.losses import (
    LossConfig,
    LossTerms,
    deep_supervision_loss,
    focal_tversky,
    level_focal_tversky,
    level_probabilities,
    segmentation_loss,
    weighted_levels,
)
from spockmip.objective.released_deformation import random_released_deformation
from spockmip.runtime.devices import autocast


class ObjectiveSettings(Protocol):
    """The settings the objective reads (a :class:`spockmip.training.trainer.TrainingConfig` has them)."""

    @property
    def loss(self) -> LossConfig: ...

    @property
    def deform(self) -> bool: ...

    @property
    def deformation(self) -> DeformationConfig: ...


def network_inputs(
    batch: dict[str, torch.Tensor], device: torch.device, layout: torch.memory_format
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's images and labels on ``device``: copied without blocking the host (the loader pins them
    for a GPU), each image divided by its own maximum there (:func:`spockmip.data.subjects.normalise_patches`)
    and laid out as the network's weights are."""
    image = normalise_patches(batch["image"].to(device, non_blocking=True))
    return image.contiguous(memory_format=layout), batch["label"].to(device, non_blocking=True)


def batch_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    config: ObjectiveSettings,
    device: torch.device,
    generator: torch.Generator | None,
    layout: torch.memory_format = torch.contiguous_format,
) -> LossTerms:
    """The training objective of one batch as the loader makes it (raw patches, on the host):
    :func:`spockmip.objective.losses.segmentation_loss` on the network's outputs, with DS6's deformation
    branch added to its segmentation part when ``deform``. ``layout`` is the network's memory format
    (:func:`spockmip.runtime.devices.memory_format`). The continuity terms (clDice, Skeleton Recall), like the
    MIP term, are computed on the first branch only; Skeleton Recall reads the batch's ``tube``."""
    image, label = network_inputs(batch, device, layout)
    outputs = model(image)

    def deformation(probabilities: list[torch.Tensor]) -> torch.Tensor:
        return deformation_terms(model, image, label, outputs[0], probabilities[0], config, generator)

    volume_targets = {
        axis: batch[f"mip_{axis}"].to(device, non_blocking=True) for axis in config.loss.volume_target_axes
    }
    tube = batch["tube"].to(device, non_blocking=True) if config.loss.needs_tube else None
    return segmentation_loss(
        outputs, label, config.loss, volume_targets or None, deformation if config.deform else None, tube
    )


def draw_deformation(
    shape: tuple[int, int, int],
    batch: int,
    config: DeformationConfig,
    generator: torch.Generator,
    device: torch.device,
) -> Warp:
    """One batch's deformation: a single released field for the batch, or a smooth field per sample."""
    if config.field == "released":
        return random_released_deformation(
            shape, config.spacings, config.max_displacements, config.locked_border_points, generator, device
        )
    return random_bspline_field(shape, batch, config, generator, device)


def deformation_terms(
    model: torch.nn.Module,
    image: torch.Tensor,
    label: torch.Tensor,
    logits: torch.Tensor,
    probabilities: torch.Tensor,
    config: ObjectiveSettings,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """DS6's second branch and consistency: FTL on the warped pair, and between the two branches.

    ``logits``/``probabilities`` are the original branch's level-0 output; which of them is warped into
    the consistency target is ``config.deformation.consistency_target``.
    """
    if generator is None:
        raise ValueError("DS6 deformation needs a generator")
    shape = tuple(label.shape[2:])
    deformation = draw_deformation(shape, label.shape[0], config.deformation, generator, image.device)  # type: ignore[arg-type]
    warped_label = warp_label(label, deformation, config.deformation.label_mode)
    warped = level_probabilities(model(deformation.warp(image).to(image.dtype)), shape)
    target = logits.float() if config.deformation.consistency_target == "logits" else probabilities
    branch = deep_supervision_loss(warped, warped_label, config.loss)
    consistency = consistency_loss(warped[0], target, deformation, _ftl(config.loss))
    return branch + config.deformation.consistency_weight * consistency


def _ftl(loss: LossConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Focal Tversky with the run's parameters, as a function of (prediction, target)."""
    return lambda prediction, target: focal_tversky(prediction, target, loss.alpha, loss.gamma, loss.smooth)


@torch.no_grad()
def validation_losses(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    config: ObjectiveSettings,
    device: torch.device,
    layout: torch.memory_format = torch.contiguous_format,
) -> dict[str, float]:
    """The mean over the validation patches' batches of each validation criterion
    (:data:`spockmip.settings.catalogue.VALIDATION_CRITERIA`): ``level0``, the Focal Tversky of the
    full-resolution output, and ``released``, the deep-supervision sum Σ_l w_l · FTL over every output level,
    side outputs upsampled to the patch as in training (what the released code keeps its best epoch by; no MIP
    term).
    With one output and w_0 = 1 the two are equal.

    The per-batch values stay on the device until the end: one wait for the GPU per validation, not one
    per batch.
    """
    model.eval()
    full, weighted = [], []
    for batch in loader:
        image, label = network_inputs(batch, device, layout)
        with autocast(device):
            outputs = model(image)
        terms = level_focal_tversky(level_probabilities(outputs, label.shape[2:]), label, config.loss)
        full.append(terms[0])
        weighted.append(weighted_levels(terms, config.loss.level_weights))
    model.train()
    means = torch.stack([torch.stack(full), torch.stack(weighted)]).double().cpu().numpy()
    return {"level0": float(np.mean(means[0])), "released": float(np.mean(means[1]))}
