"""Training one (variant, fold): resumable, deterministic, CPU-first.

Determinism and resumption come from one rule: everything random in epoch ``e`` (the patch plan, the
shuffling, the DS6 deformations) is drawn from generators seeded by ``(seed, e)``, and the full state
(model, optimizer, AMP scaler, history, best value) is written atomically after every epoch. A run
killed at any point and started again therefore continues from the last finished epoch and ends with the
same weights as an uninterrupted run. A state written under different settings, by other code or for other
data is not resumed (:mod:`spockmip.training.runs`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from spockmip.data.sampling import EpochBatches, Sampling
from spockmip.data.subjects import BatchLoading, GridLayout, PatchDataset, PatchSpec, Subject, grid_plan
from spockmip.files.outputs import atomic_path, check_writable
from spockmip.networks.unet import UNetBase, build_model
from spockmip.objective.batch import batch_loss, validation_losses
from spockmip.objective.deformation import DeformationConfig
from spockmip.objective.losses import LossConfig, LossTerms
from spockmip.runtime.devices import (
    autocast,
    compiled,
    loader_workers,
    memory_format,
    resolve_threads,
    select_device,
)
from spockmip.runtime.provenance import library_fingerprint
from spockmip.runtime.records import (
    RECORD_NAME,
    Stopwatch,
    complete_record,
    deterministic_record,
    file_hashes,
    shown_path,
    usage,
    write_record,
)
from spockmip.settings.catalogue import EXECUTION, VALIDATION_COLUMNS
from spockmip.settings.lookup import (
    check_fields,
    complete_training,
    default,
    nested_training,
    training_fields,
)
from spockmip.settings.rules import (
    check_training,
    describe_computation,
    resolve_sampling,
    resolve_validation_grid,
)
from spockmip.training.checkpoints import (
    HISTORY_FIELDS,
    save_payload,
    state_payload,
    weights_payload,
    with_fused,
    write_history,
)
from spockmip.training.runs import claim, data_identity, identity_files, resumable_state

log = logging.getLogger(__name__)
# Steps between updates of the progress bar's loss: reading it waits for the GPU, so not every step.
PROGRESS_EVERY = 25
# Settings that choose how a run is executed, not what it computes; they are left out of the fingerprint,
# so they never decide whether a saved state is resumed. The number of loader workers changes nothing a run
# computes (tested). ``compile`` changes results in their last bits (fused kernels round differently), but
# so do the device and the thread count, which were never part of the fingerprint: the training is the
# same, and a resumed run stays exact as long as the setting does. Were it included, switching compilation
# on to speed up a long run would throw its progress away. A run resumed under another ``compile`` says so
# in the log (:func:`_resume`), so the change is never silent.
EXECUTION_SETTINGS = EXECUTION
ValidationCriterion = Literal["released", "level0"]
ValidationGrid = Literal["released", "flush"]


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
    validation_criterion: ValidationCriterion = default("training", "validation_criterion")
    validation_grid: ValidationGrid = default("training", "validation_grid")
    queue_workers: int | None = default("training", "queue_workers")
    deformation: DeformationConfig = field(default_factory=DeformationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    num_workers: int | None = default("training", "num_workers")
    compile: bool = default("training", "compile")

    def __post_init__(self) -> None:
        check_fields(self, "run")

    @property
    def sampler(self) -> str:
        """The sampler this run uses (``released`` resolved by whether the run has a MIP term)."""
        return resolve_sampling(self.sampling, bool(self.loss.axes))

    @property
    def validation_layout(self) -> GridLayout:
        """The grid this run validates on (``validation_grid`` resolved by whether it has a MIP term)."""
        return resolve_validation_grid(self.validation_grid, bool(self.loss.axes))  # type: ignore[return-value]

    def settings(self) -> dict[str, Any]:
        """The flat training settings of this config, by their catalogue names: those
        :func:`training_config_from_settings` builds it from, for what reads settings rather than config
        objects (:func:`spockmip.settings.rules.describe_computation`)."""
        groups = {"run": self, "loss": self.loss, "deformation": self.deformation}
        return {name: getattr(groups[group], target) for name, (group, target) in training_fields().items()}

    def fingerprint(self) -> str:
        """Hash of the settings but :data:`EXECUTION_SETTINGS`; a saved state is resumed only under the same
        one."""
        settings = {k: v for k, v in asdict(self).items() if k not in EXECUTION_SETTINGS}
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainingPaths:
    """Where a run writes.

    ``best``, :attr:`final` and :attr:`record` (beside ``best``) and ``history`` are the results and appear
    only when the run has finished, so a workflow manager never sees a half-trained model as done.
    ``state_dir`` holds the resume state, the best weights so far and the live learning curve; it must
    outlive a killed job (it is not a declared output: Snakemake deletes those of failed jobs).
    """

    best: Path
    history: Path
    state_dir: Path

    @property
    def final(self) -> Path:
        """The last epoch's weights, ``final.pt`` beside ``best``: the checkpoint whose choice no validation
        subject influenced, so it can score them without bias."""
        return self.best.with_name("final.pt")

    @property
    def record(self) -> Path:
        """How the run was made (:mod:`spockmip.runtime.records`), ``provenance.json`` beside ``best``."""
        return self.best.with_name(RECORD_NAME)

    @property
    def results(self) -> tuple[Path, Path, Path, Path]:
        """The files a finished run publishes, the record last (it hashes the others)."""
        return self.best, self.final, self.history, self.record

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
    sources: Sequence[Path] = (),
) -> list[dict[str, Any]]:
    """Train (or resume) one run; returns the per-epoch history also written to ``paths.history``.

    ``fold`` is part of the run's identity: a state saved for another fold (or other subjects) is never
    resumed. ``sources`` are further files the run was set up from (a settings file, a split file),
    hashed into its record beside the images and labels. The outputs are checked before anything is
    written, and the state folder stays locked against a second run for the whole training
    (:mod:`spockmip.training.runs`).
    """
    watch = Stopwatch.start()
    for output in paths.results:
        check_writable(output)
    check_writable(paths.state_dir, folder=True)
    roles = {"train": train_subjects, "validation": validation_subjects}
    data = data_identity(roles, fold)
    inputs = {shown_path(path): digest for path, digest in identity_files(roles, data).items()}
    inputs.update(file_hashes(sources))
    with claim(paths.state_dir, (*paths.state_files, *paths.results)):
        run, trainer = _train(
            train_subjects, validation_subjects, config, paths, device, threads, progress, data
        )
        _write_run_record(paths, run, trainer, inputs, watch)
        return run.history


def _write_run_record(
    paths: TrainingPaths, run: _Progress, trainer: Trainer, inputs: Mapping[str, str], watch: Stopwatch
) -> None:
    """The finished run's record (:mod:`spockmip.runtime.records`): the part its weights carry, with the
    ``inputs``' and the published files' hashes, the settings that chose how it executed, the machine,
    and the time and memory since ``watch`` started (measured first: the record's git state is read by a
    child process)."""
    device = str(trainer.device)
    epochs = {"epochs_trained": len(run.history) - run.resumed, "epochs_resumed": run.resumed}
    used = {**usage(watch, device), **epochs}
    outputs = file_hashes(paths.results[:-1])
    record = complete_record(run.provenance, inputs, outputs, used, device, torch.get_num_threads())
    execution = {name: getattr(trainer.config, name) for name in EXECUTION_SETTINGS}
    write_record(paths.record, {**record, "execution": execution})


@dataclass
class Trainer:
    """The network and what updates it, on one device: :func:`train`'s step, which benchmarks time too.

    ``model`` holds the weights (saved and restored); ``network`` is what runs, the model or its compiled
    form (:func:`spockmip.runtime.devices.compiled`), sharing those weights. ``layout`` is the memory format
    of the weights and of each input batch.
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
        :func:`spockmip.runtime.devices.memory_format` of ``device``), with Adam and the AMP scaler.

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

    def weights(
        self,
        epoch: int,
        validation: Mapping[str, float],
        provenance: Mapping[str, Any],
        selection: str = "best",
    ) -> dict[str, Any]:
        """The model's weights after ``epoch`` as a self-describing payload (:func:`weights_payload`), with
        that epoch's validation values, the run's ``provenance`` and how it was chosen (``best`` or
        ``final``)."""
        config = self.config
        return weights_payload(
            self.model,
            epoch,
            validation,
            config.validation_criterion,
            config.patch_size,
            config.strides,
            provenance,
            selection,
        )

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


