"""The library fingerprint: which package modules a script runs, and when their code counts as changed."""

from pathlib import Path

import pytest
from paths import ROOT

from spockmip.runtime.provenance import imported_modules, library_fingerprint

# A package laid out like spockmip: the script imports `a`, which imports `b` inside a function; `sub.d`
# reaches `c` by a relative import; `unused` is imported by nobody.
PACKAGE = {
    "__init__.py": '"""The package."""\n',
    "a.py": "def f():\n    from spockmip import b\n\n    return b.VALUE\n",
    "b.py": "VALUE = 1\n",
    "c.py": "OTHER = 2\n",
    "unused.py": "X = 3\n",
    "sub/__init__.py": "",
    "sub/d.py": "from ..c import OTHER\n",
}


@pytest.fixture
def package(tmp_path: Path) -> Path:
    root = tmp_path / "spockmip"
    for name, text in PACKAGE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _script(tmp_path: Path, text: str) -> Path:
    script = tmp_path / "script.py"
    script.write_text(text)
    return script


def test_imports_are_followed_through_modules_functions_and_relative_imports(
    tmp_path: Path, package: Path
) -> None:
    script = _script(tmp_path, "import os\nfrom spockmip.a import f\nimport spockmip.sub.d\n")
    assert sorted(imported_modules(script, package)) == [
        "spockmip", "spockmip.a", "spockmip.b", "spockmip.c", "spockmip.sub", "spockmip.sub.d"
    ]  # fmt: skip


def test_a_code_change_in_an_imported_module_changes_the_fingerprint_and_nothing_else_does(
    tmp_path: Path, package: Path
) -> None:
    script = _script(tmp_path, "from spockmip.a import f\n")
    before = library_fingerprint(script, package)
    assert before.startswith("0.1.0+")
    (package / "b.py").write_text("# a comment\nVALUE = (\n    1\n)  # reformatted\n")
    (package / "unused.py").write_text("X = 4\n")
    assert library_fingerprint(script, package) == before
    (package / "b.py").write_text("VALUE = 2\n")
    assert library_fingerprint(script, package) != before


def test_the_installed_package_is_fingerprinted_by_default() -> None:
    """The workflow relies on the default: the package folder that jobs import from."""
    script = ROOT / "workflow" / "scripts" / "aggregate.py"
    modules = imported_modules(script)
    expected = {"spockmip.reporting.tables", "spockmip.reporting.statistics", "spockmip.runtime.jobs"}
    assert expected <= set(modules)
    assert "spockmip.training.trainer" not in modules
