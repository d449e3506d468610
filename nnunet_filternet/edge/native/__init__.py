"""The fused CPU kernel of the edge loss (``gate_kernel.c``): compiled once per machine and source, loaded by ctypes.

The kernel is plain C99 without PyTorch's headers, so a C compiler builds it in about a second. It is built at
first use into ``$XDG_CACHE_HOME/nnunet_filternet`` (default ``~/.cache/nnunet_filternet``), under a name keyed on
the source's SHA-256, the compiler's version line, the flags (with this CPU's instruction set: :data:`ISA_FLAGS`) and
the machine, written to a temporary name and
renamed (so concurrent processes, e.g. nnU-Net's data loader workers or DDP ranks, never load a half-written
library). No ``-march=native``: only instruction sets listed in :data:`ISA_FLAGS` that the CPU reports, each a
build of its own.

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

#: Compiler flags: optimised, no fast-math (NaN and rounding as the C standard says; ``-fno-trapping-math`` only
#: lets the compiler vectorise the branch-free selects of the softmax's exp, nothing here reads the FP exception
#: flags), position-independent.
FLAGS: tuple[str, ...] = ("-O3", "-std=c99", "-fno-trapping-math", "-shared", "-fPIC")

#: Instruction-set flags added where this machine's CPU has them (``/proc/cpuinfo``): 8-wide AVX2 vectors instead of
#: x86-64's 4-wide SSE2 (the kernel's forward and backward take 0.6 / 0.53 ms instead of 1.0 / 0.64 ms at the tiny
#: 3d_fullres batch, docs/benchmarks.md). The build's key holds its flags, so a cache shared by other CPUs keeps
#: one build per instruction set and each machine loads its own.
ISA_FLAGS: dict[str, tuple[str, ...]] = {"avx2": ("-mavx2",)}

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


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (``flags`` on x86), or none where there is no such file."""
    try:
        with cpuinfo.open() as lines:
            for line in lines:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def flags() -> tuple[str, ...]:
    """:data:`FLAGS` and the :data:`ISA_FLAGS` of the features this CPU has (on x86-64 only)."""
    features = cpu_features() if platform.machine() in ("x86_64", "AMD64") else frozenset()
    return FLAGS + tuple(flag for feature, isa in ISA_FLAGS.items() if feature in features for flag in isa)


def build(folder: Path) -> Path | None:
    """Build the kernel into ``folder`` unless it is there already; its path, or None (no compiler, a failure).

    With this CPU's instruction-set flags first, and without them if the compiler refuses those."""
    compiler = _compiler()
    version = _compiler_version(compiler) if compiler else None
    if version is None:
        return None
    chosen = flags()
    built = _build(folder, compiler, version, chosen, quiet=chosen != FLAGS)
    return built if built is not None or chosen == FLAGS else _build(folder, compiler, version, FLAGS, quiet=False)


def _build(folder: Path, compiler: str, version: str, chosen: tuple[str, ...], quiet: bool) -> Path | None:
    key = hashlib.sha256(
        b"\0".join([SOURCE.read_bytes(), version.encode(), " ".join(chosen).encode(), platform.machine().encode()])
    ).hexdigest()[:16]
    target = folder / f"gate_kernel-{key}.so"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            built = Path(tmp) / target.name
            done = subprocess.run(
                [compiler, *chosen, "-o", str(built), str(SOURCE), "-lm"],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                if quiet:
                    return None
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
    pointer, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong  # addresses passed as data_ptr() ints
    lib.filternet_edge_forward.restype = lib.filternet_edge_backward.restype = ctypes.c_int
    lib.filternet_edge_forward.argtypes = [
        pointer, i64, i64, pointer, i32,  # logits, their batch and channel strides, labels, their type code
        i32, i32, i32, i32, i32, i32,  # B K C Z Y X
        pointer, pointer, pointer, i32, i32,  # channels (int), taps, dtaps (or None), constant_target, save
        pointer, pointer, pointer, pointer,  # probs, state (kept for backward), abs_sums, sigma_sums (double)
    ]  # fmt: skip
    lib.filternet_edge_backward.argtypes = [
        i32, i32, i32, i32, i32, i32, pointer, pointer,  # B K C Z Y X, channels, taps
        pointer, i64, pointer,  # weights (double), voxels, the upstream gradient (float)
        pointer, pointer, pointer,  # probs, state, grad_logits
    ]  # fmt: skip
    return lib


def library() -> ctypes.CDLL | None:
    """The loaded kernel, or None (turned off, or it cannot be built here)."""
    return _load() if enabled() else None
