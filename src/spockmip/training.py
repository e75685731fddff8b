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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from spockmip.data import BatchLoading, PatchDataset, Subject, grid_plan, normalise_patches
from spockmip.deformation import (
    DeformationConfig,
    Warp,
    consistency_loss,
    random_bspline_field,
    warp_label,
)
from spockmip.devices import (
    autocast,
    compiled,
    loader_workers,
    memory_format,
    resolve_threads,
    select_device,
)
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
from spockmip.sampling import EpochBatches, Sampling
from spockmip.settings import (
    EXECUTION,
    check_training,
    complete_training,
    default,
    nested_training,
    resolve_sampling,
)
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
# Steps between updates of the progress bar's loss: reading it waits for the GPU, so not every step.
PROGRESS_EVERY = 25
# Settings that choose how a run is executed, not what it computes; they are left out of the fingerprint,
# so they never decide whether a saved state is resumed. The number of loader workers changes nothing a run
# computes (tested). ``compile`` changes results in their last bits (fused kernels round differently), but
# so do the device and the thread count, which were never part of the fingerprint: the training is the
# same, and a resumed run stays exact as long as the setting does. Were it included, switching compilation
# on to speed up a long run would throw its progress away. A run resumed under another ``compile`` says so
# in the log (:func:`_train`), so the change is never silent.
EXECUTION_SETTINGS = EXECUTION


@dataclass(frozen=True)
class TrainingConfig:
    """Every hyper-parameter of a training run; defaults are the released code's (docs/method.md)."""

    model: str = default("training", "model")
    init_features: int = default("training", "init_features")
    activation: str | None = default("training", "activation")
    patch_size: tuple[int, int, int] = default("training", "patch_size")
    strides: tuple[int, int, int] = default("training", "strides")
    sampling: Sampling = default("training", "sampling")
    batch_size: int = default("training", "batch_size")
    epochs: int = default("training", "epochs")
    patches_per_epoch: int = default("training", "patches_per_epoch")
    learning_rate: float = default("training", "learning_rate")
    gradient_clip: float = default("training", "gradient_clip")
    seed: int = default("training", "seed")
    deform: bool = default("training", "deform")
    deformation: DeformationConfig = field(default_factory=DeformationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    num_workers: int | None = default("training", "num_workers")
    compile: bool = default("training", "compile")

    def __post_init__(self) -> None:
        resolve_sampling(self.sampling, bool(self.loss.axes))
        for name in ("batch_size", "epochs", "patches_per_epoch", "init_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be 0 or more, got {self.num_workers}")

    @property
    def sampler(self) -> str:
        """The sampler this run uses (``released`` resolved by whether the run has a MIP term)."""
        return resolve_sampling(self.sampling, bool(self.loss.axes))

    def fingerprint(self) -> str:
        """Hash of the settings but :data:`EXECUTION_SETTINGS`; a saved state is resumed only under the same
        one."""
        settings = {k: v for k, v in asdict(self).items() if k not in EXECUTION_SETTINGS}
        text = json.dumps(settings, sort_keys=True, default=str)
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


def network_inputs(
    batch: dict[str, torch.Tensor], device: torch.device, layout: torch.memory_format
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's images and labels on ``device``: copied without blocking the host (the loader pins them
    for a GPU), each image divided by its own maximum there (:func:`spockmip.data.normalise_patches`) and
    laid out as the network's weights are."""
    image = normalise_patches(batch["image"].to(device, non_blocking=True))
    return image.contiguous(memory_format=layout), batch["label"].to(device, non_blocking=True)


def batch_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    config: TrainingConfig,
    device: torch.device,
    generator: torch.Generator | None,
    layout: torch.memory_format = torch.contiguous_format,
) -> LossTerms:
    """The training objective of one batch as the loader makes it (raw patches, on the host):
    :func:`spockmip.losses.segmentation_loss` on the network's outputs, with DS6's deformation branch added
    to its segmentation part when ``deform``. ``layout`` is the network's memory format
    (:func:`spockmip.devices.memory_format`)."""
    image, label = network_inputs(batch, device, layout)
    outputs = model(image)

    def deformation(probabilities: list[torch.Tensor]) -> torch.Tensor:
        return deformation_terms(model, image, label, outputs[0], probabilities[0], config, generator)

    volume_targets = {
        axis: batch[f"mip_{axis}"].to(device, non_blocking=True) for axis in config.loss.volume_target_axes
    }
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
    model: torch.nn.Module,
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
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    config: TrainingConfig,
    device: torch.device,
    layout: torch.memory_format = torch.contiguous_format,
) -> float:
    """Mean Focal Tversky of the full-resolution output over the validation grid patches.

    The per-batch values stay on the device until the end: one wait for the GPU per validation, not one
    per batch.
    """
    model.eval()
    values = []
    for batch in loader:
        image, label = network_inputs(batch, device, layout)
        with autocast(device):
            logits = model(image)[0]
        values.append(_ftl(config.loss)(torch.sigmoid(logits.float()), label))
    model.train()
    return float(np.mean(torch.stack(values).double().cpu().numpy()))


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


