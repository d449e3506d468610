"""Atomic writes: a file (or folder) appears whole under its final name or not at all.

Everything is written to a temporary sibling first and moved into place with :func:`os.replace`,
which is atomic on POSIX when source and target are on the same file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success move it onto ``target``.

    The temporary name keeps the target's full suffix (e.g. ``.nii.gz``) so that writers that pick a
    format from the file name (SimpleITK) still do the right thing. On error the temporary is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        name = target.name
        suffix = name[name.index(".") :] if "." in name else ""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the mode a plain open() would
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, obj, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``target`` atomically."""
    write_text(target, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def write_image(image, target: str | os.PathLike, compress: bool = True) -> None:
    """Write a SimpleITK image atomically (format from the file name, e.g. ``.nii.gz``)."""
    import SimpleITK as sitk

    with atomic_path(target) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``target`` and move it into place when done.

    If ``overwrite`` is true an existing ``target`` is replaced only after the new one is complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        if target.exists():
            if not overwrite:
                raise FileExistsError(target)
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
