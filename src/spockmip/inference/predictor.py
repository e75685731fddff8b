"""A network ready to predict with, and the window geometry its checkpoint records, from one read.

A checkpoint holds both the weights and the patch size and strides it was trained with; reading it once
for each would load hundreds of megabytes twice per model of an ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spockmip.networks.unet import Activation, UNetBase
from spockmip.networks.weights import read_weights


@dataclass(frozen=True)
class Predictor:
    """A loaded network and the geometry its source records (``None`` where it records none: published
    and released-code weights), for the sliding window to use unless told otherwise."""

    model: UNetBase
    patch_size: tuple[int, int, int] | None
    strides: tuple[int, int, int] | None
    source: str


def load_predictor(
    source: str | Path,
    activation: Activation | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> Predictor:
    """The predictor of a ``.pt``/``.pth`` checkpoint, a folder with ``config.json`` + ``model.safetensors``,
    or a Hugging Face repo id (:func:`spockmip.networks.weights.read_weights`), reading the source once."""
    model, geometry = read_weights(source, activation, revision, cache_dir)
    return Predictor(model, geometry.get("patch_size"), geometry.get("strides"), str(source))


def _source_key(source: Any) -> Any:
    """What identifies a weights source, so that one named in several groups is read once."""
    return Path(source).resolve() if isinstance(source, str | Path) and Path(source).exists() else id(source)


def _predictor(source: Any, activation: Activation | None, revision: str | None) -> Predictor:
    """A source read once (:func:`load_predictor`); a network given as an object is taken as it is,
    recording no geometry."""
    if isinstance(source, Predictor):
        return source
    if isinstance(source, torch.nn.Module):
        return Predictor(source, None, None, type(source).__name__)
    return load_predictor(source, activation, revision)


def load_predictors(
    groups: Sequence[Sequence[Any]], activation: Activation | None = None, revision: str | None = None
) -> list[list[Predictor]]:
    """The predictors of each group of weights sources (checkpoint files, published folders, Hugging Face
    repo ids, or networks already loaded), each source read once however many groups name it."""
    loaded: dict[Any, Predictor] = {}
    for sources in groups:
        for source in sources:
            key = _source_key(source)
            if key not in loaded:
                loaded[key] = _predictor(source, activation, revision)
    return [[loaded[_source_key(source)] for source in sources] for sources in groups]
