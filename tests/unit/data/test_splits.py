"""Cross-validation splits: seeded, disjoint, covering, with a held-out test set."""

import json
import re
from pathlib import Path

import pytest

from spockmip.data.splits import check_roles, make_split, read_split, write_split
from spockmip.errors import SettingsError

SUBJECTS = [f"sub{i:03d}" for i in range(1, 15)]


def test_folds_partition_the_non_test_subjects_round_robin(tmp_path) -> None:
    split = make_split(SUBJECTS, folds=5, seed=2020, test_subjects=["sub007", "sub014"])
    assert split["test"] == ["sub007", "sub014"]
    validations = [set(f["validation"]) for f in split["folds"]]
    assert sorted(len(v) for v in validations) == [2, 2, 2, 3, 3]
    assert set().union(*validations) == set(SUBJECTS) - {"sub007", "sub014"}
    for fold in split["folds"]:
        assert not set(fold["train"]) & set(fold["validation"])
        assert set(fold["train"]) | set(fold["validation"]) == set(SUBJECTS) - {"sub007", "sub014"}
    write_split(split, tmp_path / "splits.json")
    assert read_split(tmp_path / "splits.json") == split


def test_split_is_a_pure_function_of_seed_and_subjects() -> None:
    assert make_split(SUBJECTS, 3, 1, 2) == make_split(list(reversed(SUBJECTS)), 3, 1, 2)
    assert make_split(SUBJECTS, 3, 1, 2) != make_split(SUBJECTS, 3, 2, 2)
    drawn = make_split(SUBJECTS, 3, 1, 2)["test"]
    assert len(drawn) == 2 and set(drawn) <= set(SUBJECTS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subjects": ["a", "a", "b"], "folds": 2, "test_subjects": ()}, "duplicate subjects: a"),
        ({"subjects": SUBJECTS, "folds": 2, "test_subjects": ["sub099"]}, "not in the subject list: sub099"),
        ({"subjects": SUBJECTS, "folds": 14, "test_subjects": 2}, "folds must lie between 2 and 12"),
        ({"subjects": SUBJECTS, "folds": 2, "test_subjects": 14}, "cannot hold out 14 of 14"),
    ],
)
def test_impossible_splits_are_refused(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_split(seed=0, **kwargs)


def test_roles_listed_twice_or_shared_are_named_with_their_source() -> None:
    check_roles(["a", "b"], ["c"], ["d"])
    with pytest.raises(
        SettingsError, match=r"^--train: a is listed more than once among the training subjects$"
    ):
        check_roles(["a", "b", "a"], ["c"], source="--train")
    with pytest.raises(
        SettingsError, match=r"^--validation: b is among both the training and the validation"
    ):
        check_roles(["a", "b"], ["b"], source="--validation")
    with pytest.raises(
        SettingsError, match=r"^cfg: c, d are among both the validation and the test subjects$"
    ):
        check_roles(["a"], ["c", "d"], ["d", "c"], source="cfg")


def _written(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "splits.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


GOOD = {
    "seed": 1,
    "test": ["t"],
    "folds": [{"train": ["a"], "validation": ["b"]}, {"train": ["b"], "validation": ["a"]}],
}


def _fold(index: int, **changes: object) -> dict:
    folds = [dict(fold) for fold in GOOD["folds"]]
    folds[index].update(changes)
    return {**GOOD, "folds": folds}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"seed": 1,', r"not valid JSON \(line 1: "),
        ([1, 2], r"expected an object with seed, test and folds, got list"),
        ({"seed": 1, "test": []}, r"missing key\(s\) folds"),
        ({**GOOD, "seed": "1"}, r"seed must be an integer, got '1'"),
        ({**GOOD, "seed": True}, r"seed must be an integer, got True"),
        ({**GOOD, "test": "t"}, r"test must be a list of subject ids \(strings\), got 't'"),
        ({**GOOD, "folds": []}, r"folds must be a non-empty list"),
        ({**GOOD, "folds": [{"train": ["a"]}]}, r"fold 0 must be an object with train and validation lists"),
        (_fold(1, train=["b", 3]), r"fold 1 train must be a list of subject ids \(strings\), got \['b', 3\]"),
        (_fold(0, validation=[]), r"fold 0 validation is empty"),
        (_fold(1, train=["b", "a"]), r"fold 1: a is among both the training and the validation subjects"),
        (_fold(0, train=["a", "a"]), r"fold 0: a is listed more than once among the training subjects"),
        (_fold(1, train=["b", "t"]), r"fold 1: t is among both the training and the test subjects"),
        (_fold(1, validation=["b"], train=["a"]), r"fold 1 validates on b, as fold 0 does"),
    ],
)
def test_a_broken_split_file_is_refused_naming_the_file(
    tmp_path: Path, content: object, message: str
) -> None:
    path = _written(tmp_path, content)
    with pytest.raises(SettingsError) as caught:
        read_split(path)
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert re.search(message, str(caught.value)), str(caught.value)


def test_a_missing_or_binary_split_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"absent\.json: No such file or directory$"):
        read_split(tmp_path / "absent.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SettingsError, match=r"binary\.json: not a text file$"):
        read_split(tmp_path / "binary.json")
    assert read_split(_written(tmp_path, GOOD)) == GOOD
