"""Where a model's training step spends its time: torch.profiler's tables (``filternet bench --profile``).

Two views of the same profiled calls (the benchmark's own step, :func:`~nnunet_filternet.bench.training_step.
bench_trainer`, or FilterNet's edge gate and edge loss alone, :class:`~nnunet_filternet.bench.gate_cost.EdgeGateCost`,
warmed up first):

- the operator table: torch's operators sorted by their own time on the device that ran them (CUDA kernels on a
  GPU, CPU time otherwise);
- the parts table (:func:`parts_of_step`): every operator's own time attributed to the part of the model that
  ran it, forward and backward alike. Each part's modules are wrapped in a ``record_function`` range while the
  step runs (:func:`labelled_parts`); a forward operator takes the innermost range around it, a backward
  operator the range of the forward operator that made its autograd node (the same sequence number). Parts:
  :data:`PARTS` (the gate and edge loss, the region loss, convolutions by role: Block B's zeta convs, the plans'
  convs, residual projections, transposed convs and 1x1 heads; norms, non-linearities, Block B's residual
  additions, the decoder's concatenations, the optimizer, the rest). Operator calls are counted per part:
  on a CPU each is one dispatch (its fixed cost is what dominates small widths), on a GPU at least one launch.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nnunet_filternet.bench.models import ModelSpec
from nnunet_filternet.bench.options import EDGE_GATE
from nnunet_filternet.bench.plans import BenchSetup

#: Prefix of the profiler ranges that name a part.
RANGE_PREFIX = "filternet-part::"

GATE = "edge gate + edge loss"
REGION_LOSS = "region loss (Dice + CE)"
ZETA_CONV = "conv: Block B zeta (large kernel)"
PLANS_CONV = "conv: the plans' kernels"
PROJECTION = "conv: residual projection"
TRANSPOSED = "conv: transposed (up-sampling)"
HEAD = "conv: 1x1 heads"
NORM = "norm"
NONLIN = "non-linearity"
RESIDUAL_ADD = "Block B residual addition"
DECODER = "decoder: concatenation, rest"
OPTIMIZER = "optimizer (zero_grad, step)"
OTHER = "rest (clip, autograd engine, bookkeeping)"

#: Every part, in the order of the table.
PARTS: tuple[str, ...] = (
    GATE,
    REGION_LOSS,
    ZETA_CONV,
    PLANS_CONV,
    PROJECTION,
    TRANSPOSED,
    HEAD,
    NORM,
    NONLIN,
    RESIDUAL_ADD,
    DECODER,
    OPTIMIZER,
    OTHER,
)

#: torch.optim's own profiler ranges (``Optimizer.step#SGD.step``, ``Optimizer.zero_grad#SGD.zero_grad``).
_OPTIMIZER_RANGE = "Optimizer."
_BACKWARD_NODE = "autograd::engine::evaluate_function: "
_NORMS = (nn.modules.instancenorm._InstanceNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
_NONLINS = (nn.LeakyReLU, nn.ReLU, nn.GELU, nn.SiLU, nn.ELU, nn.PReLU)


def _edge_loss_of(loss: nn.Module) -> nn.Module | None:
    return getattr(loss, "edge_loss", None)


def part_of_modules(network: nn.Module, loss: nn.Module) -> dict[nn.Module, str]:
    """The part each module of ``network`` and ``loss`` runs in (modules without their own part are left out).

    Convolutions are told apart by role: the zeta conv of a ``BlockBStage`` (``zeta_index``), its projection
    skip, the decoder's transposed convs and segmentation heads; every other conv runs a plans kernel.
    """
    from nnunet_filternet.network.block_b import BlockBStage

    parts: dict[nn.Module, str] = {}
    for module in network.modules():
        if isinstance(module, BlockBStage):
            parts[module] = RESIDUAL_ADD
            for child in module.skip.modules():
                parts[child] = PROJECTION
            if module.zeta_index is not None:
                for child in module.convs[module.zeta_index].modules():
                    parts.setdefault(child, ZETA_CONV)
        decoder = getattr(module, "transpconvs", None)
        if isinstance(decoder, nn.ModuleList):
            parts[module] = DECODER
            parts.update({m: TRANSPOSED for t in decoder for m in t.modules()})
            parts.update({m: HEAD for s in getattr(module, "seg_layers", []) for m in s.modules()})
    for module in network.modules():
        kind = parts.get(module)
        if isinstance(module, _NORMS):
            parts[module] = NORM
        elif isinstance(module, _NONLINS):
            parts[module] = NONLIN
        elif isinstance(module, nn.modules.conv._ConvNd) and kind is None:
            parts[module] = PLANS_CONV
    edge_loss = _edge_loss_of(loss)
    parts[getattr(loss, "region_loss", loss)] = REGION_LOSS
    if edge_loss is not None:
        parts[edge_loss] = GATE
    return parts


@contextlib.contextmanager
def labelled_parts(parts: dict[nn.Module, str]) -> Iterator[None]:
    """Wrap every module's forward in a profiler range named after its part, for the duration of the block."""
    from torch.profiler import record_function

    handles, open_ranges = [], defaultdict(list)

    def enter(module, _args):
        scope = record_function(RANGE_PREFIX + parts[module])
        scope.__enter__()
        open_ranges[module].append(scope)

    def leave(module, _args, _output):
        open_ranges[module].pop().__exit__(None, None, None)

    for module in parts:
        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave, always_call=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _own_part(event) -> str | None:
    if event.name.startswith(RANGE_PREFIX):
        return event.name.removeprefix(RANGE_PREFIX)
    if event.name.startswith(_OPTIMIZER_RANGE):
        return OPTIMIZER
    return None