@dataclass
class Trainer:
    """The network and what updates it, on one device: :func:`train`'s step, which benchmarks time too.

    ``model`` holds the weights (saved and restored); ``network`` is what runs, the model or its compiled
    form (:func:`spockmip.devices.compiled`), sharing those weights. ``layout`` is the memory format of
    the weights and of each input batch.
    """

    model: UNetBase
    network: torch.nn.Module
    optimizer: torch.optim.Adam
    scaler: torch.amp.GradScaler
    config: TrainingConfig
    device: torch.device
    layout: torch.memory_format

    @classmethod
    def build(
        cls, config: TrainingConfig, device: torch.device, layout: torch.memory_format | None = None
    ) -> Trainer:
        """A fresh network (drawing its weights from torch's global generator), in ``layout`` (default:
        :func:`spockmip.devices.memory_format` of ``device``), with Adam and the AMP scaler.

        Adam is fused on CUDA: the fused step takes the AMP scaler's inf check as a device tensor, where
        the plain step reads it on the host, a wait for the GPU every step. The CPU keeps the plain Adam,
        and with it the results of earlier versions.
        """
        layout = memory_format(device) if layout is None else layout
        model = build_model(config.model, config.init_features, config.activation)
        model = model.to(device, memory_format=layout)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=device.type == "cuda")
        scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
        return cls(model, compiled(model, config.compile), optimizer, scaler, config, device, layout)

    @property
    def fused(self) -> bool:
        return bool(self.optimizer.defaults["fused"])

    def step(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None) -> LossTerms:
        """One optimisation step on a batch as the loader makes it; returns the loss terms, on the device
        (reading them would wait for the GPU)."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device):
            terms = batch_loss(self.network, batch, self.config, self.device, generator, self.layout)
        self.scaler.scale(terms.total).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.gradient_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms


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
    cores = resolve_threads(threads)
    torch.set_num_threads(cores)
    fingerprint = config.fingerprint()
    # The code of this module and of every spockmip module it imports: a state is resumed by that code only.
    code = library_fingerprint(__file__)
    torch.manual_seed(config.seed)
    trainer = Trainer.build(config, device)
    model, optimizer, scaler = trainer.model, trainer.optimizer, trainer.scaler
    history: list[dict[str, Any]] = []
    best = float("inf")
    state = resumable_state(paths.state_files, fingerprint, code, data)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(_with_fused(state["optimizer"], trainer.fused))
        scaler.load_state_dict(state["scaler"])
        history, best = state["history"], state["best"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming after epoch %d of %d (%s)", len(history), config.epochs, paths.checkpoint)
        if state.get("compile", False) != config.compile:
            log.warning(
                "the state was saved with compile %s, this run has compile %s: training goes on, but its "
                "weights will differ in the last bits from those of a run never interrupted",
                state.get("compile", False),
                config.compile,
            )
    if not train_subjects or not validation_subjects:
        raise ValueError("training needs at least one training and one validation subject")
    workers = loader_workers(config.num_workers, device, cores)
    loading = BatchLoading(config.batch_size, workers, pin_memory=device.type == "cuda")
    validation = PatchDataset(
        validation_subjects,
        grid_plan(validation_subjects, config.patch_size, config.strides),
        config.patch_size,
    )
    validation_loader = loading.loader(validation)
    epoch_batches = EpochBatches(
        train_subjects,
        config.sampler,
        config.patch_size,
        config.strides,
        config.patches_per_epoch,
        config.loss.volume_target_axes,
        loading,
    )
    log.info(
        "sampler %s (sampling: %s), MIP pairing %s, baseline scale %s, %d loader worker(s)%s",
        config.sampler,
        config.sampling,
        config.loss.mip_pairing,
        config.loss.baseline_scale,
        workers,
        f", DS6 deformation {config.deformation}" if config.deform else "",
    )
    model.train()
    for epoch in range(len(history), config.epochs):
        started = time.perf_counter()
        seed = _epoch_seed(config.seed, epoch)
        loader = epoch_batches(seed)
        # DS6's draws come from a CPU generator on every device: the spacings and bounds it draws decide
        # shapes, which the host must know, and reading them from a GPU generator would wait for the GPU
        # each step. One seed thus gives the same deformations on every device.
        generator = torch.Generator().manual_seed(seed) if config.deform else None
        # The epoch's loss sums stay on the device (float64, as the host sums were): no wait per step.
        sums = torch.zeros(len(LossTerms._fields), dtype=torch.float64, device=device)
        batches = tqdm(
            loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, mininterval=2.0
        )
        for step, batch in enumerate(batches, 1):
            sums += torch.stack(trainer.step(batch, generator)).detach().double()
            if progress and step % PROGRESS_EVERY == 0:
                batches.set_postfix(loss=f"{float(sums[0]) / step:.4f}")
        value = validation_ftl(trainer.network, validation_loader, config, device, trainer.layout)
        improved = value < best or not paths.best_so_far.is_file()
        if improved:
            best = value
            _save(paths.best_so_far, _weights_payload(model, epoch + 1, value, config))
        means = (sums / max(len(loader), 1)).tolist()
        history.append(dict(zip(HISTORY_FIELDS, [epoch + 1, *means, value, improved], strict=True)))
        _save(
            paths.checkpoint,
            _state_payload(fingerprint, code, config, data, model, optimizer, scaler, history, best),
        )
        _write_history(paths.live_history, history)
        log.info(
            "epoch %d/%d: loss %.4f, validation FTL %.4f%s, %.1f s",
            epoch + 1,
            config.epochs,
            history[-1]["train_loss"],
            value,
            " (best)" if improved else "",
            time.perf_counter() - started,
        )
    with atomic_path(paths.best) as temporary:
        temporary.write_bytes(paths.best_so_far.read_bytes())
    _write_history(paths.history, history)
    return history


def _with_fused(optimizer_state: dict[str, Any], fused: bool) -> dict[str, Any]:
    """A saved optimizer state set to step with this device's kernels (fused on CUDA, plain elsewhere).

    Whether Adam's step is fused is how it runs, not state: a state saved on another device, or before
    fused steps, must not carry its choice over (Adam would refuse the AMP scaler's inf check, or keep its
    step counters on the wrong device). Loading a state whose groups say fused moves those counters to the
    parameters' device, as fused steps need.
    """
    groups = [{**group, "fused": fused} for group in optimizer_state["param_groups"]]
    return {**optimizer_state, "param_groups": groups}


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
    fingerprint: str,
    code: str,
    config: TrainingConfig,
    data: dict[str, Any],
    model,
    optimizer,
    scaler,
    history,
    best: float,
) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "code": code,
        "compile": config.compile,
        "data": data,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "history": history,
        "best": best,
        "torch_rng": torch.get_rng_state(),
    }


def training_config_from_settings(
    settings: Mapping[str, Any], spell: Callable[[str], str] = str
) -> TrainingConfig:
    """The config of flat settings (:func:`spockmip.settings.training_settings` names; the rest at their
    defaults), after the rules between them (:func:`spockmip.settings.check_training`); ``spell`` names a
    setting as the user wrote it (a config key, a command-line option) in the message of a broken rule."""
    complete = complete_training(settings)
    check_training(complete, spell)
    groups = nested_training(complete)
    return TrainingConfig(
        **groups["run"],
        loss=LossConfig(**groups["loss"]),
        deformation=DeformationConfig(**groups["deformation"]),
    )
