"""The package's folders keep their promises: the settings catalogue holds entries only, the packages that
say they are torch-free are, subpackages' ``__init__`` files import nothing, and the stages folder holds
doors only."""

from __future__ import annotations

import ast

import pytest
from import_helpers import heavy_modules_after
from paths import ROOT

PACKAGE = ROOT / "src" / "spockmip"


def _tree(path) -> ast.Module:
    return ast.parse(path.read_text())


def test_the_catalogue_defines_no_function_or_class() -> None:
    defined = [
        type(node).__name__
        for node in ast.walk(_tree(PACKAGE / "settings" / "catalogue.py"))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
    ]
    assert defined == []


def test_subpackage_init_files_hold_a_docstring_only() -> None:
    """Eager imports would load torch at ``spockmip --help`` and widen every job's code fingerprint."""
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        body = _tree(init).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), init.relative_to(ROOT)
        assert isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)


@pytest.mark.parametrize(
    "modules",
    [
        ["settings." + p.stem for p in sorted((PACKAGE / "settings").glob("*.py"))],
        ["files." + p.stem for p in sorted((PACKAGE / "files").glob("*.py"))],
        ["inference.planning", "stages.evaluate", "evaluation.scoring", "stages.synthesize"],
        ["stages.postprocess", "evaluation.betti_matching", "reporting.tables"],
        ["runtime.jobs", "runtime.gpuslots", "runtime.records"],
    ],
    ids=["settings", "files", "planning-and-torch-free-doors", "scoring-and-tables", "job-start-up"],
)
def test_the_torch_free_modules_import_nothing_heavy(modules: list[str]) -> None:
    statement = "; ".join(f"import spockmip.{name}".removesuffix(".__init__") for name in modules)
    assert heavy_modules_after(statement) == []


def test_the_command_lines_help_imports_neither_numpy_nor_pandas() -> None:
    """``spockmip --help`` builds the parser from the settings alone."""
    statement = "from spockmip.cli import build_parser; build_parser()"
    assert heavy_modules_after(statement, ("numpy", "pandas", "torch", "scipy", "nibabel")) == []


def test_the_stages_folder_holds_one_door_per_stage() -> None:
    """Each stage module defines its door (``run_*`` or the ingest functions) and nothing of another
    concern: no classes."""
    for module in sorted((PACKAGE / "stages").glob("*.py")):
        classes = [node.name for node in _tree(module).body if isinstance(node, ast.ClassDef)]
        assert classes == [], (module.name, classes)
