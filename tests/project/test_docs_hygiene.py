"""Docs, comments and docstrings describe the project as it is: no issue numbers, no "this task"."""

import re
from pathlib import Path

from paths import ROOT

SCANNED = ["README.md", "Snakefile", "docs", "src", "workflow", "benchmarks", "config"]
SUFFIXES = {".md", ".py", ".smk", ".yaml", ".rst"}
# "issue 12", "issue #12", "issue-12", "issues 12 and 13", "issue12"; a link such as .../issues/3757 is fine.
FORBIDDEN = re.compile(r"\bissues?[\s#-]*\d+|\bthis task\b", re.IGNORECASE)


def _text_files() -> list[Path]:
    files = []
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [
                found
                for found in sorted(path.rglob("*"))
                if found.is_file() and found.suffix in SUFFIXES and "__pycache__" not in found.parts
            ]
    return files


def _offences(files: list[Path], base: Path = ROOT) -> list[str]:
    """``file:line: 'match'`` for every forbidden phrase in ``files`` (named relative to ``base``)."""
    return [
        f"{path.relative_to(base)}:{number}: {match.group(0)!r}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        for match in FORBIDDEN.finditer(line)
    ]


def test_the_scan_covers_the_docs_and_the_code() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in _text_files()}
    assert {"README.md", "docs/performance.md", "src/spockmip/cli.py"} <= names
    assert any(name.startswith("workflow/") and name.endswith(".smk") for name in names)
    assert any(name.startswith("benchmarks/") for name in names)


def test_the_pattern_catches_issue_references_and_spares_links(tmp_path: Path) -> None:
    sample = tmp_path / "sample.md"
    sample.write_text(
        "as issue 12 asked\nsee Issue #7\nthe issue-12 section\nissues 3 and 4\nissue12\nThis task ran\n"
        "https://github.com/scikit-image/scikit-image/issues/3757\nthe issue is open\ntasks 12\n"
    )
    found = _offences([sample], tmp_path)
    assert [offence.split(":")[1] for offence in found] == ["1", "2", "3", "4", "5", "6"], found


def test_no_issue_numbers_or_task_talk_in_docs_and_code() -> None:
    offences = _offences(_text_files())
    assert not offences, "state the present fact instead:\n" + "\n".join(offences)
