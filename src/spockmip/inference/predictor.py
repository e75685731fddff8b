"""A network ready to predict with, and the window geometry its checkpoint records, from one read.

A checkpoint holds both the weights and the patch size and strides it was trained with; reading it once
for each would load hundreds of megabytes twice per model of an ensemble.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
