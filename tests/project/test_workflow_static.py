"""Static checks of the workflow files: pins, constraints and conda envs in step, rule contracts, lint and
formatting."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from paths import ROOT
from workflow_helpers import SNAKEMAKE

from spockmip.runtime.provenance import imported_modules


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraints() -> dict[str, str]:
    """Package (normalised name) -> exact version, from constraints.txt."""
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(pin) == 2 for pin in pins), "constraints.txt holds exact pins only"
    return {_normalised(name): version for name, version in pins}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _conda_env(name: str) -> tuple[list[str], list[str]]:
    """The conda packages and the pip lines of ``envs/<name>.yaml``."""
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    return [item for item in env["dependencies"] if isinstance(item, str)], pip


def test_pyproject_states_ranges_that_the_constraints_pin_exactly() -> None:
    project = _project()
    assert project["requires-python"] == ">=3.11"
    pins = _constraints()
    extras = project["optional-dependencies"]
    for text in [*project["dependencies"], *extras["test"], *extras["synapse"]]:
        requirement = Requirement(text)
        assert not any(spec.operator == "==" for spec in requirement.specifier), f"{text}: a range, not a pin"
        version = pins.get(_normalised(requirement.name))
        assert version is not None, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(version), (
            f"constraints.txt {requirement.name}=={version}: {text}"
        )
    assert pins["torch"] == "2.13.0"


@pytest.mark.parametrize(("env", "extras"), [("spockmip", None), ("synapse", "synapse")])
def test_conda_envs_pin_their_dependencies_as_the_constraints_do(env: str, extras: str | None) -> None:
    """An environment is built from its file alone, so it repeats the pins of the runtime dependencies (and
    of the extra it installs); they must not drift apart."""
    conda, pip = _conda_env(env)
    assert conda == ["python=3.11", "pip"]
    pins = dict(line.split("==") for line in pip if "==" in line)
    project = _project()
    wanted = [*project["dependencies"], *(project["optional-dependencies"][extras] if extras else [])]
    assert sorted(map(_normalised, pins)) == sorted(_normalised(Requirement(text).name) for text in wanted)
    constraints = _constraints()
    assert {
        name: version for name, version in pins.items() if constraints[_normalised(name)] != version
    } == {}
    source = "-e ${SPOCKMIP_SOURCE}" + (f"[{extras}]" if extras else "")
    assert [line for line in pip if "==" not in line] == [source]


@pytest.mark.parametrize(("env", "extras"), [("spockmip", None), ("synapse", ["synapse"])])
def test_conda_envs_install_the_working_copy_in_editable_mode(
    tmp_path: Path, env: str, extras: list[str] | None
) -> None:
    """Run pip on the env's pip section as conda does: from a requirements file beside the copy of the yaml
    that Snakemake makes in .snakemake/conda/, with SPOCKMIP_SOURCE set as the Snakefile sets it."""
    assert "os.environ.update(SPOCKMIP_SOURCE=workflow.basedir)" in (ROOT / "Snakefile").read_text()
    folder = tmp_path / ".snakemake" / "conda"
    folder.mkdir(parents=True)
    (folder / "condaenv.requirements.txt").write_text("\n".join(_conda_env(env)[1]) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet", "--report", "-",
         "-r", "condaenv.requirements.txt"],
        cwd=folder, capture_output=True, text=True, env={**os.environ, "SPOCKMIP_SOURCE": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (project,) = [
        item for item in json.loads(result.stdout)["install"] if item["metadata"]["name"] == "spockmip"
    ]
    assert project["download_info"] == {"url": ROOT.as_uri(), "dir_info": {"editable": True}}
    assert project.get("requested_extras") == extras


def _rule_bodies() -> dict[str, str]:
    bodies = {}
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for match in re.finditer(
            r"^\s*rule (\w+):\n(.*?)(?=^\s*rule |^\S|\Z)", path.read_text(), re.M | re.S
        ):
            bodies[match.group(1)] = match.group(2)
    return bodies


def test_every_rule_logs_and_uses_a_conda_env() -> None:
    bodies = _rule_bodies()
    assert {"train", "predict", "evaluate", "aggregate", "split", "download_smile_uhura"} <= set(bodies)
    for name, body in bodies.items():
        env = "synapse" if name == "download_smile_uhura" else "spockmip"
        assert "log:" in body, name
        assert f'"../../envs/{env}.yaml"' in body, name


def test_every_rule_passes_the_fingerprint_of_the_library_its_script_runs() -> None:
    """Snakemake sees a rule's script but not the spockmip modules it imports: without this parameter a fix
    to the library would rerun nothing, and stale results would look current."""
    for name, body in _rule_bodies().items():
        script = re.search(r'script:\n\s+"\.\./scripts/(\w+)\.py"', body)
        assert script, f"rule {name} runs no workflow script"
        assert imported_modules(ROOT / "workflow" / "scripts" / f"{script.group(1)}.py"), name
        assert f'library=library_fingerprint("{script.group(1)}")' in body, name


def test_heavy_rules_declare_threads_resources_and_benchmark() -> None:
    bodies = _rule_bodies()
    for name in ("train", "predict"):
        body = bodies[name]
        for directive in ("threads:", "benchmark:", "mem_mb=", "runtime=", "gpu="):
            assert directive in body, f"rule {name} lacks {directive}"


def test_scripts_get_hyper_parameters_only_through_params() -> None:
    for script in (ROOT / "workflow" / "scripts").glob("*.py"):
        assert "snakemake.config" not in script.read_text(), script.name


def test_profiles_do_not_print_shell_commands() -> None:
    """Every rule runs a script, so printshellcmds would only print "Shell command: None" per job."""
    for profile in (ROOT / "profiles").glob("*/config.yaml"):
        assert "printshellcmds" not in yaml.safe_load(profile.read_text()), profile


def test_every_rule_asking_for_a_gpu_gets_cpus_to_feed_it_in_the_slurm_profile() -> None:
    """A GPU job without cpus_per_gpu gets one CPU on most clusters: its loader starves the GPU."""
    import yaml

    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["set-resources"]
    rules = "\n".join(path.read_text() for path in (ROOT / "workflow" / "rules").glob("*.smk"))
    gpu_rules = re.findall(r"^rule (\w+):(?:(?!^rule ).)*?\bgpu=", rules, flags=re.S | re.M)
    assert {"train", "predict", "predict_ensemble", "predict_published"} <= set(gpu_rules)
    for rule in gpu_rules:
        assert profile.get(rule, {}).get("cpus_per_gpu", 0) >= 1, rule
        assert profile[rule].get("gpu") == 1, rule


def test_the_slurm_profile_groups_existing_rules_with_bounded_resources() -> None:
    """Snakemake ignores a --groups entry whose rule does not exist, so a renamed rule would leave the group
    silently; and a grouped rule without its own memory, time limit and scoring slot would make its group
    ask for the rule's defaults, summed over the jobs it runs side by side."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    rules = "\n".join(path.read_text() for path in (ROOT / "workflow" / "rules").glob("*.smk"))
    defined = set(re.findall(r"^rule (\w+):", rules, flags=re.M))
    assert set(profile["groups"]) <= defined, set(profile["groups"]) - defined
    assert set(profile["groups"].values()) == set(profile["group-components"]) == {"scoring"}
    assert profile["set-resource-scopes"] == {"scoring_slots": "local"}
    assert profile["resources"]["scoring_slots"] >= 1
    for rule in profile["groups"]:
        assert profile["set-resources"][rule].keys() >= {"mem_mb", "runtime", "scoring_slots"}, rule


def test_lint_is_clean_and_rules_are_snakefmt_formatted() -> None:
    lint = subprocess.run([SNAKEMAKE, "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    snakefmt = str(Path(SNAKEMAKE).parent / "snakefmt")
    check = subprocess.run(
        [snakefmt, "--check", "Snakefile", "workflow"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
