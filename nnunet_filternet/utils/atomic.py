"""Atomic writes: a file (or folder) appears whole under its final name or not at all.

Everything is written to a temporary sibling first and moved into place with :func:`os.replace`,
which is atomic on POSIX when source and target are on the same file system. A target that cannot be
written (a file where a folder should be, no permission, a full disk) is an
:class:`~nnunet_filternet.errors.InputError` naming it; :func:`check_writable` finds most such targets before
any work starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nnunet_filternet.errors import InputError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success move it onto ``target``.

    The temporary name keeps the target's full suffix (e.g. ``.nii.gz``) so that writers that pick a
    format from the file name (SimpleITK) still do the right thing. On error the temporary is removed.
    """
    target = Path(target)
    if suffix is None:
        name = target.name
        suffix = name[name.index(".") :] if "." in name else ""
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
        os.close(fd)
    tmp = Path(tmp)
    try:
        with _writing(target):
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the mode a plain open() would
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def _writing(target: Path) -> Iterator[None]:
    """Turn a failed write (permission, a file in the way, a full disk) into an InputError naming ``target``."""
    try:
        yield
    except InputError:
        raise
    except OSError as e:
        raise InputError(target, f"cannot be written ({e.strerror or e})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(target: str | os.PathLike, what: str = "output", folder: bool = False) -> Path:
    """Raise unless ``target`` (a file, or a folder with ``folder``; existing or not) can be written by us.

    Walks up to the nearest existing ancestor: it must be a folder we may write into, and nothing on the way
    may be a file. Run it before any slow work, so that a bad ``--out`` fails at once.

    Raises:
        InputError: naming ``target`` and what blocks it.
    """
    target = Path(target).absolute()
    if target.exists():
        if folder != target.is_dir():
            found, expected = ("a folder", "a file") if target.is_dir() else ("a file", "a folder")
            raise InputError(target, f"cannot write the {what} here: expected {expected}, found {found}")
        where = target if folder else target.parent
        if not os.access(where, os.W_OK | os.X_OK):
            raise InputError(target, f"cannot write the {what}: {where} is not writable")
        return target
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(target, f"cannot write the {what}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(target, f"cannot write the {what}: {ancestor} is not a writable folder")
    return target


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
        try:
            sitk.WriteImage(image, str(tmp), useCompression=compress)
        except RuntimeError as e:
            raise InputError(target, f"cannot be written ({str(e).strip().splitlines()[-1]})") from None


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``target`` and move it into place when done.

    If ``overwrite`` is true an existing ``target`` is replaced only after the new one is complete.
    """
    target = Path(target)
    with _writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        if target.exists() and not overwrite:
            raise FileExistsError(target)
        _swap_in(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _swap_in(folder: Path, target: Path) -> None:
    """Move ``folder`` onto ``target``; an existing ``target`` is removed only once the new one is in place."""
    if not target.exists():
        os.replace(folder, target)
        return
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(target, old)
    os.replace(folder, target)
    shutil.rmtree(old)


def staging_path(target: str | os.PathLike) -> Path:
    """``dir/name`` -> ``dir/.name.partial``: where :func:`staging_dir` builds the next version of ``target``."""
    target = Path(target)
    return target.with_name(f".{target.name}.partial")


def staging_dir(target: str | os.PathLike) -> Path:
    """The work folder ``.<name>.partial`` beside ``target`` in which a new version of ``target`` is built.

    An interrupted run's work folder is reused (the caller resumes there); otherwise it starts as a copy of
    ``target`` made of hard links (no data copied; our writes replace files, so ``target`` stays as it was),
    or empty. :func:`publish_dir` moves it into place once complete, so ``target`` is always a finished result.
    """
    target = Path(target)
    work = staging_path(target)
    with _writing(work):
        if not work.exists():
            if target.is_dir():
                tmp = target.with_name(f".{target.name}.linking")
                if tmp.exists():
                    shutil.rmtree(tmp)
                shutil.copytree(target, tmp, symlinks=True, copy_function=_link_or_copy)
                os.replace(tmp, work)
            else:
                work.mkdir(parents=True)
    return work


def publish_dir(work: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the complete work folder of :func:`staging_dir` onto ``target`` (replacing an older version)."""
    target = Path(target)
    with _writing(target):
        os.chmod(work, 0o777 & ~_umask())
        _swap_in(Path(work), target)
    return target


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
