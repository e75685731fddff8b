"""Training one (variant, fold): resumable, deterministic, CPU-first.

Determinism and resumption come from one rule: everything random in epoch ``e`` (the patch plan, the
shuffling, the DS6 deformations) is drawn from generators seeded by ``(seed, e)``, and the full state
(model, optimizer, AMP scaler, history, best value) is written atomically after every epoch. A run
killed at any point and started again therefore continues from the last finished epoch and ends with the
same weights as an uninterrupted run. A state written under different settings, by other code or for other
data is not resumed (:mod:`spockmip.runs`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from spockmip.data import PatchDataset, Subject, grid_plan, seed_worker
from spockmip.deformation import (
    DeformationConfig,
    Warp,
    consistency_loss,
    random_bspline_field,
    warp_label,
)
from spockmip.devices import autocast, resolve_threads, select_device
from spockmip.losses import (
    LossConfig,
    LossTerms,
    deep_supervision_loss,
    focal_tversky,
    level_probabilities,
    segmentation_loss,
)
from spockmip.models import UNetBase, build_model
from spockmip.outputs import atomic_path, check_writable
from spockmip.provenance import library_fingerprint
from spockmip.released_deformation import random_released_deformation
from spockmip.runs import claim, data_identity, resumable_state
from spockmip.sampling import QueuePatches, Sampling, epoch_dataset, resolve_sampling
from spockmip.weights import spec_of

log = logging.getLogger(__name__)
HISTORY_FIELDS = (
    "epoch",
    "train_loss",
    "train_segmentation",
    "train_mip",
    "validation_ftl",
    "best",
)


@dataclass(frozen=True)
class TrainingConfig:
    """Every hyper-parameter of a training run; defaults are the released code's (docs/method.md)."""

    model: str = "unetmss"
    init_features: int = 64
    activation: str | None = None
    patch_size: tuple[int, int, int] = (64, 64, 64)
    strides: tuple[int, int, int] = (32, 32, 16)
    sampling: Sampling = "released"
    batch_size: int = 15
    epochs: int = 50
    patches_per_epoch: int = 8000
    learning_rate: float = 1e-4
    gradient_clip: float = 1.0
    seed: int = 2020
    deform: bool = False
    deformation: DeformationConfig = field(default_factory=DeformationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    num_workers: int = 0

    def __post_init__(self) -> None:
        resolve_sampling(self.sampling, bool(self.loss.axes))
        for name in ("batch_size", "epochs", "patches_per_epoch", "init_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def sampler(self) -> str:
        """The sampler this run uses (``released`` resolved by whether the run has a MIP term)."""
        return resolve_sampling(self.sampling, bool(self.loss.axes))

    def fingerprint(self) -> str:
        """Hash of the settings; a saved state is resumed only under the same one."""
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainingPaths:
    """Where a run writes.

    ``best`` and ``history`` are the results and appear only when the run has finished, so a workflow
    manager never sees a half-trained model as done. ``state_dir`` holds the resume state, the best
    weights so far and the live learning curve; it must outlive a killed job (it is not a declared output:
    Snakemake deletes those of failed jobs).
    """

    best: Path
    history: Path
    state_dir: Path

    @property
    def checkpoint(self) -> Path:
        return self.state_dir / "checkpoint.pt"

    @property
    def best_so_far(self) -> Path:
        return self.state_dir / "best.pt"

    @property
    def live_history(self) -> Path:
        return self.state_dir / "history.csv"

    @property
    def state_files(self) -> tuple[Path, Path, Path]:
        """The resume state, checkpoint first: set aside together when it does not belong to the run."""
        return self.checkpoint, self.best_so_far, self.live_history


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def batch_loss(
    model: UNetBase,
    batch: dict[str, torch.Tensor],
    config: TrainingConfig,
    device: torch.device,
    generator: torch.Generator | None,
) -> LossTerms:
    """The training objective of one batch: :func:`spockmip.losses.segmentation_loss` on the network's
    outputs, with DS6's deformation branch added to its segmentation part when ``deform``."""
    image, label = batch["image"].to(device), batch["label"].to(device)
    outputs = model(image)

    def deformation(probabilities: list[torch.Tensor]) -> torch.Tensor:
        return deformation_terms(model, image, label, outputs[0], probabilities[0], config, generator)

    volume_targets = {axis: batch[f"mip_{axis}"] for axis in config.loss.volume_target_axes}
    return segmentation_loss(
        outputs, label, config.loss, volume_targets or None, deformation if config.deform else None
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
    model: UNetBase,
    image: torch.Tensor,
    label: torch.Tensor,
    logits: torch.Tensor,
    probabilities: torch.Tensor,
    config: TrainingConfig,
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


def _ftl(loss: LossConfig):
    return lambda prediction, target: focal_tversky(prediction, target, loss.alpha, loss.gamma, loss.smooth)


@torch.no_grad()
def validation_ftl(
    model: UNetBase, loader: torch.utils.data.DataLoader, config: TrainingConfig, device
) -> float:
    """Mean Focal Tversky of the full-resolution output over the validation grid patches."""
    model.eval()
    values = []
    for batch in loader:
        image, label = batch["image"].to(device), batch["label"].to(device)
        with autocast(device):
            logits = model(image)[0]
        values.append(float(_ftl(config.loss)(torch.sigmoid(logits.float()), label)))
    model.train()
    return float(np.mean(values))


def _loader(
    dataset: torch.utils.data.Dataset, config: TrainingConfig, shuffle: bool, seed: int
) -> torch.utils.data.DataLoader:
    """Batches of ``dataset``; torchio's queue is read in its own order, in this process, as it requires."""
    queue = isinstance(dataset, QueuePatches)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle and not queue,
        num_workers=0 if queue else config.num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    with atomic_path(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)


def _save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def train(
    train_subjects: Sequence[Subject],
    validation_subjects: Sequence[Subject],
    config: TrainingConfig,
    paths: TrainingPaths,
    device: torch.device | str | None = None,
    threads: int | None = None,
    progress: bool = True,
    *,
    fold: int | None = None,
) -> list[dict[str, Any]]:
    """Train (or resume) one run; returns the per-epoch history also written to ``paths.history``.

    ``fold`` is part of the run's identity: a state saved for another fold (or other subjects) is never
    resumed. The outputs are checked before anything is written, and the state folder stays locked
    against a second run for the whole training (:mod:`spockmip.runs`).
    """
    for output in (paths.best, paths.history):
        check_writable(output)
    check_writable(paths.state_dir, folder=True)
    data = data_identity({"train": train_subjects, "validation": validation_subjects}, fold)
    with claim(paths.state_dir, (*paths.state_files, paths.best, paths.history)):
        return _train(train_subjects, validation_subjects, config, paths, device, threads, progress, data)


def _train(
    train_subjects: Sequence[Subject],
    validation_subjects: Sequence[Subject],
    config: TrainingConfig,
    paths: TrainingPaths,
    device: torch.device | str | None,
    threads: int | None,
    progress: bool,
    data: dict[str, Any],
) -> list[dict[str, Any]]:
    device = select_device(str(device) if device else None)
    torch.set_num_threads(resolve_threads(threads))
    fingerprint = config.fingerprint()
    # The code of this module and of every spockmip module it imports: a state is resumed by that code only.
    code = library_fingerprint(__file__)
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.init_features, config.activation).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    history: list[dict[str, Any]] = []
    best = float("inf")
    state = resumable_state(paths.state_files, fingerprint, code, data)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        history, best = state["history"], state["best"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming after epoch %d of %d (%s)", len(history), config.epochs, paths.checkpoint)
    if not train_subjects or not validation_subjects:
        raise ValueError("training needs at least one training and one validation subject")
    axes = config.loss.volume_target_axes
    validation = PatchDataset(
        validation_subjects,
        grid_plan(validation_subjects, config.patch_size, config.strides),
        config.patch_size,
    )
    validation_loader = _loader(validation, config, shuffle=False, seed=config.seed)
    log.info(
        "sampler %s (sampling: %s), MIP pairing %s, baseline scale %s%s",
        config.sampler,
        config.sampling,
        config.loss.mip_pairing,
        config.loss.baseline_scale,
        f", DS6 deformation {config.deformation}" if config.deform else "",
    )
    model.train()
    for epoch in range(len(history), config.epochs):
        started = time.perf_counter()
        seed = _epoch_seed(config.seed, epoch)
        dataset = epoch_dataset(
            train_subjects,
            config.sampler,
            config.patch_size,
            config.strides,
            config.patches_per_epoch,
            axes,
            seed,
        )
        generator = torch.Generator(device=device).manual_seed(seed) if config.deform else None
        sums = np.zeros(3)
        batches = tqdm(
            _loader(dataset, config, shuffle=True, seed=seed),
            desc=f"epoch {epoch + 1}/{config.epochs}",
            disable=not progress,
            mininterval=2.0,
        )
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            with autocast(device):
                terms = batch_loss(model, batch, config, device, generator)
            scaler.scale(terms.total).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.gradient_clip)
            scaler.step(optimizer)
            scaler.update()
            values = [float(t.detach()) for t in terms]
            sums += values
            batches.set_postfix(loss=f"{values[0]:.4f}")
        value = validation_ftl(model, validation_loader, config, device)
        improved = value < best or not paths.best_so_far.is_file()
        if improved:
            best = value
            _save(paths.best_so_far, _weights_payload(model, epoch + 1, value, config))
        means = sums / max(len(batches), 1)
        history.append(dict(zip(HISTORY_FIELDS, [epoch + 1, *means.tolist(), value, improved], strict=True)))
        _save(
            paths.checkpoint, _state_payload(fingerprint, code, data, model, optimizer, scaler, history, best)
        )
        _write_history(paths.live_history, history)
        log.info(
            "epoch %d/%d: loss %.4f, validation FTL %.4f%s, %.1f s",
            epoch + 1,
            config.epochs,
            means[0],
            value,
            " (best)" if improved else "",
            time.perf_counter() - started,
        )
    with atomic_path(paths.best) as temporary:
        temporary.write_bytes(paths.best_so_far.read_bytes())
    _write_history(paths.history, history)
    return history


def _weights_payload(model: UNetBase, epoch: int, value: float, config: TrainingConfig) -> dict[str, Any]:
    """Self-describing weights: the spec rebuilds the network, ``state_dict`` is the released key, and the
    training geometry is what ``spockmip predict`` slides its windows with unless told otherwise."""
    return {
        "model_spec": spec_of(model).to_dict(),
        "state_dict": model.state_dict(),
        "inference": {"patch_size": list(config.patch_size), "strides": list(config.strides)},
        "epoch": epoch,
        "validation_ftl": value,
    }


def _state_payload(
    fingerprint: str, code: str, data: dict[str, Any], model, optimizer, scaler, history, best: float
) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "code": code,
        "data": data,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "history": history,
        "best": best,
        "torch_rng": torch.get_rng_state(),
    }


LOSS_KEYS = (
    "alpha",
    "gamma",
    "smooth",
    "level_weights",
    "mip_axis",
    "mip_target",
    "mip_pairing",
    "floss_weight",
    "mip_weight",
    "baseline_scale",
)
DEFORMATION_KEYS = {
    "deformation": "field",
    "deformation_spacings": "spacings",
    "deformation_max_displacements": "max_displacements",
    "deformation_label_mode": "label_mode",
    "consistency_target": "consistency_target",
    "consistency_weight": "consistency_weight",
}


# Workflow keys of a variant that describe the comparison, not the training run.
COMPARISON_KEYS = ("baseline",)


def variant_settings(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The flat training settings of variant ``name`` of a workflow config (``training:`` and ``variants:``
    sections): the shared defaults overridden by the variant's own keys, less its comparison keys.

    The workflow and ``spockmip train --config`` both call this, so one settings file trains the same
    run either way.
    """
    variants = config.get("variants") or {}
    if name not in variants:
        known = ", ".join(variants) or "none"
        raise ValueError(f"variants.{name}: no such variant (known: {known})")
    variant = {key: value for key, value in variants[name].items() if key not in COMPARISON_KEYS}
    return {**(config.get("training") or {}), **variant}


def training_config_from_settings(settings: Mapping[str, Any]) -> TrainingConfig:
    """Build the config from flat settings (a workflow config section); unknown keys are an error."""
    settings = dict(settings)
    known = {f.name for f in fields(TrainingConfig)} - {"loss", "deformation"}
    unknown = sorted(set(settings) - known - set(LOSS_KEYS) - set(DEFORMATION_KEYS))
    if unknown:
        raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
    loss = LossConfig(**{key: _tuple_if_list(settings.pop(key)) for key in LOSS_KEYS if key in settings})
    deformation = DeformationConfig(
        **{field_name: settings.pop(key) for key, field_name in DEFORMATION_KEYS.items() if key in settings}
    )
    for key in ("patch_size", "strides"):
        if key in settings:
            settings[key] = tuple(settings[key])
    return TrainingConfig(**settings, loss=loss, deformation=deformation)


def _tuple_if_list(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
