"""The fused CPU kernel of the edge loss (``gate_kernel.c``): compiled once per machine and source, loaded by ctypes.

The kernel is plain C99 without PyTorch's headers, so a C compiler builds it in about a second. It is built at
first use into ``$XDG_CACHE_HOME/nnunet_filternet`` (default ``~/.cache/nnunet_filternet``), under a name keyed on
the source's SHA-256, the compiler's version line, the flags and the machine, written to a temporary name and
renamed (so concurrent processes, e.g. nnU-Net's data loader workers or DDP ranks, never load a half-written
library). Portable flags only (no ``-march=native``: a shared home directory may serve other CPUs).

:func:`library` returns None when there is no compiler, the build fails, or ``FILTERNET_NATIVE=0``: the caller
then runs the PyTorch operators (``edge/filter.py``), which compute the same values.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("gate_kernel.c")

#: Compiler flags: optimised, no fast-math (NaN and rounding as the C standard says), position-independent.
FLAGS: tuple[str, ...] = ("-O3", "-std=c99", "-shared", "-fPIC")

#: ``FILTERNET_NATIVE=0`` turns the fused kernel off (the PyTorch operators run instead).
SWITCH = "FILTERNET_NATIVE"


def enabled() -> bool:
    """False when the environment variable :data:`SWITCH` is ``0`` (read at every call: tests flip it)."""
    return os.environ.get(SWITCH, "1") != "0"


def cache_dir() -> Path:
    """Where built kernels are kept: ``$XDG_CACHE_HOME/nnunet_filternet`` or ``~/.cache/nnunet_filternet``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nnunet_filternet"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _compiler_version(compiler: str) -> str | None:
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else None


def build(folder: Path) -> Path | None:
    """Build the kernel into ``folder`` unless it is there already; its path, or None (no compiler, a failure)."""
    compiler = _compiler()
    version = _compiler_version(compiler) if compiler else None
    if version is None:
        return None
    key = hashlib.sha256(
        b"\0".join([SOURCE.read_bytes(), version.encode(), " ".join(FLAGS).encode(), platform.machine().encode()])
    ).hexdigest()[:16]
    target = folder / f"gate_kernel-{key}.so"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            built = Path(tmp) / target.name
            done = subprocess.run(
                [compiler, *FLAGS, "-o", str(built), str(SOURCE), "-lm"],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                print(
                    f"edge gate: the fused CPU kernel did not build ({compiler}): {done.stderr[-500:]}", file=sys.stderr
                )
                return None
            os.replace(built, target)
    except (OSError, subprocess.SubprocessError) as error:
        print(f"edge gate: the fused CPU kernel did not build: {error}", file=sys.stderr)
        return None
    return target


@functools.cache
def _load() -> ctypes.CDLL | None:
    path = build(cache_dir())
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    f32, f64, i32, i64 = (
        ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_double), ctypes.c_int, ctypes.c_longlong
    )  # fmt: skip
    lib.filternet_edge_forward.restype = lib.filternet_edge_backward.restype = ctypes.c_int
    lib.filternet_edge_forward.argtypes = [
        f32, i64, i64, f32, i32, i32, i32, i32, i32,  # prob, its batch and class strides, labels, B C Z Y X
        f32, f32, i32, i32,  # classes, taps, constant_target, save
        f32, f32, f32, f32, f64,  # mask, a, t, sign (saved for backward), abs_sums
    ]  # fmt: skip
    lib.filternet_edge_backward.argtypes = [
        i32, i32, i32, i32, i32, f32, f32, f64,  # B C Z Y X, taps, dtaps, scale
        f32, f32, f32, f32, f32, f64,  # mask, a, t, sign, grad_prob, dsigma
    ]  # fmt: skip
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded kernel, or None (turned off, or it cannot be built here)."""
    return _load() if enabled() else None