@dataclass
class _Progress:
    """A run between epochs: what identifies its saved state (settings fingerprint, library code, data),
    so that only this run resumes it, the part of its record every weights file carries, how far it has
    got, and how many of its epochs came from a resumed state."""

    fingerprint: str
    code: str
    data: dict[str, Any]
    provenance: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = float("inf")
    resumed: int = 0


def _train(
    train_subjects: Sequence[Subject],
    validation_subjects: Sequence[Subject],
    config: TrainingConfig,
    paths: TrainingPaths,
    device: torch.device | str | None,
    threads: int | None,
    progress: bool,
    data: dict[str, Any],
) -> tuple[_Progress, Trainer]:
    """The run inside :func:`train`'s lock: resume (or start), train the epochs left, publish the weights
    and the history; returns the run (its history) and its trainer."""
    device = select_device(str(device) if device else None)
    cores = resolve_threads(threads)
    torch.set_num_threads(cores)
    fingerprint = config.fingerprint()
    # The code of this module and of every spockmip module it imports: a state is resumed by that code only.
    code = library_fingerprint(__file__)
    identity = {"settings": fingerprint, "data": data}
    # How the run executes changes nothing it computes (EXECUTION_SETTINGS): a run resumed under other
    # values writes the same weights, so the weights' record leaves them out; the run's record names them.
    computed = {k: v for k, v in config.settings().items() if k not in EXECUTION_SETTINGS}
    provenance = deterministic_record("training", code, computed, identity=identity)
    run = _Progress(fingerprint, code, data, provenance)
    trainer = _resume(config, paths, device, run)
    if not train_subjects or not validation_subjects:
        raise ValueError("training needs at least one training and one validation subject")
    epoch_batches, validation_loader = _loaders(train_subjects, validation_subjects, config, device, cores)
    trainer.model.train()
    for epoch in range(len(run.history), config.epochs):
        _epoch(trainer, run, epoch, epoch_batches, validation_loader, paths, progress)
    _finish(trainer, paths, run)
    return run, trainer


