"""Flip test-time augmentation and fold ensembles, on 'networks' whose output can be written by hand."""

from __future__ import annotations

import numpy as np
import torch

from spockmip.inference.windows import (
    FLIPS,
    InferenceConfig,
    ensemble_probabilities,
    flip_averaged_probabilities,
    predict_probabilities,
)


class Ramp(torch.nn.Module):
    """Logits that rise along the network's first spatial axis (the volume's Z), whatever the input."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        ramp = torch.linspace(self.low, self.high, x.shape[2]).view(1, 1, -1, 1, 1)
        return [ramp.expand_as(x).clone()]


class Scaled(torch.nn.Module):
    """Logits from the input itself, so flipped volumes give different windows."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [(x - 0.4) * 6.0]


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def test_flip_tta_of_a_ramp_is_the_mean_of_the_ramp_and_its_reverse() -> None:
    volume = np.random.default_rng(0).random((16, 16, 16), dtype=np.float32)
    config = InferenceConfig(patch_size=(16, 16, 16), strides=(16, 16, 16))
    ramp = np.linspace(0.0, 3.0, 16)
    plain = predict_probabilities(Ramp(0.0, 3.0), volume, config)
    np.testing.assert_allclose(plain, np.broadcast_to(_sigmoid(ramp), volume.shape), atol=1e-6)
    # Half of the 8 flips reverse Z: each voxel sees its own ramp value and its mirror's, equally often.
    expected = (_sigmoid(ramp) + _sigmoid(ramp[::-1])) / 2
    tta = flip_averaged_probabilities(Ramp(0.0, 3.0), volume, config)
    np.testing.assert_allclose(tta, np.broadcast_to(expected, volume.shape), atol=1e-6)


def test_flip_tta_is_the_mean_over_the_eight_flipped_back_predictions() -> None:
    assert len(FLIPS) == len(set(FLIPS)) == 8
    volume = np.random.default_rng(1).random((20, 18, 16), dtype=np.float32)
    config = InferenceConfig(patch_size=(16, 16, 16), strides=(8, 8, 8))
    flipped_back = [
        np.flip(predict_probabilities(Scaled(), np.ascontiguousarray(np.flip(volume, axes)), config), axes)
        for axes in FLIPS
    ]
    tta = flip_averaged_probabilities(Scaled(), volume, config)
    np.testing.assert_allclose(tta, np.mean(flipped_back, axis=0), rtol=1e-6, atol=1e-7)
    members = [Scaled(), Ramp(-1.0, 2.0)]
    np.testing.assert_allclose(
        ensemble_probabilities(members, volume, config, tta=True),
        np.mean([flip_averaged_probabilities(m, volume, config) for m in members], axis=0),
        rtol=1e-6,
        atol=1e-7,
    )
