"""Every weights format loads into our networks, without executing anything from the source."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hf_helpers import REPO_ID, write_hf_cache, write_published_folder

from spockmip.errors import WeightsError
from spockmip.inference.predictor import load_predictor
from spockmip.networks import weights
from spockmip.networks.unet import UNet3D, UNetMSS3D, build_model
from spockmip.networks.weights import ModelSpec, load_weights, spec_of


def _reference(architecture: str = "UNetMSS3D", width: int = 4) -> torch.nn.Module:
    torch.manual_seed(3)
    model = build_model("unetmss" if architecture == "UNetMSS3D" else "unet", init_features=width)
    with torch.no_grad():  # non-trivial BN statistics, so a wrong buffer mapping shows
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.rand(1, 1, 16, 16, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return all(torch.equal(p, q) for p, q in zip(a.eval()(x), b.eval()(x), strict=True))


@pytest.mark.parametrize("architecture", ["UNet3D", "UNetMSS3D"])
def test_our_checkpoint_round_trips_with_its_spec(tmp_path: Path, architecture: str) -> None:
    model = _reference(architecture)
    path = tmp_path / "best.pt"
    torch.save({"model_spec": spec_of(model).to_dict(), "state_dict": model.state_dict(), "epoch": 3}, path)
    loaded = load_weights(path)
    assert spec_of(loaded) == spec_of(model)
    assert _same_outputs(model, loaded)


def test_a_predictor_reads_its_checkpoint_once_for_the_model_and_the_geometry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _reference()
    path = tmp_path / "best.pt"
    inference = {"patch_size": [32, 32, 16], "strides": [16, 16, 8]}
    torch.save(
        {"model_spec": spec_of(model).to_dict(), "state_dict": model.state_dict(), "inference": inference},
        path,
    )
    reads = []
    load = torch.load

    def counted_load(source, *args, **kwargs):
        reads.append(source)
        return load(source, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted_load)
    predictor = load_predictor(path)
    assert reads == [path]
    assert (predictor.patch_size, predictor.strides, predictor.source) == (
        (32, 32, 16),
        (16, 16, 8),
        str(path),
    )
    assert _same_outputs(model, predictor.model)


def test_published_weights_record_no_geometry(tmp_path: Path) -> None:
    folder = write_published_folder(tmp_path / "published", _reference("UNet3D"), "UNet3D")
    predictor = load_predictor(folder)
    assert (predictor.patch_size, predictor.strides) == (None, None)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_released_code_checkpoint_with_or_without_dataparallel_prefix(tmp_path: Path, prefix: str) -> None:
    model = _reference("UNetMSS3D")
    state = {f"{prefix}{k}": v for k, v in model.state_dict().items()}
    full = {"state_dict": state, "optimizer": {"state": {}, "param_groups": []}, "amp": {}, "epoch": 12}
    torch.save(full, tmp_path / "checkpoint.pth")
    loaded = load_weights(tmp_path / "checkpoint.pth")
    assert isinstance(loaded, UNetMSS3D) and loaded.init_features == 4 and loaded.activation == "leaky_relu"
    assert _same_outputs(model, loaded)
    torch.save({"state_dict": state}, tmp_path / "bare.pth")
    assert _same_outputs(model, load_weights(tmp_path / "bare.pth", activation="leaky_relu"))


def test_released_unet_checkpoint_gets_relu_unless_overridden(tmp_path: Path) -> None:
    model = _reference("UNet3D")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "unet.pth")
    assert load_weights(tmp_path / "unet.pth").activation == "relu"
    overridden = load_weights(tmp_path / "unet.pth", activation="leaky_relu")
    assert isinstance(overridden, UNet3D) and overridden.activation == "leaky_relu"


@pytest.mark.parametrize("architecture", ["UNet3D", "UNetMSS3D"])
def test_published_folder_loads_without_running_its_code(tmp_path: Path, architecture: str) -> None:
    model = _reference(architecture, width=2)
    folder = write_published_folder(tmp_path / "repo", model, architecture)
    loaded = load_weights(folder)
    assert spec_of(loaded) == ModelSpec(architecture, 2, "relu" if architecture == "UNet3D" else "leaky_relu")
    assert _same_outputs(model, loaded)


def test_repo_id_is_resolved_through_an_offline_hf_cache(tmp_path: Path) -> None:
    """A fresh interpreter with HF_HUB_OFFLINE=1: huggingface_hub's own cache lookup, no network."""
    model = _reference("UNetMSS3D", width=2)
    cache = write_hf_cache(tmp_path / "hub", model)
    x_path, out_path = tmp_path / "x.pt", tmp_path / "out.pt"
    x = torch.rand(1, 1, 16, 16, 16)
    torch.save(x, x_path)
    script = (
        "import sys, torch\n"
        "from spockmip.networks.weights import load_weights\n"
        f"m = load_weights({REPO_ID!r}, cache_dir=sys.argv[1])\n"
        "with torch.no_grad():\n"
        "    torch.save(m(torch.load(sys.argv[2]))[0], sys.argv[3])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(cache), str(x_path), str(out_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        assert torch.equal(torch.load(out_path), model(x)[0])
    missing = subprocess.run(
        [
            sys.executable,
            "-c",
            "from spockmip.networks.weights import load_weights; load_weights('nobody/nothing')",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode != 0 and "nobody/nothing: cannot get the published weights" in missing.stderr


def test_unusable_sources_raise_named_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not a Hugging Face repo id"):
        load_weights(tmp_path / "absent.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match=r"corrupt\.pt: not a loadable"):
        load_weights(tmp_path / "corrupt.pt")
    torch.save({"state_dict": {"foo": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not a UNet3D/UNetMSS3D state dict"):
        load_weights(tmp_path / "other.pt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(WeightsError, match=r"missing config\.json, model\.safetensors"):
        load_weights(tmp_path / "folder")
    state = _reference("UNet3D").state_dict()
    state.pop("Conv.bias")
    torch.save({"state_dict": state}, tmp_path / "partial.pt")
    with pytest.raises(WeightsError, match="do not fit UNet3D"):
        load_weights(tmp_path / "partial.pt")


def test_a_repo_id_whose_weights_do_not_fit_its_config_is_named_by_the_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user named the repo, not the cache folder it was fetched into: the refusal starts with the id."""
    folder = write_published_folder(tmp_path / "snapshot", _reference("UNetMSS3D", width=2), "UNetMSS3D")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "init_features": 4}))
    monkeypatch.setattr(weights, "download_published", lambda repo_id, revision, cache_dir: folder)
    with pytest.raises(WeightsError) as caught:
        load_weights(REPO_ID)
    assert str(caught.value).startswith(
        f"{REPO_ID}: weights do not fit UNetMSS3D(4): Conv1.conv.0.weight is "
    )


def test_pickled_code_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"state_dict": {}, "payload": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match=r"evil\.pt: not a loadable weights-only"):
        load_weights(tmp_path / "evil.pt")


def test_a_checkpoint_of_lists_instead_of_tensors_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "lists.pt"
    state_dict = _reference("UNet3D").state_dict()
    torch.save({"state_dict": {key: value.tolist() for key, value in state_dict.items()}}, path)
    with pytest.raises(WeightsError) as caught:
        load_weights(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: state_dict entry 'Conv1.conv.0.weight' is a list, not a tensor")
    assert "more entries" in message and "\n" not in message
