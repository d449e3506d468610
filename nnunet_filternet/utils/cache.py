"""Reusing earlier work only when everything that produced it is the same: content identity taken when read.

Every verb that skips work an earlier run did (``filternet evaluate`` and ``quantify`` rows, ``convert``'s
per-scan record, ``predict``'s leg predictions) keys that reuse on

- the program, its version and a digest of its code (:func:`program`), and the options that decide the result;
- each input file's CONTENT: ``[absolute path, size, SHA-256]`` (:func:`snapshot`). A file edited in place
  with its modification time restored, or replaced by an older copy, has another hash; a modification time
  alone proves nothing;
- for a model, its plans, dataset description and every checkpoint used (by content, in ``predict``).

The identity is taken WHEN THE INPUT IS READ: :func:`snapshot` records each file's status (device, inode,
size, modification and status-change time) before hashing it, and :meth:`Snapshot.holds`, called after the
work, says whether every file is still that one. A file replaced or edited while a long run used it is
therefore never recorded with a result computed from the other content: the caller records nothing for it
(the next run computes it again) and says so.

Result CSVs get a sidecar ``.<name>.inputs.json`` beside them, written after the CSV::

    {"schema": ..., "program": "nnunet-filternet 0.1.0 (code 1f0e...)", "options": {...}, "csv_sha256": ...,
     "keys": {"<case or subject>": [[path, size, sha256], ...]}}

A row is reused when the sidecar's program, options and the CSV's SHA-256 match and the key's content
identity is the one taken in this run. Anything else recomputes. Delete the sidecar, or pass ``--fresh``,
to recompute everything.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nnunet_filternet.errors import InputError
from nnunet_filternet.utils.atomic import write_json

SCHEMA = "filternet-result-inputs/2"

_CHUNK = 1 << 22


def program() -> str:
    """This program, its version and a digest of its code: a new version, or any change to the code, recomputes.

    The version string alone stays the same between releases (and in a development checkout across commits),
    while a change to, say, the network or the conversion changes what a run produces; so the key also holds
    :func:`source_digest` of this package's own Python files.
    """
    from nnunet_filternet import __version__

    return f"nnunet-filternet {__version__} (code {_package_digest()})"


#: The packages whose code makes up this program (``plans`` and ``dataset_conversion`` live at the repository's
#: top and install under this namespace: setup.py).
PROGRAM_PACKAGES: tuple[str, ...] = (
    "nnunet_filternet",
    "nnunet_filternet.plans",
    "nnunet_filternet.dataset_conversion",
)


#: The files that are code: Python, and the C source of the fused CPU kernel (``edge/native``).
SOURCE_SUFFIXES: tuple[str, ...] = (".py", ".c")


def source_digest(folders: dict[str, str | os.PathLike]) -> str:
    """The first 16 hex digits of the SHA-256 over the code (:data:`SOURCE_SUFFIXES`) in the package folders
    ``folders`` (name -> folder): each file's package and relative path, and its bytes.

    A file under two of the folders (a sub-package installed inside its parent) counts once, for the deepest.
    Files are taken in sorted order of ``package:relative/path``, so the digest depends on the code only (not on
    where or how it is installed, on modification times or on compiled ``.pyc`` files).
    """
    roots = {name: Path(folder).resolve() for name, folder in folders.items()}
    owner: dict[Path, tuple[str, str]] = {}
    for name, root in sorted(roots.items(), key=lambda item: len(item[1].parts)):  # deeper roots claim last
        for path in (p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()):
            owner[path.resolve()] = (name, path.relative_to(root).as_posix())
    digest = hashlib.sha256()
    for path, (name, relative) in sorted(owner.items(), key=lambda item: item[1]):
        digest.update(f"{name}:{relative}".encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


@functools.cache
def _package_digest() -> str:
    """:func:`source_digest` of this program's packages as installed (:data:`PROGRAM_PACKAGES`), once per process."""
    from importlib.util import find_spec

    return source_digest({name: find_spec(name).submodule_search_locations[0] for name in PROGRAM_PACKAGES})


def sidecar_path(csv_path: str | os.PathLike) -> Path:
    """``dir/metrics.csv`` -> ``dir/.metrics.csv.inputs.json``."""
    csv_path = Path(csv_path)
    return csv_path.with_name(f".{csv_path.name}.inputs.json")


