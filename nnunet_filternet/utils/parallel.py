"""Parallel map over cases with a progress bar (processes; results in input order)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm import tqdm


def default_jobs() -> int:
    """Number of worker processes to use by default: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(
    fn: Callable[..., Any],
    items: Sequence[Any] | Iterable[Any],
    jobs: int | None = None,
    desc: str = "",
    unit: str = "case",
    disable_progress: bool | None = None,
) -> list[Any]:
    """``[fn(x) for x in items]`` over ``jobs`` processes, with a tqdm bar on stderr.

    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one). Exceptions
    raised by ``fn`` propagate to the caller (the first one by completion order); with ``jobs == 1``
    everything runs in this process, which keeps tracebacks simple.
    """
    items = list(items)
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
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
