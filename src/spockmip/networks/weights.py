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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_args

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from spockmip.errors import WeightsError
from spockmip.files.outputs import atomic_path
from spockmip.networks.unet import ARCHITECTURES, DOWNSAMPLING_FACTOR, Activation, UNetBase

HF_FILES = ("config.json", "model.safetensors")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The published UNet3D repos' model code uses ReLU, the UNetMSS3D repos' LeakyReLU (docs/method.md).
PUBLISHED_ACTIVATION: dict[str, Activation] = {"UNet3D": "relu", "UNetMSS3D": "leaky_relu"}
STRIPPED_PREFIXES = ("model.", "module.")


@dataclass(frozen=True)
class ModelSpec:
    """What it takes to rebuild a network: stored beside our weights so a checkpoint describes itself."""

    architecture: str
    init_features: int
    activation: Activation
    in_channels: int = 1
    out_channels: int = 1

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ModelSpec:
        """A stored ``model_spec``, refused (naming ``source``) when a key is unknown or of the wrong type."""
        if not isinstance(data, dict):
            raise WeightsError(f"{source}: model_spec is a {type(data).__name__}, not a mapping")
        names = [f.name for f in fields(cls)]
        unknown = sorted(str(key) for key in data if key not in names)
        if unknown:
            raise WeightsError(f"{source}: model_spec has unknown key(s) {', '.join(unknown)}")
        missing = [name for name in ("architecture", "init_features", "activation") if name not in data]
        if missing:
            raise WeightsError(f"{source}: model_spec lacks {', '.join(missing)}")
        return cls(**data).checked(source)

    def checked(self, source: str) -> ModelSpec:
        """This spec, if every field has a usable type and value; else a :class:`WeightsError` naming it."""
        if not isinstance(self.architecture, str) or self.architecture not in ARCHITECTURES:
            known = sorted(ARCHITECTURES)
            raise WeightsError(
                f"{source}: unknown architecture {self.architecture!r}; expected one of {known}"
            )
        if self.activation not in get_args(Activation):
            raise WeightsError(
                f"{source}: unknown activation {self.activation!r}; expected one of {get_args(Activation)}"
            )
        for name in ("init_features", "in_channels", "out_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WeightsError(f"{source}: {name} must be a positive integer, got {value!r}")
        return self

    def build(self) -> UNetBase:
        cls = ARCHITECTURES[self.architecture]
        return cls(self.in_channels, self.out_channels, self.init_features, self.activation)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every state-dict entry's shape, from a network built on the meta device (no memory allocated),
        so a spec that declares an absurd width is refused before a terabyte is asked for."""
        with torch.device("meta"):
            model = self.build()
        return {key: tuple(value.shape) for key, value in model.state_dict().items()}

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


def infer_spec(state_dict: dict[str, torch.Tensor], activation: Activation | None, source: str) -> ModelSpec:
    """Architecture and width from the parameter names and shapes (released checkpoints record neither);
    a state dict of another network is refused naming ``source`` and the keys it holds instead."""
    first = state_dict.get("Conv1.conv.0.weight")
    head = state_dict.get("Conv.weight")
    if first is None or head is None:
        absent = "Conv1.conv.0.weight" if first is None else "Conv.weight"
        keys = list(state_dict)
        held = f"its first of {len(keys)} keys is {keys[0]}" if keys else "it holds no tensor"
        raise WeightsError(f"{source}: not a UNet3D/UNetMSS3D state dict: no {absent} ({held})")
    architecture = "UNetMSS3D" if "Conv_d3.conv.0.weight" in state_dict else "UNet3D"
    return ModelSpec(
        architecture=architecture,
        init_features=int(first.shape[0]),
        activation=activation or PUBLISHED_ACTIVATION[architecture],
        in_channels=int(first.shape[1]),
        out_channels=int(head.shape[0]),
    )


def _first_of(problems: Sequence[str], unit: str = "") -> str:
    """The first problem, and how many more there are: a message names one, not hundreds of tensors."""
    count = len(problems) - 1
    return f"{problems[0]} (and {count} more{unit})" if count else problems[0]


def _named(spec: ModelSpec) -> str:
    """How a refusal names the network the weights were to fit: ``UNetMSS3D(16)``."""
    return f"{spec.architecture}({spec.init_features})"


def _check_shapes(spec: ModelSpec, shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """Compare the declared architecture with the stored tensors' shapes before building anything.

    The refusal says what does not fit by kind (keys missing, keys unexpected, shapes that differ), each
    with its first key and how many more: weights of another architecture or width differ in hundreds of
    tensors, and one line must still tell which it is."""
    expected = spec.parameter_shapes()
    missing = [f"{key} missing" for key in expected if key not in shapes]
    unexpected = [f"unexpected {key}" for key in shapes if key not in expected]
    reshaped = [
        f"{key} is {list(shapes[key])}, expected {list(shape)}"
        for key, shape in expected.items()
        if key in shapes and tuple(shapes[key]) != shape
    ]
    problems = [
        _first_of(found, unit)
        for found, unit in (
            (missing, " missing"),
            (unexpected, " unexpected"),
            (reshaped, " of another shape"),
        )
        if found
    ]
    if problems:
        raise WeightsError(f"{source}: weights do not fit {_named(spec)}: {'; '.join(problems)}")


def _check_finite(state_dict: dict[str, torch.Tensor], source: str) -> None:
    """NaN or Inf weights turn every output into NaN, i.e. an empty segmentation that looks like a result."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise WeightsError(f"{source}: weights contain NaN or Inf values in {_first_of(bad, ' tensors')}")


def _check_floating(model: UNetBase, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Integer tensors where the network holds floating-point ones (a converted file): loading would
    truncate every weight to a whole number, silently."""
    expected = model.state_dict()
    bad = [
        f"{key} ({value.dtype})"
        for key, value in state_dict.items()
        if key in expected and expected[key].is_floating_point() and not value.is_floating_point()
    ]
    if bad:
        raise WeightsError(
            f"{source}: weights are not floating-point numbers in {_first_of(bad, ' tensors')}"
        )


def _build_loaded(spec: ModelSpec, state_dict: dict[str, torch.Tensor], source: str) -> UNetBase:
    spec.checked(source)
    _check_shapes(spec, {key: tuple(value.shape) for key, value in state_dict.items()}, source)
    _check_finite(state_dict, source)
    model = spec.build()
    _check_floating(model, state_dict, source)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # torch's report spans lines; the command line shows only the first
        reason = " ".join(str(error).split())
        raise WeightsError(f"{source}: weights do not fit {_named(spec)}: {reason}") from None
    return model.eval()


def _read_checkpoint(path: Path, name: str) -> dict[str, Any]:
    """The dict a torch file holds, read without executing anything; refusals start with ``name``."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle refusals and corrupt zips alike: the file cannot be used
        raise WeightsError(f"{name}: not a loadable weights-only torch checkpoint ({error})") from error
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{name}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    return checkpoint


def _check_entries(state_dict: dict[Any, Any], name: str) -> None:
    """Refuse a state dict whose keys are not parameter names or whose values are not tensors (a
    hand-made or converted file), which every later step would trip over with an unrelated error."""
    bad = [key for key, value in state_dict.items() if not isinstance(key, str) or not torch.is_tensor(value)]
    if bad:
        more = f" (and {len(bad) - 1} more entries)" if len(bad) > 1 else ""
        value = state_dict[bad[0]]
        raise WeightsError(
            f"{name}: state_dict entry {bad[0]!r} is a {type(value).__name__}, not a tensor named by a "
            f"string{more}"
        )


def _checkpoint_model(checkpoint: dict[str, Any], name: str, activation: Activation | None) -> UNetBase:
    """The network of a read checkpoint: ours (with a stored spec) or the released code's
    ``{'state_dict': ...}`` files. ``name`` is the file as the user wrote it, which every refusal starts
    with."""
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state_dict, dict):
        raise WeightsError(f"{name}: no state_dict in checkpoint (keys: {sorted(checkpoint)[:8]})")
    _check_entries(state_dict, name)
    state_dict = strip_prefixes(state_dict)
    if "model_spec" in checkpoint:
        spec = ModelSpec.from_dict(checkpoint["model_spec"], name)
        if activation is not None:
            spec = ModelSpec(**{**spec.to_dict(), "activation": activation})
    else:
        spec = infer_spec(state_dict, activation, name)
    return _build_loaded(spec, state_dict, name)


def load_hf_directory(
    directory: Path, activation: Activation | None = None, name: str | None = None
) -> UNetBase:
    """A published-layout folder: ``config.json`` (architectures, in/out channels, width) + safetensors.

    ``name`` is the source as the user wrote it (default: ``directory``), which every refusal starts with:
    a repo id rather than the cache folder it was fetched into, ``./model/`` as typed."""
    name = str(directory) if name is None else name
    config_file = os.path.join(name, "config.json")
    missing = [file for file in HF_FILES if not (directory / file).is_file()]
    if missing:
        raise WeightsError(
            f"{name}: missing {', '.join(missing)} (a published model folder holds {HF_FILES})"
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
        raise WeightsError(f"{config_file}: not a published model config ({error!r})") from None
    spec.checked(config_file)
    weights = directory / "model.safetensors"
    try:
        with safe_open(weights, framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error type for corrupt headers
        raise WeightsError(f"{os.path.join(name, 'model.safetensors')}: unreadable ({error})") from error
    _check_shapes(spec, strip_prefixes(shapes), name)
    state_dict = load_file(weights)
    return _build_loaded(spec, strip_prefixes(state_dict), name)


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


def _recorded_geometry(checkpoint: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """The patch size and strides a read checkpoint of ours trained with, where it records them (else
    empty). Values that could not work are ignored."""
    recorded = checkpoint.get("inference")
    if not isinstance(recorded, dict):
        return {}
    geometry = {}
    for key in ("patch_size", "strides"):
        value = recorded.get(key)
        if (
            isinstance(value, list | tuple)
            and len(value) == 3
            and all(type(v) is int and v > 0 for v in value)
        ):
            geometry[key] = tuple(value)
    if any(side % DOWNSAMPLING_FACTOR for side in geometry.get("patch_size", ())):
        geometry.pop("patch_size")
    return geometry


def recorded_inference(source: str | Path) -> dict[str, tuple[int, int, int]]:
    """The patch size and strides our checkpoint trained with, where it records them (else empty).

    ``spockmip predict`` slides its windows with these unless told otherwise, so a model trained on 32³
    patches is not run on the released code's 64³ by default. Values that could not work are ignored.
    """
    path = Path(source)
    if not path.is_file():
        return {}
    return _recorded_geometry(_read_checkpoint(path, str(source)))


def read_weights(
    source: str | Path,
    activation: Activation | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[UNetBase, dict[str, tuple[int, int, int]]]:
    """The network of a checkpoint file, a published-layout folder, or a Hugging Face repo id (in that
    order), and the window geometry it records (:func:`recorded_inference`; only our checkpoints record
    one), from a single read of the source: a checkpoint can be hundreds of megabytes.

    Every refusal starts with ``source`` as given (not as :class:`~pathlib.Path` normalises it, nor the
    cache folder a repo id was fetched into), so the user finds the weights they named in the message."""
    path, name = Path(source), str(source)
    if path.is_file():
        checkpoint = _read_checkpoint(path, name)
        return _checkpoint_model(checkpoint, name, activation), _recorded_geometry(checkpoint)
    if path.is_dir():
        return load_hf_directory(path, activation, name), {}
    if REPO_ID.match(name) and not path.suffix:
        return load_hf_directory(download_published(name, revision, cache_dir), activation, name), {}
    raise WeightsError(f"{source}: no such file or folder, and not a Hugging Face repo id (owner/name)")


def load_weights(
    source: str | Path,
    activation: Activation | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> UNetBase:
    """The network of a checkpoint file, a published-layout folder, or a Hugging Face repo id (in that
    order): :func:`read_weights` without the geometry."""
    return read_weights(source, activation, revision, cache_dir)[0]
