"""Seeds as replicates on the command line: a settings file that lists several seeds needs --seed."""

from pathlib import Path

import yaml
from cli_helpers import spockmip


def test_spockmip_train_on_a_replicated_config_needs_seed(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.yaml"
    replicated = {"training": {"seeds": [4, 5]}, "variants": {"a": {"model": "unet"}}}
    settings_file.write_text(yaml.safe_dump(replicated))
    out = tmp_path / "out"
    result = spockmip("train", "--data", str(tmp_path), "--config", str(settings_file), "--train", "x",
                      "--validation", "y", "--out", str(out))  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"spockmip train: error: {settings_file}: training.seeds: lists 2 seeds and one training run takes "
        "one (the workflow trains each; spockmip train --seed chooses)"
    ]
    assert not out.exists()
    # With --seed the file's settings are taken: the run gets as far as the (missing) data.
    result = spockmip("train", "--data", str(tmp_path), "--config", str(settings_file), "--seed", "5",
                      "--train", "x", "--validation", "y", "--out", str(out))  # fmt: skip
    assert result.returncode == 1 and "training.seeds" not in result.stderr
