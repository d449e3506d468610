"""Reusing rows of an earlier result CSV only when everything that produced them is the same.

A verb that writes a CSV (``filternet evaluate``, ``quantify``, ``report``) may skip the work for a case
whose rows the previous run already wrote. It may do so only when the program, its options, and each input
file are the same; a file's modification time alone is not enough (a folder of other files that happen to
be older than the CSV would pass). So every CSV gets a sidecar ``.<name>.inputs.json`` beside it, written
after the CSV:

    {"schema": ..., "program": "nnunet-filternet 0.1.0", "options": {...}, "csv_sha256": ...,
     "keys": {"<case or subject>": [[path, size, mtime_ns, ctime_ns, inode], ...]}}

A row is reused when the sidecar's program, options and the CSV's SHA-256 match, and the key's input list
(absolute paths with size, modification time, status-change time and inode, which a copy or an edit always
changes) is identical. Anything else recomputes. Delete the sidecar, or pass ``--fresh``, to recompute
everything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from nnunet_filternet.utils.atomic import write_json

SCHEMA = "filternet-result-inputs/1"


def program() -> str:
    """This program and its version (a new version recomputes everything)."""
    from nnunet_filternet import __version__

    return f"nnunet-filternet {__version__}"


def sidecar_path(csv_path: str | os.PathLike) -> Path:
    """``dir/metrics.csv`` -> ``dir/.metrics.csv.inputs.json``."""
    csv_path = Path(csv_path)
    return csv_path.with_name(f".{csv_path.name}.inputs.json")


def file_identity(path: str | os.PathLike) -> list:
    """``[absolute path, size, mtime_ns, ctime_ns, inode]`` of a file (JSON-ready)."""
    path = Path(path).absolute()
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def inputs_identity(paths: Iterable[str | os.PathLike]) -> list[list]:
    """:func:`file_identity` of each input, in order."""
    return [file_identity(p) for p in paths]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reusable_keys(csv_path: str | os.PathLike, options: dict) -> dict[str, list]:
    """key -> recorded input identity, for an existing CSV made by this program with these options.

    Empty when there is no CSV or sidecar, or when the program, the options or the CSV itself changed.
    """
    csv_path = Path(csv_path)
    try:
        recorded = json.loads(sidecar_path(csv_path).read_text(encoding="utf-8"))
        if (
            recorded.get("schema") != SCHEMA
            or recorded.get("program") != program()
            or recorded.get("options") != json.loads(json.dumps(options))
            or recorded.get("csv_sha256") != _sha256(csv_path)
        ):
            return {}
        keys = recorded["keys"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return keys if isinstance(keys, dict) else {}


def record_inputs(csv_path: str | os.PathLike, options: dict, keys: dict[str, list]) -> Path:
    """Write the sidecar of a just-written CSV: its hash, the options and each key's input identity."""
    csv_path = Path(csv_path)
    sidecar = sidecar_path(csv_path)
    write_json(
        sidecar,
        {"schema": SCHEMA, "program": program(), "options": options, "csv_sha256": _sha256(csv_path), "keys": keys},
    )
    return sidecar


def forget(csv_path: str | os.PathLike) -> None:
    """Remove a CSV's sidecar (nothing of the CSV is reused afterwards)."""
    sidecar_path(csv_path).unlink(missing_ok=True)
