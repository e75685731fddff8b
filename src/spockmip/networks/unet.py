"""3D U-Nets whose parameter names and shapes match the published SPOCKMIP/DS6 checkpoints.

The module tree (``Conv1.conv.0``, ``Up5.up.1``, ``Conv_d3`` ...) is part of the weight format: a published
``model.safetensors`` loads into these classes with ``strict=True`` once its ``model.`` prefix is stripped.
Width (``init_features``) is free so CPU runs stay feasible; 64 is the published width.

Both networks expect patches in network order ``(B, 1, Z, X, Y)`` (see :mod:`spockmip.axes`) with every
spatial size divisible by 16 (four 2× poolings), and return a list of logit tensors, full resolution first.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Activation = Literal["relu", "leaky_relu"]
ModelName = Literal["unet", "unetmss"]
DOWNSAMPLING_FACTOR = 16


def _activation(name: Activation) -> nn.Module:
    """SPOCKMIP uses LeakyReLU, DS6 ReLU; neither has parameters, so weights load either way."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}; expected 'relu' or 'leaky_relu'")


class ConvBlock(nn.Module):
    """Two (3×3×3 conv → BN → activation) stages; held in ``conv`` to reproduce the checkpoint keys."""

    def __init__(self, in_channels: int, out_channels: int, activation: Activation) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=True),
            nn.BatchNorm3d(out_channels),
            _activation(activation),
            nn.Conv3d(out_channels, out_channels, kernel_size=3, padding=1, bias=True),
            nn.BatchNorm3d(out_channels),
            _activation(activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpConv(nn.Module):
    """Nearest ×2 upsampling then one conv stage; held in ``up`` to reproduce the checkpoint keys."""

    def __init__(self, in_channels: int, out_channels: int, activation: Activation) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=True),
            nn.BatchNorm3d(out_channels),
            _activation(activation),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class UNetBase(nn.Module):
    """Five-level 3D U-Net (filters f·[1, 2, 4, 8, 16]) with optional multi-scale supervision heads."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        init_features: int,
        activation: Activation,
        deep_supervision: bool,
    ) -> None:
        super().__init__()
        f = [init_features * m for m in (1, 2, 4, 8, 16)]
        self.in_channels, self.out_channels, self.init_features = in_channels, out_channels, init_features
        self.activation, self.deep_supervision = activation, deep_supervision
        self.pool = nn.MaxPool3d(kernel_size=2, stride=2)
        self.Conv1 = ConvBlock(in_channels, f[0], activation)
        self.Conv2 = ConvBlock(f[0], f[1], activation)
        self.Conv3 = ConvBlock(f[1], f[2], activation)
        self.Conv4 = ConvBlock(f[2], f[3], activation)
        self.Conv5 = ConvBlock(f[3], f[4], activation)
        if deep_supervision:
            # Registered here so the state dict lists them where the published checkpoints do.
            self.Conv_d3 = ConvBlock(f[1], out_channels, activation)
            self.Conv_d4 = ConvBlock(f[2], out_channels, activation)
        self.Up5 = UpConv(f[4], f[3], activation)
        self.Up_conv5 = ConvBlock(f[4], f[3], activation)
        self.Up4 = UpConv(f[3], f[2], activation)
        self.Up_conv4 = ConvBlock(f[3], f[2], activation)
        self.Up3 = UpConv(f[2], f[1], activation)
        self.Up_conv3 = ConvBlock(f[2], f[1], activation)
        self.Up2 = UpConv(f[1], f[0], activation)
        self.Up_conv2 = ConvBlock(f[1], f[0], activation)
        self.Conv = nn.Conv3d(f[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if any(s % DOWNSAMPLING_FACTOR for s in x.shape[2:]):
            raise ValueError(
                f"spatial size {tuple(x.shape[2:])} must be divisible by {DOWNSAMPLING_FACTOR} (4 poolings)"
            )
        e1 = self.Conv1(x)
        e2 = self.Conv2(self.pool(e1))
        e3 = self.Conv3(self.pool(e2))
        e4 = self.Conv4(self.pool(e3))
        e5 = self.Conv5(self.pool(e4))
        d5 = self.Up_conv5(torch.cat((e4, self.Up5(e5)), dim=1))
        d4 = self.Up_conv4(torch.cat((e3, self.Up4(d5)), dim=1))
        d3 = self.Up_conv3(torch.cat((e2, self.Up3(d4)), dim=1))
        d2 = self.Up_conv2(torch.cat((e1, self.Up2(d3)), dim=1))
        if self.deep_supervision:
            return [self.Conv(d2), self.Conv_d3(d3), self.Conv_d4(d4)]
        return [self.Conv(d2)]


class UNet3D(UNetBase):
    """The plain U-Net of the published ``UNet3D`` repos (ReLU there); returns ``[logits]``."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        init_features: int = 64,
        activation: Activation = "relu",
    ) -> None:
        super().__init__(in_channels, out_channels, init_features, activation, deep_supervision=False)


class UNetMSS3D(UNetBase):
    """U-Net with multi-scale supervision; returns ``[full, half, quarter]`` resolution logits.

    The side heads are full conv blocks ending in the activation, as in the published weights (not the
    1×1×1 convs a comment in the released code describes). LeakyReLU, as in the published repos.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        init_features: int = 64,
        activation: Activation = "leaky_relu",
    ) -> None:
        super().__init__(in_channels, out_channels, init_features, activation, deep_supervision=True)


ARCHITECTURES: dict[str, type[UNetBase]] = {"UNet3D": UNet3D, "UNetMSS3D": UNetMSS3D}
MODEL_ARCHITECTURE: dict[str, str] = {"unet": "UNet3D", "unetmss": "UNetMSS3D"}


def build_model(
    name: ModelName,
    init_features: int = 64,
    activation: Activation | None = None,
    in_channels: int = 1,
    out_channels: int = 1,
) -> UNetBase:
    """Build a network by its short config name; ``activation=None`` takes the published repos' choice."""
    if name not in MODEL_ARCHITECTURE:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_ARCHITECTURE)}")
    cls = ARCHITECTURES[MODEL_ARCHITECTURE[name]]
    if activation is None:
        return cls(in_channels, out_channels, init_features)
    return cls(in_channels, out_channels, init_features, activation)
