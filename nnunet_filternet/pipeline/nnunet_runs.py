"""Running nnU-Net's own entry points for a pipeline, with its folders set for that run only."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from nnunet_filternet.errors import FilterNetError

#: nnU-Net console script -> the function behind it (used when the script is not on PATH).
ENTRY_POINTS = {
    "nnUNetv2_train": "nnunetv2.run.run_training:run_training_entry",
    "nnUNetv2_predict": "nnunetv2.inference.predict_from_raw_data:predict_entry_point",
}


def nnunet_folders(workdir: str | Path) -> dict[str, Path]:
    """The three nnU-Net folders inside ``workdir`` (created if missing)."""
    workdir = Path(workdir)
    folders = {
        "nnUNet_raw": workdir / "nnUNet_raw",
        "nnUNet_preprocessed": workdir / "nnUNet_preprocessed",
        "nnUNet_results": workdir / "nnUNet_results",
    }
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)
    return folders


#: The variables :func:`environment_set` sets in this process: nnU-Net's folders and its trainer search path.
NNUNET_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer")


def environment(folders: dict[str, Path], da_workers: int | None = None, threads: int | None = None) -> dict[str, str]:
    """A copy of this process' environment with nnU-Net's folders set: the environment of every nnU-Net run.

    ``nnUNet_extTrainer`` keeps the user's folders (their own trainers) and lists ours, as the package's
    start-up hook does in every interpreter. ``nnUNet_def_n_proc`` (nnU-Net's worker processes for exporting
    and scoring a fold's validation, 8 by default) becomes the number of CPUs when the user has not set it: on
    a 2-core machine, spawning 8 processes that each import torch cost over a minute per training.
    ``OMP_WAIT_POLICY`` becomes ``PASSIVE`` when unset (idle OpenMP threads sleep instead of spinning): a
    training whose second thread shares a core with any other work otherwise waits at every parallel region
    (measured on this project's 2-core machine beside other jobs: 12-26 s epochs instead of 5 s).

    Args:
        folders: nnU-Net's three folders (:func:`nnunet_folders`).
        da_workers: nnU-Net's data-augmentation processes per training (``nnUNet_n_proc_DA``); None: nnU-Net's.
        threads: torch / OpenMP threads of each process (``OMP_NUM_THREADS``) unless the user set them; None:
            the libraries' default (all cores).
    """
    from nnunet_filternet.nnunet_ext import add_to_environment

    env = dict(os.environ)
    env.update({k: str(v) for k, v in folders.items()})
    env.setdefault("nnUNet_def_n_proc", str(min(8, os.cpu_count() or 1)))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if da_workers is not None:
        env["nnUNet_n_proc_DA"] = str(da_workers)
    if threads is not None:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    add_to_environment(env)
    return env


@contextlib.contextmanager
def variables_set(variables: dict[str, str | None]) -> Iterator[None]:
    """Set (a value) or unset (None) environment variables in this process for the block, then restore them."""
    old = {k: os.environ.get(k) for k in variables}
    try:
        for k, v in variables.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def environment_set(env: dict[str, str]) -> contextlib.AbstractContextManager[None]:
    """Set ``env``'s :data:`NNUNET_VARIABLES` in this process for the duration of the block, then restore."""
    return variables_set({k: env.get(k) for k in NNUNET_VARIABLES})


def command(script: str) -> list[str]:
    """argv prefix that runs nnU-Net's console ``script`` with this interpreter's installation."""
    candidate = Path(sys.executable).parent / script
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which(script)
    if found:
        return [found]
    module, func = ENTRY_POINTS[script].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func} as f; sys.argv[0] = {script!r}; f()"]


def run(script: str, args: Sequence[str], env: dict[str, str], log_file: str | Path | None = None) -> None:
    """Run an nnU-Net console script, streaming its output; raise FilterNetError if it fails.

    Output goes to this process' stdout and, if given, is appended to ``log_file``.
    """
    argv = [*command(script), *map(str, args)]
    print("  $ " + " ".join([script, *map(str, args)]), flush=True)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_file, "a", encoding="utf-8") if log_file else None  # noqa: SIM115
    tail: list[str] = []
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            encoding="utf-8",
            errors="replace",
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write("    " + line)
            sys.stdout.flush()
            if log:
                log.write(line)
            tail = (tail + [line.rstrip()])[-15:]
        rc = proc.wait()
    finally:
        if log:
            log.close()
    if rc != 0:
        raise FilterNetError(f"{script} failed with exit code {rc}; last lines:\n" + "\n".join(tail))
