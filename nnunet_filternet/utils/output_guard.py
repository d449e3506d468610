"""No verb writes over, or deletes, one of its inputs: one check, run before anything is written.

Every verb names its inputs (files or folders, with what they are) and its outputs:

- ``files``: files it creates or replaces (a CSV, its sidecar, a figure, a label map per scan);
- ``folders``: folders it creates or writes files into (the files it puts there are listed in ``files``);
- ``whole_folders``: folders it replaces or empties as a whole, or whose file names it does not list.

:func:`refuse_inputs_as_outputs` raises an :class:`~nnunet_filternet.errors.InputError` naming both paths
(the CLI prints it as one line, exit code 2) when

- an output file IS an input file: the same path, a symbolic link to it, or a hard link (same device and
  inode), also when the input is a file inside an input folder;
- an output folder is an input folder or lies inside one (real paths: symbolic links resolved);
- an input lies inside a ``whole_folders`` output.

An output file that is an input is named first (before a folder reason), as the most telling reason.

Inputs that do not exist are ignored here (the verb reports them itself).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from nnunet_filternet.errors import InputError

#: input path -> what it is, for the message (e.g. ``"ground-truth label maps (--labels)"``).
Inputs = Mapping[str | os.PathLike, str]


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _inside(path: Path, folder: Path) -> bool:
    """Whether real path ``path`` is ``folder`` or lies below it."""
    return path == folder or folder in path.parents


def _file_id(path: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of the file ``path`` points to (links followed), or None when there is no such file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if not os.path.isdir(path) else None


def _input_files(inputs: Inputs) -> dict[tuple[int, int], tuple[Path, str]]:
    """(device, inode) -> (file, role) of every input file, input folders walked (links to files followed)."""
    found: dict[tuple[int, int], tuple[Path, str]] = {}
    for path, role in inputs.items():
        path = Path(path)
        if path.is_dir():
            for root, _, names in os.walk(path, followlinks=False):
                for name in names:
                    key = _file_id(Path(root) / name)
                    if key is not None:
                        found.setdefault(key, (Path(root) / name, role))
        else:
            key = _file_id(path)
            if key is not None:
                found.setdefault(key, (path, role))
    return found


def refuse_inputs_as_outputs(
    inputs: Inputs,
    files: Iterable[str | os.PathLike] = (),
    folders: Iterable[str | os.PathLike] = (),
    whole_folders: Iterable[str | os.PathLike] = (),
) -> None:
    """Raise unless no output is, overwrites, holds or lies inside an input (module docstring).

    Args:
        inputs: input file or folder -> what it is (named in the message).
        files: output files (existing or not).
        folders: output folders written into.
        whole_folders: output folders replaced or emptied as a whole (no input may lie inside).

    Raises:
        InputError: naming the output, the input and what the input is.
    """
    inputs = {Path(p): role for p, role in inputs.items() if p is not None and os.path.lexists(p)}
    _refuse_files_that_are_inputs(inputs, files)  # the most telling reason first: an input file named
    input_folders = {_real(p): (p, role) for p, role in inputs.items() if p.is_dir()}
    for folder in [*folders, *whole_folders]:
        real = _real(folder)
        for real_input, (path, role) in input_folders.items():
            if _inside(real, real_input):
                where = "is" if real == real_input else "lies inside"
                raise InputError(folder, f"the output folder {where} the input folder {path} ({role}); "
                                 "choose an output outside the inputs")  # fmt: skip
    for folder in whole_folders:
        real = _real(folder)
        for path, role in inputs.items():
            if _inside(_real(path), real) and real != _real(path):
                raise InputError(
                    folder, f"the output folder would be replaced, but it holds the input {path} ({role}); "
                    "choose another output folder"
                )  # fmt: skip


def _refuse_files_that_are_inputs(inputs: dict[Path, str], files: Iterable[str | os.PathLike]) -> None:
    """Raise when an existing output file is an input file (same path, symbolic or hard link)."""
    existing = [(Path(f), _file_id(f)) for f in files if _file_id(f) is not None]
    if not existing:
        return
    input_files = _input_files(inputs)
    for output, key in existing:
        if key in input_files:
            path, role = input_files[key]
            same = "is" if _real(output) == _real(path) else "is a link to"
            raise InputError(output, f"the output {same} the input {path} ({role}); writing it would destroy the "
                             "input, choose another output")  # fmt: skip
