"""A plain table (header, rows, notes) written as Markdown for reading and as CSV (atomically) for numbers."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

from nnunet_filternet.utils.atomic import atomic_path


@dataclass
class Table:
    """A table: header, rows of cells (strings or numbers), and notes printed under it in Markdown."""

    header: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        def cell(v) -> str:
            return f"{v:.4g}" if isinstance(v, float) else str(v)

        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines + ([""] + self.notes if self.notes else []))

    def write_csv(self, path: str | os.PathLike) -> None:
        """CSV with the header; floats in full precision (``repr``); atomic."""
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(self.header)
            writer.writerows([[repr(v) if isinstance(v, float) else v for v in row] for row in self.rows])
