"""Where a model's training step spends its time: torch.profiler's operator table (``filternet bench --profile``).

The step is the benchmark's own (:func:`~nnunet_filternet.bench.training_step.bench_trainer`), or FilterNet's
edge gate and edge loss alone (:class:`~nnunet_filternet.bench.gate_cost.EdgeGateCost`), warmed up first. Operators are
sorted by their own time on the device that ran them (CUDA kernels on a GPU, CPU time otherwise).
"""

from __future__ import annotations

import torch

from nnunet_filternet.bench.models import ModelSpec
from nnunet_filternet.bench.options import EDGE_GATE
from nnunet_filternet.bench.plans import BenchSetup


def profile_table(
    spec: ModelSpec, setup: BenchSetup, device: torch.device, gate_only: bool = False, steps: int = 2
) -> str:
    """torch.profiler's table of ``steps`` calls after two warm-up calls.

    Args:
        spec: the model whose training step is profiled.
        setup: the shared configuration.
        device: ``cpu`` or ``cuda``.
        gate_only: profile ``spec``'s edge gate and edge loss alone (an edge-gate model) instead of its step.
        steps: profiled calls (the table's times are totals over them).

    Returns:
        The table as text, headed by what was profiled.
    """
    from torch.profiler import ProfilerActivity, profile

    from nnunet_filternet.bench.gate_cost import EdgeGateCost
    from nnunet_filternet.bench.memory import quiet_native_stderr
    from nnunet_filternet.bench.timing import synchronize
    from nnunet_filternet.bench.training_step import bench_trainer

    call = bench_trainer(spec, setup, device)
    if gate_only:
        call = EdgeGateCost(call.loss.edge_loss, setup, device)
    for _ in range(2):
        call()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with quiet_native_stderr(), profile(activities=activities) as prof:
        for _ in range(steps):
            call()
        synchronize(device)
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    what = f"{spec.name}'s {EDGE_GATE} and edge loss" if gate_only else f"{spec.name} training step"
    title = f"{what}, {steps} calls, patch {list(setup.patch_size)}, batch {setup.batch_size}, {device.type}"
    return title + "\n" + prof.key_averages().table(sort_by=sort_by, row_limit=20)
