"""Subject-grouped, stratified, seeded folds (nnunet_filternet.dataset_conversion.splits)."""

from __future__ import annotations

import pytest

from nnunet_filternet.dataset_conversion.splits import nnunet_splits, read_groups, subject_folds
from nnunet_filternet.errors import FilterNetError, InputError
from tests.scan_fixtures import write_subjects_csv

SUBJECTS = [f"sub-{i:03d}" for i in range(12)]
GROUPS = {s: ("healthy" if i < 4 else "DM1") for i, s in enumerate(SUBJECTS)}


def test_every_subject_validated_exactly_once_and_folds_balanced():
    folds = subject_folds(SUBJECTS, None, n_folds=5, seed=3)
    flat = [s for f in folds for s in f]
    assert sorted(flat) == SUBJECTS
    assert sorted(len(f) for f in folds) == [2, 2, 2, 3, 3]


def test_stratified_folds_hold_the_groups_in_proportion():
    # 4 healthy + 8 DM1 over 4 folds: each fold must hold exactly 1 healthy and 2 DM1 subjects.
    for seed in range(3):
        for fold in subject_folds(SUBJECTS, GROUPS, n_folds=4, seed=seed):
            assert sorted(GROUPS[s] for s in fold) == ["DM1", "DM1", "healthy"]


def test_small_groups_are_spread_over_different_folds():
    # Groups smaller than the number of folds (scikit-learn's StratifiedKFold refuses these).
    groups = {"a": "healthy", "b": "DM1", "c": "DM1", "d": "DM1"}
    assert sorted(len(f) for f in subject_folds(list(groups), groups, 4, 0)) == [1, 1, 1, 1]
    groups = {f"s{i}": ("healthy" if i < 3 else "DM1") for i in range(8)}
    folds = subject_folds(list(groups), groups, 4, seed=1)
    assert [len(f) for f in folds] == [2, 2, 2, 2]
    assert sorted(sum(groups[s] == "healthy" for s in f) for f in folds) == [0, 1, 1, 1]


def test_seed_reproduces_and_changes_the_folds():
    a = subject_folds(SUBJECTS, GROUPS, 4, seed=0)
    assert a == subject_folds(list(reversed(SUBJECTS)), GROUPS, 4, seed=0)  # input order does not matter
    assert any(subject_folds(SUBJECTS, GROUPS, 4, seed=s) != a for s in (1, 2, 3))


def test_nnunet_splits_keep_both_legs_of_a_subject_together():
    cases = {s: [f"{s}_L", f"{s}_R"] for s in SUBJECTS}
    cases["sub-011"] = ["sub-011_L"]  # a scan with one leg
    splits = nnunet_splits(subject_folds(SUBJECTS, GROUPS, 4, 0), cases)
    assert len(splits) == 4
    all_cases = sorted(c for v in cases.values() for c in v)
    for split in splits:
        assert sorted(split["train"] + split["val"]) == all_cases
        val_subjects = {c.rsplit("_", 1)[0] for c in split["val"]}
        train_subjects = {c.rsplit("_", 1)[0] for c in split["train"]}
        assert not val_subjects & train_subjects
    assert sorted(c for s in splits for c in s["val"]) == all_cases


def test_too_few_subjects_or_missing_group_is_an_error():
    with pytest.raises(FilterNetError, match="3 subject.*4 folds"):
        subject_folds(SUBJECTS[:3], None, 4, 0)
    with pytest.raises(FilterNetError, match="no group for"):
        subject_folds(SUBJECTS, {s: "DM1" for s in SUBJECTS[:-1]}, 4, 0)


def test_read_groups(tmp_path):
    path = write_subjects_csv(tmp_path / "subjects.csv", {"a": "healthy", "b": "DM1"})
    assert read_groups(path) == {"a": "healthy", "b": "DM1"}
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,group\na,sick\n")
    with pytest.raises(InputError, match=r"bad\.csv.*line 2.*'sick'"):
        read_groups(bad)
    bad.write_text("name,kind\na,DM1\n")
    with pytest.raises(InputError, match="columns subject, group"):
        read_groups(bad)
