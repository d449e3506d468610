"""Wall-clock timing of repeated calls, synchronised with the device so that GPU work is counted."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait for all queued work on ``device`` (CUDA); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, each bracketed by device synchronisation.

    Warm-up is the caller's job (call ``fn`` before): the first calls pay for cuDNN autotuning,
    ``torch.compile`` and allocator growth.
    """
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def median(seconds: list[float]) -> float | None:
    """Median of a list of timings, None for an empty list."""
    return statistics.median(seconds) if seconds else None


def minor_page_faults() -> int | None:
    """Minor page faults of this process so far (None where the OS does not count them, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class CountPageFaults:
    """Wraps a call and records the minor page faults of each call in :attr:`faults` (memory the kernel maps in).

    Freed memory the C library returned to the kernel comes back as page faults when a step allocates again
    (each page zeroed by the kernel): a cost of the allocator, not of the model (see ``utils/malloc.py``).
    """

    def __init__(self, fn: Callable[[], object]):
        self.fn = fn
        self.faults: list[int] = []

    def __call__(self) -> object:
        before = minor_page_faults()
        out = self.fn()
        after = minor_page_faults()
        if before is not None and after is not None:
            self.faults.append(after - before)
        return out
