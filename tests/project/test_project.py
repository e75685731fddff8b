"""Project hygiene that CI must enforce: lint, formatting, and the README's commands."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from paths import ROOT
from readme_helpers import readme_commands

from spockmip.cli import build_parser

BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed; install the test extra: pip install -e '.[test]'"
    return found


def test_ruff_check_passes() -> None:
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = subprocess.run(
        [_tool("ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one() -> None:
    commands = _readme_commands()
    assert len(commands) == 2, commands
    install_and_run, install_and_test = commands
    assert "pip install -c constraints.txt -e . " in install_and_run
    assert "pip install -c constraints.txt -e '.[test]' " in install_and_test
    assert install_and_test.endswith("pytest")
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci_lines


def test_the_readme_module_table_lists_every_module_and_package() -> None:
    """One row per subpackage and per top-level module, and each subpackage's row names all its modules."""
    table = (ROOT / "README.md").read_text().split("| package or module | what it holds |", 1)[1]
    rows = dict(re.findall(r"^\| `spockmip\.(\w+)` \|(.*)\|$", table.split("\n\n", 1)[0], flags=re.M))
    package = ROOT / "src" / "spockmip"
    present = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert present | subpackages == set(rows), (sorted(present | subpackages - set(rows)), sorted(rows))
    for name in subpackages:
        modules = {p.stem for p in (package / name).glob("*.py") if p.stem != "__init__"}
        named = set(re.findall(r"`(\w+)`", rows[name]))
        assert modules <= named, (name, sorted(modules - named))


def test_every_readme_spockmip_command_uses_existing_options() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    readme = readme_commands("spockmip")
    assert {c[1] for c in readme} >= {"synth", "train", "predict", "evaluate"}
    for command in readme:
        known = {o for action in commands[command[1]]._actions for o in action.option_strings}
        unknown = [token for token in command[2:] if token.startswith("--") and token not in known]
        assert not unknown, f"{shlex.join(command)}: {unknown}"
