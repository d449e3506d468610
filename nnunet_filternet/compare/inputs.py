"""Reading the metric CSVs that ``filternet compare`` compares, with one-line errors naming the file.

A metric CSV is a ``filternet evaluate`` table: per case (``case, subject, compartment, dice, assd_mm,
hd95_mm, ...``; a subject's legs are averaged here, NaN left out and +inf kept, as ``filternet evaluate``
does) or already per subject (no ``case`` column; one row per subject and compartment), with an optional
``fold`` column (``filternet evaluate --splits``: the fold whose network predicted the case, one per subject).
Every file must hold the same subjects and compartments, and no file may be given twice (by path or by
content): :func:`check_distinct_repeats` is the one check, also used by ``filternet report`` on the
predictions of each repeat.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from nnunet_filternet.errors import InputError
from nnunet_filternet.metrics.evaluate import per_subject
from nnunet_filternet.metrics.summary import FOLD

#: Identifying columns of a metric CSV (``case`` is optional: without it the rows are per subject).
KEY_COLUMNS: tuple[str, ...] = ("subject", "compartment")
_WHAT = "a filternet evaluate metrics CSV (columns case, subject, compartment, dice, assd_mm, hd95_mm, ...)"


def _parse(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(path, f"line {line}: {column} = {text!r} is not a number (expected {_WHAT})") from None
    if column == "dice" and not (math.isnan(value) or 0.0 <= value <= 1.0):
        raise InputError(path, f"line {line}: dice = {text} is outside [0, 1] (expected Dice as a fraction)")
    if column != "dice" and value < 0:
        raise InputError(path, f"line {line}: {column} = {text} is negative (expected a distance in mm)")
    return value


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    if not path.is_file():
        raise InputError(path, f"expected {_WHAT}, not found")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            return list(reader.fieldnames or []), list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"expected {_WHAT}, found a file that is not CSV text ({e})") from None


def read_metric_table(path: str | os.PathLike, metrics: Sequence[str]) -> list[dict]:
    """Per-subject rows (``subject``, ``compartment``, ``n_cases`` and the ``metrics``) of one metric CSV.

    Raises:
        InputError: the file is missing, not CSV text, lacks a key or metric column, has no rows, a value that
            is not a number (or a Dice outside [0, 1], a negative distance), or a case / subject listed twice
            for one compartment.
    """
    path = Path(path)
    header, raw = _read_csv(path)
    missing = [c for c in (*KEY_COLUMNS, *metrics) if c not in header]
    if missing:
        found = ", ".join(header) if header else "no header"
        raise InputError(path, f"expected {_WHAT} with column(s) {', '.join(missing)}; found columns: {found}")
    if not raw:
        raise InputError(path, f"expected {_WHAT} with rows, found only the header")
    key_column = "case" if "case" in header else "subject"
    seen: dict[tuple[str, str], int] = {}
    folds: dict[str, tuple[str, int]] = {}
    rows = []
    for line, record in enumerate(raw, start=2):
        key = (record[key_column], record["compartment"])
        if not all(record[c] for c in (*KEY_COLUMNS, key_column)):
            raise InputError(path, f"line {line}: empty {key_column}, subject or compartment")
        if key in seen:
            where = f"{key_column} {key[0]!r}, compartment {key[1]!r}"
            raise InputError(path, f"line {line}: {where} repeats line {seen[key]} (expected each once)")
        seen[key] = line
        row = {"subject": record["subject"], "compartment": record["compartment"]}
        if FOLD in header:
            row[FOLD] = _fold(path, line, record, folds)
        row.update({m: _parse(path, line, m, record[m]) for m in metrics})
        rows.append(row)
    return per_subject(rows, columns=metrics)


def _fold(path: Path, line: int, record: dict, folds: dict[str, tuple[str, int]]) -> str:
    """The row's fold; every row of a subject must name the same one."""
    fold, subject = (record[FOLD] or "").strip(), record["subject"]
    if not fold:
        raise InputError(path, f"line {line}: empty {FOLD} (expected the fold that predicted the case)")
    first, first_line = folds.setdefault(subject, (fold, line))
    if first != fold:
        raise InputError(
            path, f"line {line}: subject {subject} is in fold {fold} here and in fold {first} on line {first_line} "
            "(expected one fold per subject)",
        )  # fmt: skip
    return fold


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def repeat_digest(files: Mapping[str, str | os.PathLike]) -> str:
    """Content identity of one repeat's files (name -> file, e.g. case -> prediction): SHA-256 of their contents.

    The names are part of the identity, the paths are not: a copied folder has the copy's identity.
    """
    sha = hashlib.sha256()
    for name in sorted(files):
        sha.update(f"{name}\0{_digest(Path(files[name]))}\n".encode())
    return sha.hexdigest()


def check_distinct_repeats(repeats: Sequence[tuple[str | os.PathLike, str]], what: str = "contents") -> None:
    """Every repeat its own: no two repeats with the same content identity.

    A byte-identical copy is not a second training run; counted as one, it would halve the run-to-run
    spread that the comparison estimates.

    Args:
        repeats: (the repeat's file or folder, its digest: :func:`repeat_digest` or a file's SHA-256).
        what: what is the same, for the message (``contents``, ``nnUNetTrainer predictions``).

    Raises:
        InputError: naming the second repeat and the first.
    """
    seen: dict[str, str | os.PathLike] = {}
    for path, digest in repeats:
        if digest in seen:
            raise InputError(
                path,
                f"has the same {what} as {seen[digest]}; expected each repeat's own (a repeat is the "
                "cross-validation trained again, not a copy)",
            )
        seen[digest] = path


def check_distinct_files(paths: Sequence[str | os.PathLike]) -> None:
    """Every file once: no path given twice and no two files with the same contents.

    Raises:
        InputError: naming the second occurrence and the first.
    """
    seen_paths: dict[Path, Path] = {}
    for path in map(Path, paths):
        resolved = path.resolve()
        if resolved in seen_paths:
            raise InputError(path, f"is given twice (also as {seen_paths[resolved]}); expected one file per repeat")
        seen_paths[resolved] = path
    check_distinct_repeats([(p, _digest(Path(p))) for p in paths if Path(p).is_file()])


def check_pairing(tables: Sequence[tuple[Path, list[dict]]]) -> None:
    """Every table holds the subjects and compartments of the first one.

    Raises:
        InputError: naming the first file that differs, what it lacks and what it adds.
    """
    first_path, first = tables[0]

    def keys(rows):
        return {(r["subject"], r["compartment"]) for r in rows}

    expected = keys(first)
    for path, rows in tables[1:]:
        found = keys(rows)
        if found != expected:
            parts = []
            for what, pairs in (("lacks", expected - found), ("adds", found - expected)):
                subjects = sorted({s for s, _ in pairs})
                if subjects:
                    shown = ", ".join(subjects[:8]) + (f" and {len(subjects) - 8} more" if len(subjects) > 8 else "")
                    parts.append(f"{what} subject(s) {shown}")
            raise InputError(
                path,
                f"subjects do not pair with {first_path}: this file {'; '.join(parts)} (expected the same subjects "
                "and compartments in every file)",
            )
