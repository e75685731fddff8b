"""Static checks of the workflow files: conda env in step with the pip pins, rule contracts."""

import re
import tomllib
from pathlib import Path

import yaml

from spockmip.provenance import imported_modules

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_pins_match_the_package_dependencies() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs" / "spockmip.yaml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert sorted(p for p in pip_section if p != "..") == sorted(dependencies)
    assert ".." in pip_section, "the env must install the project itself"
    python = next(item for item in env["dependencies"] if isinstance(item, str) and item.startswith("python"))
    assert python == "python=3.11"


def _rule_bodies() -> dict[str, str]:
    bodies = {}
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for match in re.finditer(
            r"^\s*rule (\w+):\n(.*?)(?=^\s*rule |^\S|\Z)", path.read_text(), re.M | re.S
        ):
            bodies[match.group(1)] = match.group(2)
    return bodies


def test_every_rule_logs_and_uses_the_conda_env() -> None:
    bodies = _rule_bodies()
    assert {"train", "predict", "evaluate", "aggregate", "split"} <= set(bodies)
    for name, body in bodies.items():
        assert "log:" in body, name
        assert '"../../envs/spockmip.yaml"' in body, name


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