def _resume(config: TrainingConfig, paths: TrainingPaths, device: torch.device, run: _Progress) -> Trainer:
    """A fresh trainer seeded with ``config.seed``; when the state folder holds a state of this run, the
    state is loaded into the trainer, into ``run`` and into torch's global generator.

    The fresh network is always built first, so a resumed run draws from the generator exactly as an
    uninterrupted one did before its state replaces the draws.
    """
    torch.manual_seed(config.seed)
    trainer = Trainer.build(config, device)
    state = resumable_state(paths.state_files, run.fingerprint, run.code, run.data)
    if state is None:
        return trainer
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(with_fused(state["optimizer"], trainer.fused))
    trainer.scaler.load_state_dict(state["scaler"])
    run.history, run.best = state["history"], state["best"]
    run.resumed = len(run.history)
    torch.set_rng_state(state["torch_rng"])
    log.info("resuming after epoch %d of %d (%s)", len(run.history), config.epochs, paths.checkpoint)
    if state.get("compile", False) != config.compile:
        log.warning(
            "the state was saved with compile %s, this run has compile %s: training goes on, but its "
            "weights will differ in the last bits from those of a run never interrupted",
            state.get("compile", False),
            config.compile,
        )
    return trainer


def _loaders(
    train_subjects: Sequence[Subject],
    validation_subjects: Sequence[Subject],
    config: TrainingConfig,
    device: torch.device,
    cores: int,
) -> tuple[EpochBatches, torch.utils.data.DataLoader]:
    """The epochs' training batches (a loader per epoch seed) and the validation loader over the grid."""
    workers = loader_workers(config.num_workers, device, cores)
    loading = BatchLoading(config.batch_size, workers, pin_memory=device.type == "cuda")
    validation = PatchDataset(
        validation_subjects, validation_plan(validation_subjects, config), config.patch_size
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
        tube=config.loss.needs_tube,
        queue_workers=config.queue_workers,
    )
    log.info("computation: %s; %d loader worker(s)", describe_computation(config.settings()), workers)
    return epoch_batches, validation_loader


