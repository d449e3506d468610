"""Peak memory of a training step, meaning the same on both devices: bytes held by tensors at the peak.

peak = bytes of the tensors alive between steps (parameters, gradients, buffers, optimizer state, batch)
+ the highest allocation above that during one extra, untimed step (activations kept for backward,
gradients, temporaries). Every model's step stays in memory for the interleaved timing, so whole-process
figures would mix models; both devices therefore measure one step on its own:

- CUDA: ``torch.cuda.max_memory_allocated`` during the step minus ``memory_allocated`` at its start. The
  caching allocator's reserve and the CUDA context (a few hundred MiB in nvidia-smi) are not included.
- CPU: tracemalloc does not see torch's allocations and the process RSS holds the allocator's cache and
  the other models, so the step runs under ``torch.profiler`` with ``profile_memory=True``; its allocation
  events, summed in time order, give the peak above the start of the step.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable

import torch

MIB = 2**20


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and shared storages counted once)."""
    seen, total = set(), 0
    for t in tensors:
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
    return total


def allocation_peak(events: Iterable[tuple[int, int]]) -> int:
    """Highest running sum of (time, signed bytes) allocation events taken in time order (0 if never above)."""
    running = peak = 0
    for _, nbytes in sorted(events):
        running += nbytes
        peak = max(peak, running)
    return peak


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native code writes to file descriptor 2 (the profiler's unconditional log lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_step_peak_above_start(step: Callable[[], object]) -> int:
    """Peak of the running sum of CPU allocation events during one call of ``step`` (torch's profiler)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    ]
    return allocation_peak(events)


def _cuda_step_peak_above_start(step: Callable[[], object], device: torch.device) -> int:
    """CUDA max allocated during one call of ``step``, above what was allocated when it started."""
    torch.cuda.synchronize(device)
    start = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start


def step_peak_bytes(step: Callable[[], object], resident: Iterable[torch.Tensor], device: torch.device) -> int:
    """Peak tensor bytes of one training step: tensors alive between steps + the step's own peak (module doc).

    Args:
        step: runs one (warmed-up) training step; it is called once, untimed.
        resident: tensors alive before and after the step (parameters, gradients, optimizer state, batch).
        device: ``cpu`` or ``cuda``.
    """
    static = tensor_bytes(resident)
    if device.type == "cuda":
        return static + _cuda_step_peak_above_start(step, device)
    return static + _cpu_step_peak_above_start(step)


def release_memory(device: torch.device) -> None:
    """Free what the last model left behind (Python garbage, CUDA cache) before the next one is built."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
