"""Loading network weights from our checkpoints, the released training code's, or the published HF repos.

Nothing from a weights source is ever executed: torch files are read with ``weights_only=True`` and the
Hugging Face repos are read as ``config.json`` + ``model.safetensors`` only (their custom model code, meant
for ``trust_remote_code=True``, is never fetched). The architecture of a released-code checkpoint, which
records none, is read off its parameter names and shapes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from spockmip.models import ARCHITECTURES, Activation, UNetBase
from spockmip.outputs import atomic_path

HF_FILES = ("config.json", "model.safetensors")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The published UNet3D repos' model code uses ReLU, the UNetMSS3D repos' LeakyReLU (docs/method.md).
PUBLISHED_ACTIVATION: dict[str, Activation] = {"UNet3D": "relu", "UNetMSS3D": "leaky_relu"}
STRIPPED_PREFIXES = ("model.", "module.")


class WeightsError(ValueError):
    """A weights source cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class ModelSpec:
    """What it takes to rebuild a network: stored beside our weights so a checkpoint describes itself."""

    architecture: str
    init_features: int
    activation: Activation
    in_channels: int = 1
    out_channels: int = 1

    def build(self) -> UNetBase:
        if self.architecture not in ARCHITECTURES:
            raise WeightsError(
                f"unknown architecture {self.architecture!r}; expected one of {sorted(ARCHITECTURES)}"
            )
        cls = ARCHITECTURES[self.architecture]
        return cls(self.in_channels, self.out_channels, self.init_features, self.activation)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spec_of(model: UNetBase) -> ModelSpec:
    """The spec that rebuilds ``model``."""
    architecture = "UNetMSS3D" if model.deep_supervision else "UNet3D"
    return ModelSpec(
        architecture, model.init_features, model.activation, model.in_channels, model.out_channels
    )


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the HF wrapper's ``model.`` and DataParallel's ``module.`` prefixes, wherever they stack."""
    stripped = {}
    for key, value in state_dict.items():
        while key.startswith(STRIPPED_PREFIXES):
            key = key.split(".", 1)[1]
        stripped[key] = value
    return stripped


def infer_spec(state_dict: dict[str, torch.Tensor], activation: Activation | None) -> ModelSpec:
    """Architecture and width from the parameter names and shapes (released checkpoints record neither)."""
    first = state_dict.get("Conv1.conv.0.weight")
    head = state_dict.get("Conv.weight")
    if first is None or head is None:
        raise WeightsError("not a UNet3D/UNetMSS3D state dict: Conv1.conv.0.weight or Conv.weight missing")
    architecture = "UNetMSS3D" if "Conv_d3.conv.0.weight" in state_dict else "UNet3D"
    return ModelSpec(
        architecture=architecture,
        init_features=int(first.shape[0]),
        activation=activation or PUBLISHED_ACTIVATION[architecture],
        in_channels=int(first.shape[1]),
        out_channels=int(head.shape[0]),
    )


def _build_loaded(spec: ModelSpec, state_dict: dict[str, torch.Tensor], source: str) -> UNetBase:
    model = spec.build()
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        raise WeightsError(
            f"{source}: weights do not fit {spec.architecture}({spec.init_features}): {error}"
        ) from None
    return model.eval()


def load_torch_checkpoint(path: Path, activation: Activation | None = None) -> UNetBase:
    """Our checkpoints (with a stored spec) or the released code's ``{'state_dict': ...}`` files."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle refusals and corrupt zips alike: the file cannot be used
        raise WeightsError(f"{path}: not a loadable weights-only torch checkpoint ({error})") from error
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{path}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state_dict, dict):
        raise WeightsError(f"{path}: no state_dict in checkpoint (keys: {sorted(checkpoint)[:8]})")
    state_dict = strip_prefixes(state_dict)
    if "model_spec" in checkpoint:
        spec = ModelSpec(**checkpoint["model_spec"])
        if activation is not None:
            spec = ModelSpec(**{**spec.to_dict(), "activation": activation})
    else:
        spec = infer_spec(state_dict, activation)
    return _build_loaded(spec, state_dict, str(path))


def load_hf_directory(directory: Path, activation: Activation | None = None) -> UNetBase:
    """A published-layout folder: ``config.json`` (architectures, in/out channels, width) + safetensors."""
    missing = [name for name in HF_FILES if not (directory / name).is_file()]
    if missing:
        raise WeightsError(
            f"{directory}: missing {', '.join(missing)} (a published model folder holds {HF_FILES})"
        )
    try:
        config = json.loads((directory / "config.json").read_text())
        architecture = config["architectures"][0]
        spec = ModelSpec(
            architecture=architecture,
            init_features=int(config["init_features"]),
            activation=activation or PUBLISHED_ACTIVATION.get(architecture, "relu"),
            in_channels=int(config.get("in_ch", 1)),
            out_channels=int(config.get("out_ch", 1)),
        )
    except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as error:
        raise WeightsError(f"{directory / 'config.json'}: not a published model config ({error!r})") from None
    try:
        state_dict = load_file(directory / "model.safetensors")
    except Exception as error:  # safetensors raises its own error type for corrupt headers
        raise WeightsError(f"{directory / 'model.safetensors'}: unreadable ({error})") from error
    return _build_loaded(spec, strip_prefixes(state_dict), str(directory))


def download_published(
    repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None
) -> Path:
    """Fetch (or find in the cache, offline under HF_HUB_OFFLINE=1) only the config and the weights."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            repo_id=repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(HF_FILES)
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise WeightsError(f"{repo_id}: cannot get the published weights ({error})") from error
    return Path(folder)


def fetch_published(
    repo_id: str, revision: str | None, destination: str | Path, cache_dir: str | Path | None = None
) -> Path:
    """Place a published repo's config and weights in ``destination`` (hard links into the HF cache).

    Linking keeps one copy of each 414 MB file on disk; across file systems the files are copied.
    """
    folder = download_published(repo_id, revision, cache_dir)
    destination = Path(destination)
    for name in HF_FILES:
        source = (folder / name).resolve()
        with atomic_path(destination / name) as temporary:
            temporary.unlink()
            try:
                os.link(source, temporary)
            except OSError:
                shutil.copyfile(source, temporary)
    return destination


def load_weights(
    source: str | Path,
    activation: Activation | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> UNetBase:
    """Load from a checkpoint file, a published-layout folder, or a Hugging Face repo id (in that order)."""
    path = Path(source)
    if path.is_file():
        return load_torch_checkpoint(path, activation)
    if path.is_dir():
        return load_hf_directory(path, activation)
    if REPO_ID.match(str(source)) and not path.suffix:
        return load_hf_directory(download_published(str(source), revision, cache_dir), activation)
    raise WeightsError(f"{source}: no such file or folder, and not a Hugging Face repo id (owner/name)")
