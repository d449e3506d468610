"""Run the whole benchmark in one process: every model on the same plans, patch, batch and device.

Order: FLOPs (fake tensors), then training (warm-up, one untimed step for peak memory, then ``repeats``
timed rounds), the edge gate alone, sliding-window inference, conversion and metric throughput. Timed
calls are interleaved: each round runs every model once, so a load spike from other processes on a shared
machine hits all models of that round alike. Times are medians over rounds; ratios to stock nnU-Net are
medians of the per-round ratios (paired), which cancels most of that noise.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict

import torch
from tqdm import tqdm

from nnunet_filternet.bench.models import STOCK, ModelSpec, select_models
from nnunet_filternet.bench.options import EDGE_GATE, BenchOptions
from nnunet_filternet.bench.plans import BenchSetup
from nnunet_filternet.bench.timing import CountPageFaults, time_calls

INFERENCE_MODES: tuple[str, ...] = ("no_mirroring", "mirroring")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        model = None
    return model or platform.processor() or platform.machine()


def _load_average() -> float | None:
    """The 1-minute load average of the machine (None where the OS has none): other work competing for it."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def environment(device: torch.device, options: BenchOptions, command: str) -> dict:
    """Where and how the benchmark ran, for the report."""
    return {
        "device": device.type,
        "device_name": _device_name(device),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "nnunetv2": importlib.metadata.version("nnunetv2"),
        "amp": "autocast fp16 + GradScaler (nnU-Net)" if device.type == "cuda" else "off, float32 (nnU-Net on CPU)",
        "cudnn_benchmark": device.type == "cuda",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "options": asdict(options),
        "warmup": options.warmup,
        "load_average": [_load_average()],  # 1-minute load at the start; the end is appended after the run
    }


def configure_allocator(device: torch.device, options: BenchOptions) -> str:
    """On the CPU, make the C library keep freed memory (unless ``options.system_malloc``); describe the result.

    Process-wide and applied before any model runs, so every model is measured under the same allocator.
    """
    from nnunet_filternet.utils.malloc import keep_freed_memory

    if device.type != "cpu" or options.system_malloc:
        return "system default"
    return keep_freed_memory() or "system default (not glibc)"


def _model_entry(spec: ModelSpec) -> dict:
    reason = spec.unavailable_reason()
    return {
        "name": spec.name,
        "description": spec.description,
        "trainer": spec.trainer,
        "available": reason is None,
        "unavailable_reason": reason,
        "compiled": {},
        "parameters": None,
        "flops": None,
        "step_seconds": [],
        "step_page_faults": [],
        "peak_bytes": None,
        "inference_seconds": {},
    }


def interleaved_rounds(calls: dict[str, Callable[[], object]], repeats: int, device, bar=None) -> dict[str, list]:
    """Seconds of each call in each of ``repeats`` rounds; every round calls every entry once, in order."""
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            seconds[name] += time_calls(fn, 1, device)
            if bar is not None:
                bar.update(1)
    return seconds


def paired_ratio(numerator: list[float], denominator: list[float]) -> float | None:
    """Median over rounds of numerator[i] / denominator[i] (None if either was not measured)."""
    pairs = [a / b for a, b in zip(numerator, denominator) if b > 0]
    return statistics.median(pairs) if pairs else None


def _gate_model(entries: list[tuple[dict, ModelSpec]]) -> ModelSpec | None:
    """The first edge-gate model (FilterNet when it is benchmarked), whose gate is timed alone."""
    return next((spec for _, spec in entries if spec.edge_gate), None)


def _measure_flops(entries: list[tuple[dict, ModelSpec]], setup: BenchSetup, result: dict) -> None:
    """Parameters and FLOPs of one training step of every model, and FLOPs of the edge gate, on fake tensors.

    Each trainer is built for real on the CPU (its parameters are small); the step's activations and gradients
    are fake tensors, which hold no data (``flops.fake_tensors``).
    """
    from nnunet_filternet.bench.flops import count_flops, fake_tensors
    from nnunet_filternet.bench.gate_cost import EdgeGateCost
    from nnunet_filternet.bench.training_step import bench_trainer

    cpu = torch.device("cpu")
    gate_model = _gate_model(entries)
    for entry, spec in entries:
        step = bench_trainer(spec, setup, cpu)
        entry["parameters"] = step.parameter_count()
        with fake_tensors():
            entry["flops"] = count_flops(step.forward_backward)
            if spec is gate_model:
                result["edge_gate"]["flops"] = count_flops(EdgeGateCost(step.loss.edge_loss, setup, cpu))
        del step


def _measure_training(entries, setup: BenchSetup, options: BenchOptions, result: dict, bar) -> None:
    from nnunet_filternet.bench.gate_cost import EdgeGateCost
    from nnunet_filternet.bench.memory import step_peak_bytes
    from nnunet_filternet.bench.training_step import bench_trainer

    device = torch.device(options.device)
    calls: dict[str, Callable[[], object]] = {}
    for entry, spec in entries:
        bar.set_postfix_str(f"training: build and warm up {spec.name}")
        step = bench_trainer(spec, setup, device, options.seed)
        entry["compiled"]["training"] = step.network is not step.eager_network
        for _ in range(options.warmup):
            step()
        entry["peak_bytes"] = step_peak_bytes(step, step.resident_tensors(), device)
        calls[spec.name] = CountPageFaults(step)
        bar.update(1)
    gate_model = _gate_model(entries)
    if gate_model is not None:
        gate = EdgeGateCost(calls[gate_model.name].fn.loss.edge_loss, setup, device, options.seed)
        for _ in range(options.warmup):
            gate()
        calls[EDGE_GATE] = gate
    bar.set_postfix_str("training: timed rounds")
    seconds = interleaved_rounds(calls, options.repeats, device, bar)
    for entry, _ in entries:
        entry["step_seconds"] = seconds[entry["name"]]
        entry["step_page_faults"] = calls[entry["name"]].faults
    result["edge_gate"]["seconds"] = seconds.get(EDGE_GATE, [])


