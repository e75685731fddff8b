"""The commands the README shows, as the tests that run or check them read it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from paths import ROOT


def readme_commands(program: str) -> list[list[str]]:
    """Every ``program`` command of the README: code-block lines (split at ``&&``) and inline code."""
    readme = (ROOT / "README.md").read_text()
    candidates = [
        part
        for block in re.findall(r"```bash\n(.+?)\n```", readme, flags=re.S)
        for line in block.splitlines()
        for part in line.split("#")[0].split("&&")
    ]
    candidates += re.findall(r"`((?:\S*/)?(?:snakemake|spockmip) [^`]+)`", readme)
    commands = [shlex.split(c.replace("[", " ").replace("]", " ")) for c in candidates]
    return [c for c in commands if c and Path(c[0]).name == program]
