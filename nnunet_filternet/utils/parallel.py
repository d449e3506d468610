"""Parallel map over cases with a progress bar (processes; results in input order)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm import tqdm

from nnunet_filternet.errors import FilterNetError


def default_jobs() -> int:
    """Number of worker processes to use by default: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def available_memory_bytes() -> int | None:
    """Memory the system can give new work now (``MemAvailable`` of /proc/meminfo), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_jobs(jobs: int | None) -> int | None:
    """``jobs`` unchanged if it is None (all cores) or a positive integer; otherwise a FilterNetError.

    Every verb takes ``-j/--jobs`` the same way: 0, negative or non-integer numbers are refused, not clamped.
    """
    if jobs is None:
        return None
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise FilterNetError(f"-j/--jobs: expected a positive number of worker processes, found {jobs!r}")
    return jobs


def parallel_map(
    fn: Callable[..., Any],
    items: Sequence[Any] | Iterable[Any],
    jobs: int | None = None,
    desc: str = "",
    unit: str = "case",
    disable_progress: bool | None = None,
) -> list[Any]:
    """``[fn(x) for x in items]`` over ``jobs`` processes, with a tqdm bar on stderr.

    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one). ``jobs`` must be None
    or positive (:func:`check_jobs`). Exceptions
    raised by ``fn`` propagate to the caller (the first one by completion order); with ``jobs == 1``
    everything runs in this process, which keeps tracebacks simple.
    """
    items = list(items)
    jobs = default_jobs() if check_jobs(jobs) is None else jobs
    jobs = min(jobs, max(1, len(items)))
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=disable_progress, dynamic_ncols=True)
    results: list[Any] = [None] * len(items)
    try:
        if jobs == 1:
            for i, item in enumerate(items):
                results[i] = fn(item)
                bar.update(1)
            return results
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
        return results
    finally:
        bar.close()