def member_files(path: str | os.PathLike) -> list[Path]:
    """The files whose bytes make up the input ``path``: a folder's files (recursively, sorted), a MetaImage
    header with its data file(s), or the file itself."""
    path = Path(path).absolute()
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    if path.name.lower().endswith(".mhd"):
        return [path, *_metaimage_data_files(path)]
    return [path]


def _metaimage_data_files(header: Path) -> list[Path]:
    """Data files named by a ``.mhd`` header's ``ElementDataFile`` (none for LOCAL or an unreadable header)."""
    try:
        with open(header, "rb") as f:
            text = f.read(1 << 16).decode("latin-1")
    except OSError:
        return []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ElementDataFile":
            value = value.strip()
            if value.upper() == "LOCAL" or not value:
                return []
            if value.upper().startswith("LIST") or "%" in value:
                return sorted(p for p in header.parent.iterdir() if p.is_file() and p != header)
            return [header.parent / value]
    return []


def _status(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """Content identity of some input files, taken before they were read.

    Attributes:
        key: ``[[absolute path, size, sha256], ...]``, JSON-ready: what a cache records and compares.
        status: each file's (device, inode, size, mtime_ns, ctime_ns) when it was hashed.
    """

    key: list
    status: tuple

    def holds(self) -> bool:
        """Whether every file is still the one hashed (same inode, size and times): call it after the work."""
        try:
            return all(_status(Path(k[0])) == s for k, s in zip(self.key, self.status))
        except OSError:
            return False

    def changed(self) -> list[str]:
        """The files that are no longer the ones hashed (replaced, edited, removed)."""
        out = []
        for k, s in zip(self.key, self.status):
            try:
                same = _status(Path(k[0])) == s
            except OSError:
                same = False
            if not same:
                out.append(k[0])
        return out


def snapshot(paths: Iterable[str | os.PathLike]) -> Snapshot:
    """Content identity of the inputs ``paths`` (files, folders, MetaImage headers; in order), taken now.

    Each file's status is taken before and after hashing it; a file that changes while it is hashed is an
    error (someone is writing it).

    Raises:
        InputError: a file that cannot be read or that changed while it was being hashed.
    """
    key, status = [], []
    for path in paths:
        for f in member_files(path):
            try:
                before = _status(f)
                digest = sha256_of(f)
                after = _status(f)
            except OSError as e:
                raise InputError(f, f"cannot be read ({e.strerror or e})") from None
            if before != after:
                raise InputError(f, "changed while it was being read; wait until it is written completely")
            key.append([str(f), before[2], digest])
            status.append(before)
    return Snapshot(key, tuple(status))


def report_reuse(verb: str, csv_path: str | os.PathLike, reused: int, total: int, unit: str) -> None:
    """Say on stderr how many of a run's ``total`` items were reused from ``csv_path`` and how many computed."""
    print(
        f"{verb}: {reused} of {total} {unit}(s) reused from {csv_path} (same content, options, version and code); "
        f"{total - reused} computed",
        file=sys.stderr,
        flush=True,
    )


def warn_changed(verb: str, what: str, snap: Snapshot) -> None:
    """Print that inputs changed during the run, so that ``what`` is not kept for reuse."""
    for path in snap.changed():
        print(f"{verb}: warning: {path} changed while it was being used; {what} is recomputed next time",
              file=sys.stderr)  # fmt: skip


def _sha256(path: Path) -> str:
    return sha256_of(path)


def reusable_keys(csv_path: str | os.PathLike, options: dict) -> dict[str, list]:
    """key -> recorded content identity, for an existing CSV made by this program with these options.

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
    """Write the sidecar of a just-written CSV: its hash, the options and each key's content identity.

    ``keys`` should hold only the keys whose :class:`Snapshot` still :meth:`~Snapshot.holds` after the work.
    """
    csv_path = Path(csv_path)
    sidecar = sidecar_path(csv_path)
    write_json(
        sidecar,
        {"schema": SCHEMA, "program": program(), "options": options, "csv_sha256": _sha256(csv_path), "keys": keys},
    )
    return sidecar
