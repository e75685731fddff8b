"""What a statement imports, run in a fresh interpreter: the modules that must stay light are checked so."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "torchio", "matplotlib", "monai")
REPORT = "import json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & HEAVY)))"


def heavy_modules_after(statement: str, heavy: tuple[str, ...] = HEAVY) -> list[str]:
    """The packages of ``heavy`` (default :data:`HEAVY`) loaded once ``statement`` has run in a new Python
    process."""
    script = f"import sys\n{statement}\nHEAVY = {set(heavy)!r}\n{REPORT}"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)
