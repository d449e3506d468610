"""Markdown and JSON renderings of a benchmark result, and their place in ``docs/benchmarks.md``.

A result is the dict :func:`~nnunet_filternet.bench.runner.run_benchmark` returns: ``environment``,
``setup``, ``models`` (one dict per model with ``parameters``, ``flops``, ``step_seconds``, ``peak_bytes``,
``inference_seconds`` and ``ratios`` to stock nnU-Net), ``edge_gate``, ``throughput`` and ``targets``.
``--markdown FILE`` replaces only the section between this run's markers (one per device and size), so the
prose of the document and the sections of other devices stay as they are.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from nnunet_filternet.bench.targets import TargetCheck

MIB = 2**20


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _with_ratio(value: float | None, ratio: float | None, fmt: str) -> str:
    if value is None:
        return "-"
    text = format(value, fmt)
    return f"{text} ({ratio:.2f})" if ratio is not None else text


def _dims(values) -> str:
    return " x ".join(f"{v:g}" for v in values)


def model_rows(result: dict) -> list[str]:
    """Markdown table of every model: values with their ratio to stock nnU-Net in brackets."""
    header = [
        "| Model | Parameters (M) | GFLOPs / step | Step time (s) | Peak memory (MiB) | Inference (s) "
        "| Inference, mirroring (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for m in result["models"]:
        if not m["available"]:
            rows.append(f"| {m['name']} | not run: {m['unavailable_reason']} | | | | | |")
            continue
        r = m.get("ratios", {})
        inference = m.get("inference_seconds", {})
        cells = [
            _with_ratio(m["parameters"] / 1e6 if m["parameters"] else None, r.get("parameters"), ".2f"),
            _with_ratio(m["flops"] / 1e9 if m["flops"] else None, r.get("flops"), ".1f"),
            _with_ratio(_median(m["step_seconds"]), r.get("step_time"), ".3f"),
            _with_ratio(m["peak_bytes"] / MIB if m["peak_bytes"] else None, r.get("peak_memory"), ".0f"),
            _with_ratio(_median(inference.get("no_mirroring", [])), r.get("inference_no_mirroring"), ".2f"),
            _with_ratio(_median(inference.get("mirroring", [])), r.get("inference_mirroring"), ".2f"),
        ]
        rows.append(f"| {m['name']} | " + " | ".join(cells) + " |")
    return header + rows


def _edge_gate_line(result: dict) -> str | None:
    gate = result.get("edge_gate", {})
    parts = []
    if gate.get("flops") is not None:
        text = f"{gate['flops'] / 1e9:.2f} GFLOPs"
        if "flop_share_of_filternet_step" in gate:
            text += f" ({gate['flop_share_of_filternet_step']:.2%} of FilterNet's step FLOPs)"
        parts.append(text)
    if gate.get("seconds"):
        text = f"{1e3 * _median(gate['seconds']):.1f} ms forward + backward"
        if "share_of_filternet_step" in gate:
            text += f" = {gate['share_of_filternet_step']:.2%} of FilterNet's step time"
        parts.append(text)
    filternet = next((m for m in result["models"] if m["name"] == "FilterNet" and m.get("ratios_to_bunet")), None)
    if filternet and "step_time" in filternet["ratios_to_bunet"]:
        parts.append(f"FilterNet's whole step takes {filternet['ratios_to_bunet']['step_time']:.3f}x BUNet's")
    return "Edge gate + edge loss alone: " + "; ".join(parts) + "." if parts else None


def _page_fault_line(result: dict) -> str | None:
    """Median minor page faults per training step of every model (memory the kernel had to map in again)."""
    faults = [(m["name"], _median(m.get("step_page_faults", []))) for m in result["models"] if m["available"]]
    faults = [(name, value) for name, value in faults if value is not None]
    if not faults:
        return None
    listed = ", ".join(f"{name} {value:.0f}" for name, value in faults)
    return f"Minor page faults per training step (median over rounds): {listed}."


def _throughput_lines(throughput: dict) -> list[str]:
    lines = []
    conversion, metrics = throughput.get("conversion"), throughput.get("metrics")
    if conversion:
        if "unavailable" in conversion:
            lines.append(f"- Conversion: not measured ({conversion['unavailable']}).")
        else:
            lines.append(
                f"- Conversion (read, N4, legs, write) of a {_dims(conversion['scan_shape_xyz'])} phantom scan: "
                f"{conversion['scans_per_minute']:.1f} scans/min (median of {len(conversion['seconds'])}, "
                f"N4 {conversion['n4_share']:.0%} of the time)."
            )
    if metrics:
        if "unavailable" in metrics:
            lines.append(f"- Metrics: not measured ({metrics['unavailable']}).")
        else:
            lines.append(
                f"- Metrics (Dice and surface distances, 5 compartments, 2 legs) of a "
                f"{_dims(metrics['scan_shape_zyx'])} (z, y, x) scan pair: {metrics['scans_per_second']:.2f} "
                f"scans/s (median of {len(metrics['seconds'])})."
            )
    return lines


def _method_line(result: dict, repeats: int, warmup: int) -> str:
    if not any(m.get("step_seconds") or m.get("inference_seconds") for m in result["models"]):
        return "- Parameters and FLOPs only (`--parts flops`); ratios to stock nnU-Net in brackets."
    return (
        f"- Times are medians of {repeats} interleaved rounds after {warmup} warm-up call(s); ratios to stock "
        "nnU-Net (in brackets) are medians of the per-round ratios. Peak memory: tensors alive between steps + "
        "the peak of one step (CUDA max allocated / torch's CPU allocator profile)."
    )


def section_key(result: dict) -> str:
    """Marker key of a result's section: device, then the size if not the device's, or the plans file."""
    env, setup = result["environment"], result["setup"]
    key = env["device"]
    if setup.get("size") not in (None, env["device"]):
        key += f"-{setup['size']}"
    if setup.get("size") is None:
        key += f"-{'quick-' if env['options']['quick'] else ''}{Path(setup['source']).stem}-{setup['configuration']}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def to_markdown(result: dict) -> str:
    """The result as a Markdown section (heading, set-up, model table, gate, throughput, targets)."""
    env, setup = result["environment"], result["setup"]
    repeats = env["options"]["repeats"]
    compiled = next((m["compiled"] for m in result["models"] if m.get("compiled")), {})
    compile_text = ", ".join(f"{part} {'on' if on else 'off'}" for part, on in compiled.items()) or "not run"
    lines = [
        f"### {section_key(result)}: {env['device_name']}, {env['date']}",
        "",
        f"Command: `{env['command']}`",
        "",
        f"- Device: {env['device']} ({env['device_name']}), {env['cpu_cores']} CPU cores, torch threads "
        f"{env['torch_threads']}; torch {env['torch']}, nnunetv2 {env['nnunetv2']}; AMP {env['amp']}; "
        f"torch.compile {compile_text}; cudnn.benchmark {env['cudnn_benchmark']}; allocator: "
        f"{env.get('malloc', 'system default')}; 1-minute load average "
        f"{' -> '.join(str(v) for v in env.get('load_average', []))} (start -> end).",
        f"- Plans: {setup['source']}, configuration {setup['configuration']}: patch {_dims(setup['patch_size'])}, "
        f"batch {setup['batch_size']}, spacing {_dims(setup['spacing_mm'])} mm, {setup['n_stages']} stages, "
        f"features {setup['features_per_stage']}; inference volume {_dims(setup['inference_shape'])} voxels.",
        _method_line(result, repeats, env["warmup"]),
        "",
        *model_rows(result),
        "",
    ]
    for line in (_edge_gate_line(result), _page_fault_line(result)):
        if line:
            lines += [line, ""]
    throughput = _throughput_lines(result.get("throughput", {}))
    if throughput:
        lines += ["Throughput:", "", *throughput, ""]
    lines += ["Targets:", ""]
    lines += [f"- {TargetCheck(**t).line()}" for t in result.get("targets", [])]
    return "\n".join(lines) + "\n"


def to_json(result: dict) -> str:
    """The result as indented JSON."""
    return json.dumps(result, indent=2) + "\n"


def _markers(key: str) -> tuple[str, str]:
    return f"<!-- filternet-bench:{key}:begin -->", f"<!-- filternet-bench:{key}:end -->"


def place_section(document: str, key: str, section: str) -> str:
    """``document`` with the text between ``key``'s markers replaced by ``section`` (appended if absent)."""
    begin, end = _markers(key)
    block = f"{begin}\n{section.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), flags=re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    return document.rstrip("\n") + ("\n\n" if document.strip() else "") + block + "\n"


def write_section(path: str | Path, result: dict) -> Path:
    """Put the result's Markdown section into the file ``path`` (created if missing), atomically."""
    from nnunet_filternet.utils.atomic import write_text

    path = Path(path)
    document = path.read_text(encoding="utf-8") if path.exists() else ""
    write_text(path, place_section(document, section_key(result), to_markdown(result)))
    return path