@dataclass
class PartTimes:
    """Own (self) device time in microseconds and operator calls per part, summed over ``calls`` calls."""

    micros: dict[str, float]
    operators: dict[str, int]
    calls: int

    def per_call_ms(self, part: str) -> float:
        return self.micros.get(part, 0.0) / 1e3 / self.calls

    def total_ms(self) -> float:
        return sum(self.micros.values()) / 1e3 / self.calls

    def operators_per_call(self, part: str | None = None) -> float:
        count = sum(self.operators.values()) if part is None else self.operators.get(part, 0)
        return count / self.calls


def attribute_events(events, calls: int, device_time: bool = False) -> PartTimes:
    """Own time of every profiler event given to its part (module docstring); ranges themselves cost nothing.

    Args:
        events: ``prof.events()`` of a profile taken under :func:`labelled_parts`.
        calls: how many calls the profile holds (times are divided by it).
        device_time: use the events' own CUDA time instead of CPU time.
    """
    events = sorted(events, key=lambda e: e.time_range.start)
    part_by_sequence: dict[int, str] = {}
    forward_memo: dict[int, str] = {}
    for event in events:  # forward first: the part of the operator that made each autograd node
        if event.sequence_nr >= 0 and not _under_backward(event):
            part_by_sequence.setdefault(event.sequence_nr, _part(event, part_by_sequence, forward_memo))
    memo: dict[int, str] = {}
    micros: dict[str, float] = defaultdict(float)
    operators: dict[str, int] = defaultdict(int)
    for event in events:
        if event.name.startswith((RANGE_PREFIX, _OPTIMIZER_RANGE, _BACKWARD_NODE)):
            continue
        part = _part(event, part_by_sequence, memo)
        micros[part] += event.self_device_time_total if device_time else event.self_cpu_time_total
        if event.name.startswith("aten::") and not event.cpu_children:
            operators[part] += 1
    return PartTimes(dict(micros), dict(operators), calls)


def _under_backward(event) -> bool:
    while event is not None:
        if event.name.startswith(_BACKWARD_NODE):
            return True
        event = event.cpu_parent
    return False


