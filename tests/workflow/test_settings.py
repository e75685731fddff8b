"""Dry runs of the workflow against the settings: a parse imports no torch, and the settings' rules (which
the schema cannot express) stop a dry run with the key or the line named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from paths import ROOT

BLOCK_TORCH = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchio"):
            raise ImportError(f"{name} imported while parsing the workflow")
        return None

sys.meta_path.insert(0, Refuse())
"""


def test_a_dry_run_never_imports_torch(tmp_path: Path) -> None:
    """Every Snakefile parse (once per cluster job too) would otherwise pay torch's start-up."""
    (tmp_path / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "--quiet", "all", "-d", str(tmp_path / "w"),
         "-s", str(ROOT / "Snakefile"), "--configfile", str(ROOT / "config" / "config.yaml")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def _dry_run_output(tmp_path: Path, name: str, text: str) -> tuple[Path, str]:
    """A dry run of the workflow on the config file ``name`` holding ``text``, which must fail: the file
    and what Snakemake printed."""
    config = tmp_path / name
    config.write_text(text)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-n", "--quiet", "all", "-d", str(tmp_path / "w"),
         "-s", str(ROOT / "Snakefile"), "--configfile", str(config)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    return config, result.stdout + result.stderr


def test_a_dry_run_refuses_a_continuity_setting_without_its_term(tmp_path: Path) -> None:
    """The schema's defaults, filled in before the rules run, must not read as written."""
    text = "variants:\n  plain: {model: unet}\n  a: {model: unet, skeleton_recall_weight: 1}\n"
    _, output = _dry_run_output(tmp_path, "stray.yaml", text)
    message = "config variants.a.skeleton_recall_weight: has no effect unless variants.a.skeleton_loss is "
    assert message + "skeleton_recall (variant a)" in output, output[-2000:]


def test_a_duplicate_key_in_a_workflow_config_is_named(tmp_path: Path) -> None:
    config, output = _dry_run_output(
        tmp_path, "twice.yaml", "variants:\n  a: {model: unet}\n  a: {model: unetmss}\n"
    )
    assert f"{config}: line 3: key 'a' is defined twice" in output, output[-2000:]
