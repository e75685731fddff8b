"""The networks must reproduce the published checkpoints' parameter names and shapes exactly."""

import json
from pathlib import Path

import pytest
import torch

from spockmip.networks.unet import UNet3D, UNetMSS3D, build_model

FIXTURE = json.loads((Path(__file__).parent / "published_unet_state_dict.json").read_text())
ARCHS = {"UNet3D": UNet3D, "UNetMSS3D": UNetMSS3D}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_published_width_matches_fixture_names_shapes_and_order(arch: str) -> None:
    with torch.device("meta"):
        model = ARCHS[arch](init_features=64)
    expected = FIXTURE["architectures"][arch]["state_dict"]
    actual = {name: list(t.shape) for name, t in model.state_dict().items()}
    assert actual == expected
    assert list(actual) == list(expected), "state-dict order differs from the published checkpoint"
    n_parameters = sum(p.numel() for p in model.parameters())
    assert n_parameters == FIXTURE["architectures"][arch]["n_parameters"]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_published_output_shapes_on_meta_device(arch: str) -> None:
    with torch.device("meta"):
        model = ARCHS[arch](init_features=64)
        outputs = model(torch.empty(1, 1, 64, 64, 64))
    expected = FIXTURE["architectures"][arch]["outputs_for_input_1x1x64x64x64"]
    assert [list(o.shape) for o in outputs] == expected


@pytest.mark.parametrize("shape", [(16, 16, 16), (32, 48, 16), (16, 64, 32)])
def test_mss_side_outputs_have_half_and_quarter_resolution(shape: tuple[int, int, int]) -> None:
    model = build_model("unetmss", init_features=2).eval()
    with torch.no_grad():
        full, half, quarter = model(torch.rand(2, 1, *shape))
    assert full.shape == (2, 1, *shape)
    assert half.shape == (2, 1, *(s // 2 for s in shape))
    assert quarter.shape == (2, 1, *(s // 4 for s in shape))


def test_plain_unet_returns_one_output_and_rejects_sizes_not_divisible_by_16() -> None:
    model = build_model("unet", init_features=2).eval()
    with torch.no_grad():
        outputs = model(torch.rand(1, 1, 32, 16, 48))
    assert [o.shape for o in outputs] == [(1, 1, 32, 16, 48)]
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.rand(1, 1, 24, 16, 16))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_activation_is_configurable_and_does_not_change_the_weights(activation: str) -> None:
    model = build_model("unetmss", init_features=2, activation=activation)
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("LeakyReLU" in kinds) == (activation == "leaky_relu")
    assert ("ReLU" in kinds) == (activation == "relu")
    other = build_model("unetmss", init_features=2, activation="relu")
    other.load_state_dict(model.state_dict(), strict=True)


def test_published_defaults_and_unknown_names() -> None:
    assert build_model("unet", init_features=4).activation == "relu"
    assert build_model("unetmss", init_features=4).activation == "leaky_relu"
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vnet")
    with pytest.raises(ValueError, match="unknown activation"):
        build_model("unet", init_features=2, activation="gelu")


def test_width_scales_the_parameter_count() -> None:
    small = sum(p.numel() for p in build_model("unet", init_features=4).parameters())
    larger = sum(p.numel() for p in build_model("unet", init_features=8).parameters())
    assert 3.5 * small < larger < 4.1 * small
