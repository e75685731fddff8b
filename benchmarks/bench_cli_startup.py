"""Start-up time of ``spockmip --help`` against ``python -c pass``, measured in the same run.

Candidates: ``python -m spockmip.cli --help`` and, when it sits next to this Python, the console script
``spockmip --help``. Baseline: ``python -c pass``, the interpreter's own start-up. Every command runs as
a fresh subprocess (output discarded), once untimed to warm the file cache, then ``--rounds`` times,
interleaved, the order rotating every round so drift and load from other processes fall on all of them.
Printed: each command's median wall time with its range, each candidate's difference to the baseline and
their ratio, and a verdict against the target "within 0.5 s of python -c pass". Also printed: which
heavy modules (torch, torchio, matplotlib, monai) are loaded once ``spockmip.cli`` is imported and its
parser built, in a fresh interpreter, and from where ``spockmip`` was imported.

Run: ``.venv/bin/python benchmarks/bench_cli_startup.py`` (``--rounds``, default 10). A measurement: the
exit status is 0 whatever the verdict, non-zero only when a command fails.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from machine import print_machine

TARGET_SECONDS = 0.5
HEAVY = ("torch", "torchio", "matplotlib", "monai")
BASELINE = "python -c pass"
PROBE = (
    "import sys, spockmip.cli; spockmip.cli.build_parser(); "
    f"print(spockmip.cli.__file__); print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
)


def _commands() -> dict[str, list[str]]:
    commands = {
        BASELINE: [sys.executable, "-c", "pass"],
        "python -m spockmip.cli --help": [sys.executable, "-m", "spockmip.cli", "--help"],
    }
    script = shutil.which("spockmip", path=str(Path(sys.executable).parent))
    if script:
        commands["spockmip --help"] = [script, "--help"]
    return commands


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="timed runs of each command (default: 10)")
    args = parser.parse_args()
    print_machine(None, {name: _version(name) for name in ("spockmip", "torch")})
    commands = _commands()
    print("commands: " + "; ".join(f"{name} = {' '.join(argv)}" for name, argv in commands.items()))
    for argv in commands.values():
        _seconds(argv)  # warm-up, not timed
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_seconds(commands[name]))

    print(f"\nwall time per start, median of {args.rounds} (interleaved), [min-max]:")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"  {name:30s} {medians[name]:6.3f} s [{min(values):.3f}-{max(values):.3f}]")
    base = medians[BASELINE]
    for name in names[1:]:
        difference = medians[name] - base
        verdict = "PASS" if difference <= TARGET_SECONDS else "FAIL"
        print(
            f"{name}: {difference:+.3f} s vs {BASELINE}, ratio {medians[name] / base:.2f}x; "
            f"target within {TARGET_SECONDS} s -> {verdict}"
        )

    probe = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    source, loaded = [*probe.stdout.splitlines(), "", ""][:2]
    print(f"\nspockmip.cli imported from {source}")
    print(f"heavy modules loaded by importing spockmip.cli and build_parser(): {loaded or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
