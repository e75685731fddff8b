"""Seeds as replicates in the settings: training.seed or training.seeds, and one run takes one seed."""

import pytest

from spockmip.errors import SettingsError
from spockmip.settings.lookup import variant_settings
from spockmip.settings.rules import check_replicates
from spockmip.settings.workflow import WorkflowSettings


def test_seed_and_seeds_together_are_refused_naming_both() -> None:
    with pytest.raises(
        SettingsError, match=r"config training\.seeds: give training\.seed or training\.seeds"
    ):
        check_replicates({"seed": 1, "seeds": [1, 2]})
    with pytest.raises(SettingsError, match=r"config training\.seeds: 3 is listed twice"):
        check_replicates({"seeds": [3, 4, 3]})
    check_replicates({"seed": 1})
    check_replicates({"seeds": [1, 2]})


def test_a_run_of_a_replicated_config_takes_the_chosen_seed() -> None:
    config = {"training": {"seeds": [4, 5], "epochs": 2}, "variants": {"a": {"model": "unet"}}}
    assert variant_settings(config, "a", 5) == {"seed": 5, "epochs": 2, "model": "unet"}
    assert variant_settings({**config, "training": {"seeds": [9]}}, "a")["seed"] == 9
    with pytest.raises(SettingsError, match=r"training\.seeds: lists 2 seeds .*spockmip train --seed"):
        variant_settings(config, "a")


def test_workflow_settings_list_the_seeds() -> None:
    config = {"training": {"seed": 3, "seeds": None}, "variants": {"a": {"model": "unet"}}}
    assert WorkflowSettings(config).seeds == [3]
    config["training"]["seeds"] = [8, 9]
    assert WorkflowSettings(config).seeds == [8, 9]
    assert WorkflowSettings(config).training("a", 9)["seed"] == 9
