"""Cross-validation splits: seeded, disjoint, covering, with a held-out test set."""

import pytest

from spockmip.splits import make_split, read_split, write_split

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
