"""The one-line description of what a run computes, which the workflow reports per variant and the trainer
logs per run (:func:`spockmip.settings.rules.describe_computation`)."""

from __future__ import annotations

from typing import Any

import pytest

from spockmip.settings.lookup import complete_training
from spockmip.settings.rules import describe_computation

# Each as the shipped configs write it: config/paper.yaml's z-MIP U-Net (the released computation), the
# demo's DS6 with a multi-axis MIP term (the described method), config/continuity.yaml's clDice U-Net.
RELEASED_MIP = {"model": "unet", "mip_axis": "z"}
DESCRIBED_DS6 = {
    "model": "unetmss", "deform": True, "mip_axis": "multi", "sampling": "grid", "validation_grid": "flush",
    "validation_criterion": "level0", "mip_pairing": "consistent", "baseline_scale": "unit",
    "deformation": "smooth", "deformation_label_mode": "nearest", "consistency_target": "probabilities",
    "consistency_weight": 0.1,
}  # fmt: skip
RELEASED_CLDICE = {"model": "unet", "skeleton_loss": "cldice"}


@pytest.mark.parametrize(
    ("settings", "description"),
    [
        (
            RELEASED_MIP,
            "sampling released (released_grid), validation_grid released (released), "
            "validation_criterion released, mip_pairing released",
        ),
        (
            DESCRIBED_DS6,
            "sampling grid (grid), validation_grid flush (flush), validation_criterion level0, "
            "mip_pairing consistent, deformation smooth, labels nearest, consistency probabilities x 0.1",
        ),
        (
            RELEASED_CLDICE,
            "sampling released (queue), queue_workers 8, validation_grid released (flush), "
            "validation_criterion released, baseline_scale released, clDice x 0.5 (10 iterations)",
        ),
    ],
    ids=["released z-MIP", "described DS6", "released clDice"],
)
def test_a_runs_computation_is_described_by_its_released_or_described_choices(
    settings: dict[str, Any], description: str
) -> None:
    assert describe_computation(complete_training(settings)) == description


def test_settings_without_effect_on_the_run_are_left_out() -> None:
    """The baseline scale of a MIP variant, DS6's settings without DS6, the queue's workers under another
    sampler: naming them would suggest they change the run."""
    inert = {"baseline_scale": "unit", "deformation": "smooth", "consistency_weight": 0.1, "queue_workers": 3}
    assert describe_computation(complete_training({**RELEASED_MIP, **inert})) == describe_computation(
        complete_training(RELEASED_MIP)
    )
