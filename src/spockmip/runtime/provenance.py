"""Which spockmip code a script runs, and a fingerprint of that code.

A workflow manager reruns a job when the job's own script changes, but it cannot see the library the
script imports: after a fix to, say, the metrics, the old numbers would stay as if they were current. The
fingerprint of exactly the package modules a script imports (transitively) lets a workflow pass it to the
job as a parameter, so that changing a module reruns the jobs that run it, and only those.

The modules are found statically (``ast``), without importing anything, in the package folder this module
was itself loaded from: the code that jobs will import, however the package was installed. The fingerprint
hashes each module's syntax tree rather than its text, so comments and formatting never cause a rerun
(docstrings, being part of the code, do).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from spockmip import __version__

PACKAGE = __name__.split(".")[0]
# This module lives in a subpackage: the package folder is its parent's parent.
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module first runs every enclosing package."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Dotted names of the package's modules that ``tree`` may import, at any depth of the code (imports
    inside functions count). ``from x import y`` may import module ``x.y``; names that are not modules are
    dropped later. Relative imports are resolved against ``module``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {parent for name in names if name.split(".")[0] == PACKAGE for parent in _with_parents(name)}


def _module_file(package_dir: Path, name: str) -> Path | None:
    """The source file of module ``name`` inside ``package_dir``, or None when ``name`` is no module."""
    parts = name.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in ([base.with_suffix(".py")] if parts else []) + [base / "__init__.py"]:
        if candidate.is_file():
            return candidate
    return None


def imported_modules(script: str | Path, package_dir: Path = PACKAGE_DIR) -> dict[str, ast.Module]:
    """Syntax tree of every package module that ``script`` imports, directly or through other modules."""
    pending = _imported_names(ast.parse(Path(script).read_text()), "__main__", is_package=False)
    found: dict[str, ast.Module] = {}
    while pending:
        name = pending.pop()
        path = None if name in found else _module_file(package_dir, name)
        if path is not None:
            found[name] = ast.parse(path.read_text())
            pending |= _imported_names(found[name], name, is_package=path.name == "__init__.py")
    return found


def library_fingerprint(script: str | Path, package_dir: Path = PACKAGE_DIR) -> str:
    """``<version>+<digest>`` of the package code ``script`` runs: any change to the code of a module it
    imports changes the digest; the version keeps the value readable where a workflow reports it."""
    digest = hashlib.sha256()
    for name, tree in sorted(imported_modules(script, package_dir).items()):
        digest.update(f"{name}\0{ast.dump(tree)}\0".encode())
    return f"{__version__}+{digest.hexdigest()[:16]}"
