"""Cross-validation folds grouped by subject (both legs in one fold), stratified by group, seeded.

nnU-Net reads ``$nnUNet_preprocessed/DatasetNNN_NAME/splits_final.json``: a list with one
``{"train": [case ids], "val": [case ids]}`` per fold. We write it ourselves, so that nnU-Net does not
split legs of one subject between training and validation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnunet_filternet.errors import FilterNetError, InputError

GROUPS = ("healthy", "DM1")


def read_groups(path: Path) -> dict[str, str]:
    """subject -> group from a subjects.csv with columns ``subject`` and ``group`` (healthy | DM1).

    Read by the one subjects-table reader of every verb (:mod:`nnunet_filternet.utils.subjects_table`), so a
    subject listed twice is refused here exactly as ``filternet quantify`` refuses it.

    Raises:
        InputError: unreadable, missing columns, a subject listed twice, or an unknown group.
    """
    from nnunet_filternet.utils.subjects_table import read_subjects_table

    table = read_subjects_table(path, required=("subject", "group"))
    for subject, row in table.rows.items():
        if row["group"] not in GROUPS:
            raise InputError(
                path, f"line {table.lines[subject]}: expected group healthy or DM1, found {row['group']!r}"
            )
    return {subject: row["group"] for subject, row in table.rows.items()}


def check_fold_arguments(n_folds, seed) -> None:
    """Raise unless ``n_folds`` is an integer >= 2 and ``seed`` an integer >= 0 (numpy's seeds are unsigned)."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise FilterNetError(f"--n-folds {n_folds}: expected an integer >= 2 (at least 2 folds are needed)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise FilterNetError(f"--seed {seed}: expected an integer >= 0")


def subject_folds(
    subjects: list[str], groups: dict[str, str] | None = None, n_folds: int = 4, seed: int = 0
) -> list[list[str]]:
    """Validation subjects of each fold: every subject in exactly one fold, fold sizes differ by <= 1.

    Stratified dealing: each group's subjects are shuffled (seeded) and dealt to the folds in turn, the
    turn carrying on from one group to the next. Each fold then holds every group in the cohort's
    proportions (to within one subject), whatever the group sizes; scikit-learn's ``StratifiedKFold``
    refuses cohorts where every group is smaller than the number of folds (e.g. 3 DM1 + 1 healthy).

    Raises:
        FilterNetError: fewer subjects than folds, fewer than 2 folds, a negative seed, or a subject without
            a group.
    """
    subjects = sorted(subjects)
    check_fold_arguments(n_folds, seed)
    if len(subjects) < n_folds:
        raise FilterNetError(f"{len(subjects)} subject(s) cannot be split into {n_folds} folds")
    if groups:
        missing = [s for s in subjects if s not in groups]
        if missing:
            raise FilterNetError(f"subjects.csv has no group for {missing}")
    group_of = {s: (groups[s] if groups else "all") for s in subjects}
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    turn = 0
    for group in sorted(set(group_of.values())):
        members = [s for s in subjects if group_of[s] == group]
        for s in rng.permutation(members):
            folds[turn % n_folds].append(str(s))
            turn += 1
    return [sorted(f) for f in folds]


def nnunet_splits(folds: list[list[str]], cases_by_subject: dict[str, list[str]]) -> list[dict[str, list[str]]]:
    """nnU-Net's splits_final.json content from subject folds and each subject's case ids."""
    out = []
    for val_subjects in folds:
        val = sorted(c for s in val_subjects for c in cases_by_subject[s])
        train = sorted(c for s, cases in cases_by_subject.items() if s not in val_subjects for c in cases)
        out.append({"train": train, "val": val})
    return out
