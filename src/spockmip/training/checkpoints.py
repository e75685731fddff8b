"""What a training run writes: the best and the final weights, the resume state and the learning curve.

Every file is written atomically (:func:`spockmip.files.outputs.atomic_path`), so a run killed while saving
leaves the previous file whole and its resume state usable.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from spockmip.files.outputs import atomic_path
from spockmip.networks.unet import UNetBase
from spockmip.networks.weights import spec_of
from spockmip.settings.catalogue import VALIDATION_COLUMNS

# The training columns are the epoch means of :class:`spockmip.objective.losses.LossTerms`, in its order:
# train_segmentation includes the weighted continuity term, train_continuity is that term before its
# weight (0 without one). validation_ftl (level 0) and validation_ds_ftl (Σ levels) are both written,
# whichever of them a run keeps its best epoch by (:data:`spockmip.settings.catalogue.VALIDATION_COLUMNS`);
# ``best`` marks the epochs that improved the one it keeps by.
HISTORY_FIELDS = (
    "epoch",
    "train_loss",
    "train_segmentation",
    "train_mip",
    "train_continuity",
    *VALIDATION_COLUMNS.values(),
    "best",
)


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    """The learning curve as CSV, one row per epoch with :data:`HISTORY_FIELDS`.

    A value a row lacks is written as an empty cell, not as 0, which would claim a measured value. Training
    never resumes rows recorded by other code (:mod:`spockmip.training.runs` sets such a state aside), so
    every row it writes is complete; the empty cell keeps a row from elsewhere from being misread.
    """
    with atomic_path(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS, restval="")
        writer.writeheader()
        writer.writerows(history)


def save_payload(path: Path, payload: dict[str, Any]) -> None:
    """``payload`` as a torch file at ``path``."""
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def with_fused(optimizer_state: dict[str, Any], fused: bool) -> dict[str, Any]:
    """A saved optimizer state set to step with this device's kernels (fused on CUDA, plain elsewhere).

    Whether Adam's step is fused is how it runs, not state: a state saved on another device, or before
    fused steps, must not carry its choice over (Adam would refuse the AMP scaler's inf check, or keep its
    step counters on the wrong device). Loading a state whose groups say fused moves those counters to the
    parameters' device, as fused steps need.
    """
    groups = [{**group, "fused": fused} for group in optimizer_state["param_groups"]]
    return {**optimizer_state, "param_groups": groups}


def weights_payload(
    model: UNetBase,
    epoch: int,
    validation: Mapping[str, float],
    criterion: str,
    patch_size: Sequence[int],
    strides: Sequence[int],
    provenance: Mapping[str, Any],
    selection: str = "best",
) -> dict[str, Any]:
    """Self-describing weights: the spec rebuilds the network, ``state_dict`` is the released key, and the
    training geometry (``patch_size``, ``strides``) is what ``spockmip predict`` slides its windows with
    unless told otherwise. ``validation`` holds the epoch's value of each validation criterion, under its
    history column, and ``criterion`` names the run's criterion of the best epoch. ``selection`` says how
    this epoch was chosen: ``best`` (lowest value of ``criterion``) or ``final`` (the last epoch).
    ``provenance`` is the run's record without what varies between identical runs
    (:func:`spockmip.runtime.records.deterministic_record`), so identical runs still write identical
    bytes."""
    return {
        "model_spec": spec_of(model).to_dict(),
        "state_dict": model.state_dict(),
        "inference": {"patch_size": list(patch_size), "strides": list(strides)},
        "epoch": epoch,
        **{VALIDATION_COLUMNS[name]: value for name, value in validation.items()},
        "validation_criterion": criterion,
        "selection": selection,
        "provenance": dict(provenance),
    }


def state_payload(
    fingerprint: str,
    code: str,
    compile: bool,
    data: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    history: list[dict[str, Any]],
    best: float,
) -> dict[str, Any]:
    """Everything a killed run needs to go on exactly: the weights, the optimizer and AMP scaler, the
    history and best value, torch's global generator, and what decides whether the state is resumed at all
    (settings ``fingerprint``, library ``code``, ``data`` identity; ``compile`` only to say when it
    changed)."""
    return {
        "fingerprint": fingerprint,
        "code": code,
        "compile": compile,
        "data": data,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "history": history,
        "best": best,
        "torch_rng": torch.get_rng_state(),
    }
