"""Keep freed memory inside the process (glibc ``mallopt``), as PyTorch's CUDA caching allocator does on a GPU.

PyTorch's CPU allocator hands every tensor back to the C library when it is freed, and glibc returns large
blocks to the kernel at once (blocks above the mmap threshold are unmapped; the top of the heap is trimmed).
A training step frees and re-allocates the same activations every step, so each step then faults its
memory in again page by page, and the kernel zeroes every page: on this project's CPU, with the benchmark's
quick configuration, 8 000-16 000 minor page faults per training step, depending on which model ran before
(``filternet bench --device cpu --quick --threads 1 --system-malloc``, docs/benchmarks.md). Serving every
allocation from the heap and never trimming it makes a step reuse its pages: 0 to 8 000 faults per step there.

The price is that the process keeps its peak heap (the largest step's working set) until it exits; the
memory is still reused by later allocations.
"""

from __future__ import annotations

import ctypes
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

#: What :func:`keep_freed_memory` sets: (parameter, value, name for the report).
SETTINGS: tuple[tuple[int, int, str], ...] = (
    (M_MMAP_MAX, 0, "M_MMAP_MAX=0 (no mmap: every block from the heap)"),
    (M_TRIM_THRESHOLD, 2**31 - 1, "M_TRIM_THRESHOLD=2 GiB (no trimming)"),
    (M_TOP_PAD, 64 * 2**20, "M_TOP_PAD=64 MiB"),
)


def _glibc():
    """The process's C library if it is glibc (it has ``gnu_get_libc_version``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version
    except (OSError, AttributeError):  # musl and others: no mallopt tuning
        return None
    version.restype = ctypes.c_char_p
    return libc


def keep_freed_memory() -> str | None:
    """Make glibc keep freed memory in the process for reuse (process-wide, until it exits).

    Returns:
        A description of the settings for a report, or None where the C library is not glibc or refused a
        setting (the allocator is then left as it was, apart from settings already accepted).
    """
    libc = _glibc()
    if libc is None:
        return None
    for parameter, value, _ in SETTINGS:
        if libc.mallopt(ctypes.c_int(parameter), ctypes.c_int(value)) != 1:
            return None
    version = libc.gnu_get_libc_version().decode()
    return f"glibc {version} keeps freed memory: " + ", ".join(name for _, _, name in SETTINGS)