def _part(event, part_by_sequence: dict[int, str], memo: dict[int, str]) -> str:
    """The part of ``event``: its own range, else its autograd node's forward part, else its parent's."""
    key = id(event)
    if key not in memo:
        part = _own_part(event)
        if part is None and event.name.startswith(_BACKWARD_NODE):
            part = part_by_sequence.get(event.sequence_nr)
        if part is None:
            parent = event.cpu_parent
            part = OTHER if parent is None else _part(parent, part_by_sequence, memo)
        memo[key] = part
    return memo[key]


def parts_of_step(step, device: torch.device, steps: int = 3) -> PartTimes:
    """Profile ``steps`` training steps of a ``BenchStep`` (warmed up) and attribute their time to parts."""
    from torch.profiler import ProfilerActivity, profile

    from nnunet_filternet.bench.memory import quiet_native_stderr
    from nnunet_filternet.bench.timing import synchronize

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with labelled_parts(part_of_modules(step.eager_network, step.loss)):
        with quiet_native_stderr(), profile(activities=activities) as prof:
            for _ in range(steps):
                step()
            synchronize(device)
    return attribute_events(prof.events(), steps, device_time=device.type == "cuda")


def parts_table(times: dict[str, PartTimes], reference: str | None = None) -> str:
    """Markdown table: ms per step and operator calls per step of every part, one column pair per model.

    With ``reference`` (a key of ``times``), a last column gives each other model's difference to it.
    """
    names = list(times)
    header = "| part | " + " | ".join(f"{n}: ms | {n}: ops" for n in names)
    others = [n for n in names if n != reference] if reference else []
    header += "".join(f" | {n} - {reference}: ms" for n in others) + " |"
    rows = [header, "|---" * (1 + 2 * len(names) + len(others)) + "|"]
    used = [p for p in PARTS if any(t.micros.get(p) or t.operators.get(p) for t in times.values())]
    for part in [*used, None]:
        cells = []
        for n in names:
            t = times[n]
            ms = t.total_ms() if part is None else t.per_call_ms(part)
            cells += [f"{ms:.1f}", f"{t.operators_per_call(part):.0f}"]
        for n in others:
            a, b = times[n], times[reference]
            diff = a.total_ms() - b.total_ms() if part is None else a.per_call_ms(part) - b.per_call_ms(part)
            cells.append(f"{diff:+.1f}")
        label = "**whole step**" if part is None else part
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def profile_table(
    spec: ModelSpec, setup: BenchSetup, device: torch.device, gate_only: bool = False, steps: int = 2
) -> str:
    """torch.profiler's operator table of ``steps`` calls after two warm-up calls.

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
    _warm_up(call)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with quiet_native_stderr(), profile(activities=activities) as prof:
        for _ in range(steps):
            call()
        synchronize(device)
    sort_by = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    what = f"{spec.name}'s {EDGE_GATE} and edge loss" if gate_only else f"{spec.name} training step"
    title = f"{what}, {steps} calls, patch {list(setup.patch_size)}, batch {setup.batch_size}, {device.type}"
    return title + "\n" + prof.key_averages().table(sort_by=sort_by, row_limit=20)


def _warm_up(call: Callable[[], object], calls: int = 2) -> None:
    for _ in range(calls):
        call()


def compare_parts(specs: list[ModelSpec], setup: BenchSetup, device: torch.device, steps: int = 3) -> str:
    """The parts table of every model in ``specs`` (the first is the reference), each step profiled alone.

    Returns:
        Markdown: a heading line (patch, batch, device, steps) and the table.
    """
    from nnunet_filternet.bench.training_step import bench_trainer

    times = {}
    for spec in specs:
        step = bench_trainer(spec, setup, device)
        _warm_up(step)
        times[spec.name] = parts_of_step(step, device, steps)
        del step
    title = (
        f"Own {'CUDA' if device.type == 'cuda' else 'CPU'} time per training step by part, mean of {steps} "
        f"profiled steps, patch {list(setup.patch_size)}, batch {setup.batch_size}, "
        f"features {setup.describe()['features_per_stage']}, {device.type}, torch threads {torch.get_num_threads()}"
    )
    return title + "\n\n" + parts_table(times, reference=specs[0].name if len(specs) > 1 else None)