def validation_plan(subjects: Sequence[Subject], config: TrainingConfig) -> list[PatchSpec]:
    """Every validation patch, in order: the grid of :attr:`TrainingConfig.validation_layout` over each
    validation subject."""
    return grid_plan(subjects, config.patch_size, config.strides, config.validation_layout)


def _epoch(
    trainer: Trainer,
    run: _Progress,
    epoch: int,
    epoch_batches: EpochBatches,
    validation_loader: torch.utils.data.DataLoader,
    paths: TrainingPaths,
    progress: bool,
) -> None:
    """Train epoch ``epoch`` (0-based), validate, keep the weights if they are the best so far, and save
    the state: a run killed after this resumes with the next epoch."""
    config, device = trainer.config, trainer.device
    started = time.perf_counter()
    seed = _epoch_seed(config.seed, epoch)
    loader = epoch_batches(seed)
    # DS6's draws come from a CPU generator on every device: the spacings and bounds it draws decide
    # shapes, which the host must know, and reading them from a GPU generator would wait for the GPU
    # each step. One seed thus gives the same deformations on every device.
    generator = torch.Generator().manual_seed(seed) if config.deform else None
    # The epoch's loss sums stay on the device (float64, as the host sums were): no wait per step.
    sums = torch.zeros(len(LossTerms._fields), dtype=torch.float64, device=device)
    batches = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, mininterval=2.0)
    for step, batch in enumerate(batches, 1):
        sums += torch.stack(trainer.step(batch, generator)).detach().double()
        if progress and step % PROGRESS_EVERY == 0:
            batches.set_postfix(loss=f"{float(sums[0]) / step:.4f}")
    validation = validation_losses(trainer.network, validation_loader, config, device, trainer.layout)
    value = validation[config.validation_criterion]
    improved = value < run.best or not paths.best_so_far.is_file()
    if improved:
        run.best = value
        save_payload(paths.best_so_far, trainer.weights(epoch + 1, validation, run.provenance))
    means = (sums / max(len(loader), 1)).tolist()
    columns = [validation[name] for name in VALIDATION_COLUMNS]
    run.history.append(dict(zip(HISTORY_FIELDS, [epoch + 1, *means, *columns, improved], strict=True)))
    payload = state_payload(
        run.fingerprint,
        run.code,
        config.compile,
        run.data,
        trainer.model,
        trainer.optimizer,
        trainer.scaler,
        run.history,
        run.best,
    )
    save_payload(paths.checkpoint, payload)
    write_history(paths.live_history, run.history)
    log.info(
        "epoch %d/%d: loss %.4f, validation FTL %.4f (level 0), %.4f (all levels)%s, %.1f s",
        epoch + 1,
        config.epochs,
        run.history[-1]["train_loss"],
        validation["level0"],
        validation["released"],
        " (best)" if improved else "",
        time.perf_counter() - started,
    )


def _finish(trainer: Trainer, paths: TrainingPaths, run: _Progress) -> None:
    """Publish the results: the best weights copied out of the state folder, the final weights (the
    trainer's, after the last epoch or loaded from the state of a finished run), then the history."""
    with atomic_path(paths.best) as temporary:
        temporary.write_bytes(paths.best_so_far.read_bytes())
    last = run.history[-1]
    validation = {name: last[column] for name, column in VALIDATION_COLUMNS.items()}
    final = trainer.weights(int(last["epoch"]), validation, run.provenance, selection="final")
    save_payload(paths.final, final)
    write_history(paths.history, run.history)


def training_config_from_settings(
    settings: Mapping[str, Any], spell: Callable[[str], str] = str, given: Collection[str] | None = None
) -> TrainingConfig:
    """The config of flat settings (:func:`spockmip.settings.lookup.training_settings` names; the rest at
    their defaults), after the rules between them (:func:`spockmip.settings.rules.check_training`); ``spell``
    names a
    setting as the user wrote it (a config key, a command-line option) in the message of a broken rule,
    ``given`` the settings the user wrote (default: every key of ``settings``; pass it where ``settings``
    already holds defaults)."""
    complete = complete_training(settings)
    check_training(complete, spell, set(settings) if given is None else given)
    groups = nested_training(complete)
    return TrainingConfig(
        **groups["run"],
        loss=LossConfig(**groups["loss"]),
        deformation=DeformationConfig(**groups["deformation"]),
    )
