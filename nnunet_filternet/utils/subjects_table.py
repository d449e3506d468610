"""The subjects table (``subjects.csv``): one reader for every verb that takes one (convert, quantify).

A UTF-8 CSV file (a byte-order mark is allowed) whose header holds a ``subject`` column (and whatever other
columns a verb requires); every other column is data about the subject. Subject names are compared without
surrounding spaces. Refused, naming the file and the line: a file that cannot be read or is not UTF-8 CSV, a
missing required column, a column named twice, a row with more values than columns, a row without a subject,
and a subject listed twice, whether its two rows agree or not (which row would count is not for us to guess).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from nnunet_filternet.errors import InputError


@dataclass(frozen=True)
class SubjectsTable:
    """A read subjects table.

    Attributes:
        path: The file.
        columns: Its columns other than ``subject``, in file order.
        rows: subject -> {column: value} (values as written, subject names stripped of spaces).
        lines: subject -> the file line of its row (for messages).
    """

    path: Path
    columns: list[str]
    rows: dict[str, dict[str, str]]
    lines: dict[str, int]


def read_subjects_table(path: str | os.PathLike, required: tuple[str, ...] = ("subject",)) -> SubjectsTable:
    """Read and check a subjects table (module docstring).

    Args:
        path: The CSV file.
        required: Columns it must have (``subject`` always).

    Raises:
        InputError: naming the file (and line) and what was expected.
    """
    path = Path(path)
    required = ("subject", *[c for c in required if c != "subject"])
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            body = [(reader.line_num, row) for row in reader]
    except OSError as e:
        raise InputError(path, f"the subjects table cannot be read ({e.strerror})") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"expected a UTF-8 CSV file, found {type(e).__name__}: {e}") from None
    header = [c.strip() for c in header or []]
    if not set(required) <= set(header):
        raise InputError(path, f"expected a CSV with columns {', '.join(required)}; found columns {header}")
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise InputError(path, f"expected every column once, found {twice} more than once")
    columns = [c for c in header if c != "subject"]
    rows: dict[str, dict[str, str]] = {}
    lines: dict[str, int] = {}
    for line, values in body:
        if not any(v.strip() for v in values):
            continue  # a blank line
        if len(values) > len(header):
            raise InputError(
                path, f"line {line}: expected {len(header)} values ({', '.join(header)}), found {len(values)}"
            )
        row = dict(zip(header, values + [""] * (len(header) - len(values))))
        subject = row.pop("subject").strip()
        if not subject:
            raise InputError(path, f"line {line}: expected a subject name, found none")
        if subject in rows:
            raise InputError(
                path,
                f"subject {subject!r} is listed twice (lines {lines[subject]} and {line}); expected one row each",
            )
        rows[subject], lines[subject] = row, line
    return SubjectsTable(path, columns, rows, lines)
