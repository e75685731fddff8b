"""What the Snakemake workflow catalog reads of the project: config/README.md (the config files and every key,
generated from the settings), .snakemake-workflow-catalog.yml (how to run it), and the license."""

from __future__ import annotations

import difflib
import hashlib
import re
import shlex
import tomllib

import pytest
import yaml
from paths import ROOT
from readme_helpers import readme_commands

from spockmip.settings import catalogue
from spockmip.settings.reference import MARKER, config_readme

CONFIG_README = ROOT / "config" / "README.md"
# SHA-256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the license's standard text.
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_committed_config_readme_is_generated_from_the_settings() -> None:
    committed = CONFIG_README.read_text()
    generated = config_readme(committed)
    diff = "".join(
        difflib.unified_diff(committed.splitlines(True), generated.splitlines(True), "committed", "generated")
    )
    assert committed == generated, f"run python workflow/schemas/generate.py; the difference:\n{diff}"


def test_regenerating_keeps_the_hand_written_part_and_replaces_the_rest() -> None:
    head = "# Configuration\n\nwritten by hand\n\n"
    regenerated = config_readme(f"{head}{MARKER}\n\n## Every key\n\na stale table\n")
    assert regenerated.startswith(f"{head}{MARKER}\n\n## Every key\n")
    assert "a stale table" not in regenerated and "### `training`" in regenerated
    with pytest.raises(ValueError, match="hand-written part"):
        config_readme(head)


def _documented_keys() -> set[tuple[str, str]]:
    """(section, key) of every table row of config/README.md, the section named by the heading above it."""
    keys, section = set(), None
    for line in CONFIG_README.read_text().partition(MARKER)[2].splitlines():
        heading = re.fullmatch(r"#{3,} `([\w.<>]+)`", line)
        section = heading.group(1) if heading else section
        row = re.match(r"\| `(\w+)` \|", line)
        if row:
            keys.add((section, row.group(1)))
    return keys


def test_the_config_readme_documents_every_setting_of_the_catalogue() -> None:
    expected = {
        (path, key)
        for name, section in catalogue.SECTIONS.items()
        for path, settings in [
            (name, section.settings),
            *((f"{name}.{sub}", nested.settings) for sub, nested in section.sections.items()),
        ]
        for key in settings
    }
    variant = {*catalogue.VARIANT, *catalogue.VARIANT_TRAINING, *catalogue.COMPARISON}
    expected |= {("variants", key) for key in variant}
    expected |= {("published_weights", key) for key in catalogue.PUBLISHED}
    expected |= {
        (f"resources.{stage}", key) for stage in catalogue.RESOURCE_STAGES for key in catalogue.RESOURCE
    }
    assert _documented_keys() == expected


@pytest.mark.parametrize(
    "row",
    [
        "| `patch_size` | list of integers | `[64, 64, 64]` | exactly 3 items; each 16 to 1024, a multiple "
        "of 16 | Training patch (X, Y, Z) in voxels; each divisible by 16. |",
        "| `test_subjects` | integer or list of strings | `2` | integer: at least 1; or list of strings: "
        "at least 1 item; no repeats |",
        "| `model` | string | required | `unet`, `unetmss` |",
        "| `mip_axis` | string | `none` | `none`, `x`, `y`, `z`, `multi` | MIP-loss projection axis (volume "
        "axes; z = slice axis; multi = all three); none = no MIP term. |",
        "| `sampling` | string | as `training.sampling` | `released`, `released_grid`, `queue`, `grid`, "
        "`uniform` | Overrides training.sampling for this variant. |",
        "| `alpha` | number | `0.05` | more than 0, less than 1 |",
    ],
    ids=["patch", "one-of", "required", "variant-default", "variant-override", "exclusive-bounds"],
)
def test_a_row_shows_the_type_default_and_allowed_values(row: str) -> None:
    assert row in CONFIG_README.read_text()


def test_the_config_readme_lists_every_config_file() -> None:
    listed = set(re.findall(r"^\| `([\w.]+\.yaml)` \|", CONFIG_README.read_text(), flags=re.M))
    assert listed == {path.name for path in (ROOT / "config").glob("*.yaml")}


def test_the_config_readme_shows_only_commands_shown_where_they_are_run() -> None:
    """Its commands are the README's (which tests/workflow runs or dry-runs) or a config file's own."""
    shown = {tuple(command[1:]) for command in readme_commands("snakemake")}
    for path in sorted((ROOT / "config").glob("*.yaml")):
        shown |= {tuple(shlex.split(found)) for found in re.findall(r"snakemake ([^)\n]+)", path.read_text())}
    commands = re.findall(r"`snakemake ([^`]+)`", CONFIG_README.read_text().partition(MARKER)[0])
    assert len(commands) >= 5
    for command in commands:
        assert tuple(shlex.split(command)) in shown, command


def test_the_license_file_is_the_license_pyproject_declares() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert pyproject["project"]["license-files"] == ["LICENSE"]
    # PEP 639's license expression and license-files are read from setuptools 77 on.
    (setuptools,) = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(setuptools.removeprefix("setuptools>=").split(".")[0]) >= 77
    text = (ROOT / "LICENSE").read_bytes()
    assert [line.strip() for line in text.decode().splitlines()[1:3]] == [
        "Apache License",
        "Version 2.0, January 2004",
    ]
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256


def test_the_workflow_catalog_file_says_how_the_readme_runs_the_workflow() -> None:
    """The catalog writes ``snakemake --cores all`` and ``--sdm`` itself, so mandatory flags are only flags
    beyond those; each must be one the README uses."""
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    mandatory = usage["mandatory-flags"]
    assert set(mandatory) == {"desc", "flags"} and "config/README.md" in mandatory["desc"]
    flags = shlex.split(mandatory["flags"]) if isinstance(mandatory["flags"], str) else mandatory["flags"]
    commands = readme_commands("snakemake")
    used = {token for command in commands for token in command if token.startswith("-")}
    assert not {"--cores", "-c", "--sdm", "--software-deployment-method", "--use-conda"} & set(flags)
    assert {flag for flag in flags if flag.startswith("-")} <= used

    stack = usage["software-stack-deployment"]
    assert stack == {"conda": True, "apptainer": False, "apptainer+conda": False}
    assert any(command[i : i + 2] == ["--sdm", "conda"] for command in commands for i in range(len(command)))
    workflow = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    assert not any(re.search(r"^\s*container:", path.read_text(), flags=re.M) for path in workflow)

    assert usage["report"] is True
    assert any("--report" in command for command in commands)
