"""Where the project is, for tests at any depth below tests/ (helpers are importable by plain name)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
