"""Cross-validation splits: the released protocol, persisted so every job of a run agrees on it.

Subjects are shuffled with the seed and dealt round-robin into ``k`` folds (docs/method.md); fold ``i``
validates on its own subjects and trains on all the others. A held-out test set, given by name or drawn
with the same seed before folding, is never seen in training or model selection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spockmip.outputs import atomic_path


def make_split(
    subjects: Sequence[str], folds: int, seed: int, test_subjects: Sequence[str] | int = ()
) -> dict[str, Any]:
    """A pure function of its inputs: ``{"seed", "test": [...], "folds": [{"train", "validation"}, ...]}``.

    ``test_subjects`` is a list of names, or a count drawn (seeded) from ``subjects``.
    """
    if len(set(subjects)) != len(subjects):
        duplicates = sorted({s for s in subjects if list(subjects).count(s) > 1})
        raise ValueError(f"duplicate subjects: {', '.join(duplicates)}")
    rng = np.random.default_rng(seed)
    if isinstance(test_subjects, int):
        if not 0 <= test_subjects < len(subjects):
            raise ValueError(f"cannot hold out {test_subjects} of {len(subjects)} subjects for testing")
        test = sorted(rng.permutation(sorted(subjects))[:test_subjects].tolist())
    else:
        unknown = sorted(set(test_subjects) - set(subjects))
        if unknown:
            raise ValueError(f"test subjects not in the subject list: {', '.join(unknown)}")
        test = sorted(test_subjects)
    pool = [s for s in sorted(subjects) if s not in test]
    if folds < 2 or folds > len(pool):
        raise ValueError(f"folds must lie between 2 and {len(pool)} (the non-test subjects), got {folds}")
    shuffled = [pool[i] for i in rng.permutation(len(pool))]
    dealt = [shuffled[i::folds] for i in range(folds)]
    return {
        "seed": seed,
        "test": test,
        "folds": [
            {
                "train": sorted(s for j, part in enumerate(dealt) if j != i for s in part),
                "validation": sorted(part),
            }
            for i, part in enumerate(dealt)
        ],
    }


def write_split(split: dict[str, Any], destination: str | Path) -> None:
    with atomic_path(destination) as temporary:
        temporary.write_text(json.dumps(split, indent=2) + "\n")


def read_split(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
