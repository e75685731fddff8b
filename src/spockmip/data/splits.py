"""Cross-validation splits: the released protocol, persisted so every job of a run agrees on it.

Subjects are shuffled with the seed and dealt round-robin into ``k`` folds (docs/method.md); fold ``i``
validates on its own subjects and trains on all the others. A held-out test set, given by name or drawn
with the same seed before folding, is never seen in training or model selection. A split read back from
its file is checked for exactly that (:func:`read_split`), since a hand-edited file could break it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from spockmip.errors import SettingsError
from spockmip.files.outputs import atomic_path


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


def check_roles(
    train: Sequence[str], validation: Sequence[str], test: Sequence[str] = (), source: str = "subjects"
) -> None:
    """Refuse subjects listed twice within a role or given two roles (a model validated or tested on a
    subject it trained on reports a score it has not earned). ``source`` names where the lists came
    from (an option, a config key, a file and fold); every message starts with it."""
    roles = {"training": train, "validation": validation, "test": test}
    for role, subjects in roles.items():
        twice = sorted(subject for subject, count in Counter(subjects).items() if count > 1)
        if twice:
            raise SettingsError(f"{source}: {_listed(twice)} listed more than once among the {role} subjects")
    for first, second in combinations(roles, 2):
        shared = sorted(set(roles[first]) & set(roles[second]))
        if shared:
            raise SettingsError(
                f"{source}: {_listed(shared)} among both the {first} and the {second} subjects"
            )


def _listed(subjects: Sequence[str]) -> str:
    """``a is`` or ``a, b are``: the subjects as the subject of a sentence."""
    return f"{', '.join(subjects)} {'is' if len(subjects) == 1 else 'are'}"


def read_split(path: str | Path) -> dict[str, Any]:
    """The split in ``path``, checked: the types :func:`make_split` writes, roles disjoint in every fold,
    no test subject in any fold, and each subject validated by one fold at most. Every refusal is a
    :class:`SettingsError` starting with the path."""
    path = Path(path)
    try:
        split = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SettingsError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not a text file") from None
    except json.JSONDecodeError as error:
        raise SettingsError(f"{path}: not valid JSON (line {error.lineno}: {error.msg})") from None
    _check_split_types(split, path)
    validated: dict[str, int] = {}
    for index, fold in enumerate(split["folds"]):
        check_roles(fold["train"], fold["validation"], split["test"], source=f"{path}: fold {index}")
        for subject in fold["validation"]:
            if subject in validated:
                raise SettingsError(
                    f"{path}: fold {index} validates on {subject}, as fold {validated[subject]} does"
                )
            validated[subject] = index
    return split


def read_fold(path: str | Path, fold: int) -> tuple[list[str], list[str]]:
    """The training and validation subjects of fold ``fold`` of the split file ``path`` (checked by
    :func:`read_split`); a fold the file does not have is refused naming the file. The command line and
    the workflow's training jobs both choose their subjects here."""
    folds = read_split(path)["folds"]
    if not 0 <= fold < len(folds):
        raise SettingsError(f"{path}: no fold {fold} (it has {len(folds)})")
    return list(folds[fold]["train"]), list(folds[fold]["validation"])


def _check_split_types(split: Any, path: Path) -> None:
    """Refuse a split whose keys or value types are not those :func:`make_split` writes."""
    if not isinstance(split, dict):
        raise SettingsError(
            f"{path}: expected an object with seed, test and folds, got {type(split).__name__}"
        )
    missing = [key for key in ("seed", "test", "folds") if key not in split]
    if missing:
        raise SettingsError(f"{path}: missing key(s) {', '.join(missing)}")
    if not isinstance(split["seed"], int) or isinstance(split["seed"], bool):
        raise SettingsError(f"{path}: seed must be an integer, got {split['seed']!r}")
    _check_names(split["test"], f"{path}: test", empty=True)
    if not isinstance(split["folds"], list) or not split["folds"]:
        raise SettingsError(f"{path}: folds must be a non-empty list, got {split['folds']!r}")
    for index, fold in enumerate(split["folds"]):
        if not isinstance(fold, dict) or not {"train", "validation"} <= set(fold):
            raise SettingsError(f"{path}: fold {index} must be an object with train and validation lists")
        for role in ("train", "validation"):
            _check_names(fold[role], f"{path}: fold {index} {role}", empty=False)


def _check_names(names: Any, where: str, empty: bool) -> None:
    """Refuse anything but a list of subject ids (strings), and an empty one unless ``empty`` allows it."""
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise SettingsError(f"{where} must be a list of subject ids (strings), got {names!r}")
    if not names and not empty:
        raise SettingsError(f"{where} is empty")
