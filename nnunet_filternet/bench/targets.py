"""The issue's cost targets, checked on a benchmark result and reported as pass/fail lines (never asserted).

- Step time follows FLOPs: on a CPU FilterNet's step-time ratio to stock nnU-Net is within 10% of its FLOP
  ratio at nnU-Net's widths, and at most 1.1 at small widths (the ``tiny`` plans, at most 64 features per
  stage, where fixed per-operator costs weigh; issue 25); on a GPU it is at most 1.0 whenever FilterNet has
  fewer FLOPs, and never above the paper's 1.45.
- The edge gate and edge loss take at most 1.5% of FilterNet's step time (their own timed calls).
- FilterNet's sliding-window inference is within 5% of BUNet's (the same network; the gate is training-only).
- Peak memory is reported for every benchmarked model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: The paper's FilterNet / U-Net time per epoch (16 vs 11 min, Table II).
PAPER_TIME_RATIO = 16 / 11
CPU_FLOP_TOLERANCE = 0.10
GATE_SHARE_LIMIT = 0.015
#: Plans whose widest stage has at most this many features count as small widths (the ``tiny`` preset: 8-64).
SMALL_WIDTH_FEATURES = 64
#: At small widths on a CPU: FilterNet's step at most this multiple of stock nnU-Net's.
SMALL_WIDTH_TIME_RATIO = 1.1
INFERENCE_TOLERANCE = 0.05


@dataclass(frozen=True)
class TargetCheck:
    """One target: ``passed`` is None when it could not be measured (a model or part was not run)."""

    name: str
    passed: bool | None
    detail: str

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]
        return f"{verdict}: {self.name}: {self.detail}"

    def as_dict(self) -> dict:
        return asdict(self)


def _model(result: dict, name: str) -> dict | None:
    return next((m for m in result["models"] if m["name"] == name and m.get("available")), None)


def step_time_follows_flops(result: dict) -> TargetCheck:
    name = "FilterNet step time vs stock nnU-Net follows FLOPs"
    filternet = _model(result, "FilterNet")
    time_ratio = (filternet or {}).get("ratios", {}).get("step_time")
    if time_ratio is None:
        return TargetCheck(name, None, "FilterNet or nnU-Net step time not measured")
    flop_ratio = filternet["ratios"]["flops"]
    detail = f"time ratio {time_ratio:.3f}, FLOP ratio {flop_ratio:.3f}"
    if result["environment"]["device"] == "cpu" and max(result["setup"]["features_per_stage"]) <= SMALL_WIDTH_FEATURES:
        ok = time_ratio <= SMALL_WIDTH_TIME_RATIO
        return TargetCheck(name, ok, f"{detail} (CPU target at small widths: time ratio <= {SMALL_WIDTH_TIME_RATIO})")
    if result["environment"]["device"] == "cpu":
        deviation = time_ratio / flop_ratio - 1
        ok = abs(deviation) <= CPU_FLOP_TOLERANCE
        return TargetCheck(name, ok, f"{detail} ({deviation:+.1%}; CPU target within {CPU_FLOP_TOLERANCE:.0%})")
    limit = 1.0 if flop_ratio < 1 else PAPER_TIME_RATIO
    return TargetCheck(name, time_ratio <= limit, f"{detail} (GPU target <= {limit:.2f})")


def edge_gate_share(result: dict) -> TargetCheck:
    name = "edge gate + edge loss share of FilterNet's step time"
    share = result.get("edge_gate", {}).get("share_of_filternet_step")
    if share is None:
        return TargetCheck(name, None, "edge gate or FilterNet step not measured")
    return TargetCheck(name, share <= GATE_SHARE_LIMIT, f"{share:.2%} (target <= {GATE_SHARE_LIMIT:.1%})")


def inference_matches_bunet(result: dict) -> TargetCheck:
    name = "FilterNet sliding-window inference vs BUNet (same network)"
    to_bunet = (_model(result, "FilterNet") or {}).get("ratios_to_bunet", {})
    ratios = {key.removeprefix("inference_"): r for key, r in to_bunet.items() if key.startswith("inference_")}
    if not ratios:
        return TargetCheck(name, None, "FilterNet or BUNet inference not measured")
    worst = max(abs(r - 1) for r in ratios.values())
    detail = ", ".join(f"{mode} {r:.3f}" for mode, r in ratios.items())
    return TargetCheck(name, worst <= INFERENCE_TOLERANCE, f"{detail} (target within {INFERENCE_TOLERANCE:.0%})")


def memory_reported(result: dict) -> TargetCheck:
    name = "peak memory reported for every model"
    benchmarked = [m for m in result["models"] if m.get("available") and m.get("step_seconds")]
    missing = [m["name"] for m in benchmarked if m.get("peak_bytes") is None]
    if not benchmarked:
        return TargetCheck(name, None, "no training step measured")
    detail = f"missing for {missing}" if missing else f"{len(benchmarked)} models; see docs/benchmarks.md for Table II"
    return TargetCheck(name, not missing, detail)


def check_targets(result: dict) -> list[TargetCheck]:
    """Every target of the issue on ``result`` (the runner's dict), in the issue's order."""
    return [
        step_time_follows_flops(result),
        edge_gate_share(result),
        inference_matches_bunet(result),
        memory_reported(result),
    ]