def _measure_inference(entries, setup: BenchSetup, options: BenchOptions, bar) -> None:
    from nnunet_filternet.bench.inference import SlidingWindow

    device = torch.device(options.device)
    calls: dict[tuple[str, str], Callable[[], object]] = {}
    for entry, spec in entries:
        bar.set_postfix_str(f"inference: build and warm up {spec.name}")
        window = SlidingWindow(spec, setup, device, options.seed)
        entry["compiled"]["inference"] = window.compiled
        for _ in range(options.warmup):
            window.predict(mirroring=False)
        for mode in INFERENCE_MODES:
            calls[(spec.name, mode)] = lambda w=window, m=(mode == "mirroring"): w.predict(m)
        bar.update(1)
    bar.set_postfix_str("inference: timed rounds")
    seconds = interleaved_rounds(calls, options.repeats, device, bar)
    for entry, _ in entries:
        entry["inference_seconds"] = {mode: seconds[(entry["name"], mode)] for mode in INFERENCE_MODES}


def _measure_throughput(options: BenchOptions, result: dict, bar) -> None:
    from nnunet_filternet.bench.throughput import PAPER_SCAN, QUICK_SCAN, conversion_throughput, metric_throughput

    scan = QUICK_SCAN if options.quick else PAPER_SCAN
    repeats = max(1, min(3, options.repeats))
    for name, measure in (("conversion", conversion_throughput), ("metrics", metric_throughput)):
        bar.set_postfix_str(f"throughput: {name}")
        try:
            result["throughput"][name] = measure(scan, repeats)
        except ImportError as e:  # the owning module is not there: say so in the report
            result["throughput"][name] = {"unavailable": f"{type(e).__name__}: {e}"}
        bar.update(1)


def _ratios_to(model: dict, reference: dict) -> dict:
    """Ratios of ``model`` to ``reference``: sizes directly, times as paired medians over rounds."""
    ratios = {}
    for key, name in (("flops", "flops"), ("parameters", "parameters"), ("peak_bytes", "peak_memory")):
        if model.get(key) and reference.get(key):
            ratios[name] = model[key] / reference[key]
    ratios["step_time"] = paired_ratio(model["step_seconds"], reference["step_seconds"])
    for mode in INFERENCE_MODES:
        own, ref = model["inference_seconds"].get(mode, []), reference["inference_seconds"].get(mode, [])
        ratios[f"inference_{mode}"] = paired_ratio(own, ref)
    return {k: v for k, v in ratios.items() if v is not None}


def add_ratios(result: dict) -> None:
    """Ratios to stock nnU-Net for every model, FilterNet's inference against BUNet, the gate's share."""
    models = {m["name"]: m for m in result["models"] if m["available"]}
    for model in models.values():
        model["ratios"] = _ratios_to(model, models[STOCK])
    filternet, bunet = models.get("FilterNet"), models.get("BUNet")
    if filternet and bunet:
        filternet["ratios_to_bunet"] = _ratios_to(filternet, bunet)
    gate = result["edge_gate"]
    if filternet:
        share = paired_ratio(gate.get("seconds", []), filternet["step_seconds"])
        if share is not None:
            gate["share_of_filternet_step"] = share
        if gate.get("flops") and filternet.get("flops"):
            gate["flop_share_of_filternet_step"] = gate["flops"] / filternet["flops"]


def run_benchmark(setup: BenchSetup, options: BenchOptions, command: str = "", progress: bool = True) -> dict:
    """Measure every selected model and part; return the JSON-ready result (see ``report`` for its layout).

    Args:
        setup: the shared plans configuration.
        options: device, repeats, models and parts.
        command: the command line, recorded in the result.
        progress: show a tqdm bar on stderr.
    """
    from nnunet_filternet.bench.memory import release_memory
    from nnunet_filternet.bench.targets import check_targets

    device = torch.device(options.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as nnU-Net's run_training and predictor set it
    specs = select_models(list(options.models) if options.models else None)
    result = {
        "environment": {**environment(device, options, command), "malloc": configure_allocator(device, options)},
        "setup": setup.describe(),
        "models": [_model_entry(s) for s in specs],
        "edge_gate": {},
        "throughput": {},
    }
    entries = [(entry, spec) for entry, spec in zip(result["models"], specs) if entry["available"]]
    n_gate = int(_gate_model(entries) is not None)
    total = len(entries)  # FLOPs
    if "training" in options.parts:
        total += len(entries) + (len(entries) + n_gate) * options.repeats
    if "inference" in options.parts:
        total += len(entries) * (1 + len(INFERENCE_MODES) * options.repeats)
    if "throughput" in options.parts:
        total += 2
    with tqdm(total=total, desc="filternet bench", unit="call", disable=not progress, dynamic_ncols=True) as bar:
        bar.set_postfix_str("FLOPs")
        _measure_flops(entries, setup, result)
        bar.update(len(entries))
        if "training" in options.parts:
            _measure_training(entries, setup, options, result, bar)
            release_memory(device)
        if "inference" in options.parts:
            _measure_inference(entries, setup, options, bar)
            release_memory(device)
        if "throughput" in options.parts:
            _measure_throughput(options, result, bar)
    result["environment"]["load_average"].append(_load_average())
    add_ratios(result)
    result["targets"] = [check.as_dict() for check in check_targets(result)]
    return result
