"""Which fold predicted a case: nnU-Net's ``splits_final.json`` read for ``filternet evaluate --splits``.

``splits_final.json`` is a list with one entry per fold, ``{"train": [cases], "val": [cases]}``; a case's fold
is the fold whose ``val`` holds it (its network never saw the case). A leg case ``<subject>_L`` is looked up
as it is; a restored full scan ``<subject>`` takes the fold whose ``val`` holds its subject's leg cases. A
subject whose cases sit in the ``val`` of two folds has no single fold (its legs were predicted by two
networks), which is an error: ``filternet convert`` writes subject-grouped splits.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from nnunet_filternet.errors import InputError
from nnunet_filternet.metrics.matching import subject_of

_WHAT = 'nnU-Net\'s splits_final.json (a list of {"train": [cases], "val": [cases]}, one per fold)'


def read_splits(path: str | os.PathLike) -> list[list[str]]:
    """Per fold, the cases of its ``val`` list.

    Raises:
        InputError: the file is missing, not JSON, or not a list of folds with a ``val`` list of case names.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"expected {_WHAT}, not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(path, f"expected {_WHAT}, found a file that is not JSON ({e})") from None
    if not isinstance(data, list) or not data:
        raise InputError(path, f"expected {_WHAT}, found {type(data).__name__ if data else 'an empty list'}")
    folds = []
    for k, fold in enumerate(data):
        val = fold.get("val") if isinstance(fold, dict) else None
        if not isinstance(val, list) or not all(isinstance(c, str) and c for c in val):
            raise InputError(path, f'fold {k}: expected a "val" list of case names (expected {_WHAT})')
        folds.append(val)
    return folds


def _shown(names: list[str]) -> str:
    return ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def case_folds(splits: str | os.PathLike, cases: Iterable[str]) -> dict[str, str]:
    """case -> its fold (as text, e.g. ``"0"``) for leg cases and restored full scans.

    Raises:
        InputError: naming the splits file, when a case is in the ``val`` of two folds, a subject's cases are
            in two folds, or cases are in no fold's ``val`` (all listed).
    """
    folds = read_splits(splits)
    of_case: dict[str, int] = {}
    of_subject: dict[str, set[int]] = {}
    for k, val in enumerate(folds):
        for case in val:
            if of_case.setdefault(case, k) != k:
                raise InputError(splits, f"case {case} is in the val of fold {of_case[case]} and of fold {k}")
            of_subject.setdefault(subject_of(case), set()).add(k)
    out, missing = {}, []
    for case in cases:
        subject = subject_of(case)
        found = of_subject.get(subject, set()) | ({of_case[case]} if case in of_case else set())
        if len(found) > 1:
            first, second = sorted(found)[:2]
            raise InputError(
                splits,
                f"subject {subject} has cases in the val of fold {first} and of fold {second}; expected a "
                "subject-grouped split (every case of a subject in one fold, as filternet convert writes)",
            )
        if found:
            out[case] = str(found.pop())
        else:
            missing.append(case)
    if missing:
        raise InputError(
            splits, f"no fold's val holds {len(missing)} evaluated case(s): {_shown(sorted(missing))} (expected the "
            "splits of the dataset whose cross-validation predicted them)",
        )  # fmt: skip
    return out
