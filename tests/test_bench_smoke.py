"""``filternet bench`` end to end on a tiny plans file, its errors, and the throughput parts on a tiny scan.

Only the machinery is checked (every model measured, FLOPs and memory present, ratios consistent, the
Markdown section written); timings are never asserted.
"""

from __future__ import annotations

import json
import platform

from nnunet_filternet.bench.plans import PHANTOM_SPACING_ZYX
from nnunet_filternet.bench.targets import GATE_SHARE_LIMIT, SMALL_WIDTH_TIME_RATIO
from nnunet_filternet.bench.throughput import ScanSize, conversion_throughput, metric_throughput
from nnunet_filternet.cli import main
from nnunet_filternet.plans.topology import plain_unet_configuration
from tests.conftest import run_cli

MODELS = ["nnU-Net", "ResEnc M", "FilterNet", "BUNet", "UNet-F", "BA-FCN"]


def _tiny_plans(folder):
    """nnUNetPlans.json of a 4-stage 3d_fullres U-Net with 4..32 features on 4 x 32 x 32 patches."""
    config = plain_unet_configuration((4, 32, 32), 2, PHANTOM_SPACING_ZYX)
    kwargs = config["architecture"]["arch_kwargs"]
    kwargs["features_per_stage"] = [4 * 2**i for i in range(kwargs["n_stages"])]
    plans = {
        "dataset_name": "Dataset999_Tiny",
        "plans_name": "nnUNetPlans",
        "label_manager": "LabelManager",
        "configurations": {"3d_fullres": config},
    }
    path = folder / "nnUNetPlans.json"
    path.write_text(json.dumps(plans))
    return path


def test_bench_runs_every_model_on_tiny_plans(tmp_path):
    plans = _tiny_plans(tmp_path)
    before = plans.read_text()
    out = tmp_path / "docs" / "benchmarks.md"
    args = [
        "--device",
        "cpu",
        "--threads",
        "1",
        "--plans-file",
        plans,
        "--configuration",
        "3d_fullres",
        "--rounds",
        "1",
    ]
    r = run_cli("bench", *args, "--quick", "--parts", "training,inference", "--json", "--markdown", out)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert plans.read_text() == before  # the input is only read
    assert result["setup"]["patch_size"] == [4, 32, 32]
    models = {m["name"]: m for m in result["models"]}
    assert list(models) == MODELS
    for m in models.values():
        assert m["available"], m["unavailable_reason"]
        assert m["parameters"] > 0 and m["flops"] > 0 and m["peak_bytes"] > 0
        assert len(m["step_seconds"]) == 1
        assert len(m["step_page_faults"]) == 1 and m["step_page_faults"][0] >= 0
        assert set(m["inference_seconds"]) == {"no_mirroring", "mirroring"}
    stock, filternet, bunet = models["nnU-Net"], models["FilterNet"], models["BUNet"]
    assert stock["ratios"]["flops"] == 1.0 and stock["ratios"]["step_time"] == 1.0
    # halved features below full resolution: fewer FLOPs and parameters than the plain U-Net
    assert filternet["ratios"]["flops"] < 1 and filternet["ratios"]["parameters"] < 1
    # the gate is training-only: same network as BUNet, FLOPs differ by exactly the gate's
    assert filternet["parameters"] == bunet["parameters"]
    assert filternet["flops"] - bunet["flops"] == result["edge_gate"]["flops"]
    assert models["UNet-F"]["flops"] - stock["flops"] == result["edge_gate"]["flops"]
    assert 0 < result["edge_gate"]["share_of_filternet_step"]
    # every target measured, and each verdict follows from the numbers it judges
    targets = {t["name"]: t for t in result["targets"]}
    assert len(targets) == 4 and all(isinstance(t["passed"], bool) for t in targets.values()), targets
    share = result["edge_gate"]["share_of_filternet_step"]
    assert targets["edge gate + edge loss share of FilterNet's step time"]["passed"] == (share <= GATE_SHARE_LIMIT)
    step_target = targets["FilterNet step time vs stock nnU-Net follows FLOPs"]  # small widths (4-32 features)
    assert step_target["passed"] == (filternet["ratios"]["step_time"] <= SMALL_WIDTH_TIME_RATIO), step_target
    assert targets["peak memory reported for every model"]["passed"] is True
    text = out.read_text()
    assert text.count("<!-- filternet-bench:cpu-quick-nnUNetPlans-3d_fullres:begin -->") == 1
    assert "| FilterNet |" in text and "Targets:" in text
    assert "Minor page faults per training step (median over rounds): nnU-Net " in text
    assert f"allocator: {result['environment']['malloc']};" in text
    if platform.libc_ver()[0] == "glibc":  # the CPU run keeps freed memory (utils/malloc.py)
        assert result["environment"]["malloc"].startswith("glibc ")


def test_profile_prints_the_operator_table_of_the_gate(tmp_path, capsys):
    plans = _tiny_plans(tmp_path)
    assert main(["bench", "--device", "cpu", "--plans-file", str(plans), "--profile", "edge gate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FilterNet's edge gate and edge loss, 2 calls, patch [4, 32, 32], batch 2, cpu")
    assert "aten::" in out and "Self CPU time total" in out  # torch.profiler's operator table


def test_profile_of_two_models_attributes_the_step_to_parts(tmp_path, capsys):
    plans = _tiny_plans(tmp_path)
    assert main(["bench", "--device", "cpu", "--plans-file", str(plans), "--profile", "nnU-Net,FilterNet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Own CPU time per training step by part, mean of 3 profiled steps, patch [4, 32, 32]")
    rows = {line.split(" | ")[0].strip("| *"): line for line in out.splitlines() if line.startswith("| ")}
    assert "FilterNet - nnU-Net: ms" in rows["part"]
    for part in ("edge gate + edge loss", "conv: Block B zeta (large kernel)"):
        cells = [c.strip() for c in rows[part].strip("|").split("|")]
        assert float(cells[1]) == 0 and float(cells[3]) > 0  # FilterNet's parts only: nnU-Net spends nothing there
    assert out.count("Self CPU time total") == 2  # then each model's operator table


def test_bench_errors_are_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    assert main(["bench", "--device", "cpu", "--plans-file", str(missing)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"filternet bench: error: {missing}: expected an nnUNetPlans.json (a JSON file), found no such file"
    ]
    assert main(["bench", "--device", "cpu", "--compile"]) == 2
    assert "nnU-Net does not compile on a CPU" in capsys.readouterr().err
    assert main(["bench", "--device", "cpu", "--models", "FilterNet,UNet++", "--parts", "training"]) == 2
    assert "found ['UNet++']" in capsys.readouterr().err
    assert main(["bench", "--device", "cpu", "--profile", "FilterNet,UNet++"]) == 2
    assert "--profile: expected names from" in capsys.readouterr().err


def test_throughput_of_conversion_and_metrics_on_a_tiny_scan():
    scan = ScanSize((112, 64, 6), (3.0, 3.0, 7.0))  # the smallest field of view that holds both phantom legs
    conversion = conversion_throughput(scan, repeats=1)
    assert conversion["scan_shape_xyz"] == [112, 64, 6] and len(conversion["seconds"]) == 1
    assert conversion["scans_per_minute"] == 60 / conversion["seconds"][0]
    metrics = metric_throughput(scan, repeats=2)
    assert metrics["scan_shape_zyx"] == [6, 64, 112] and len(metrics["seconds"]) == 2
    assert metrics["scans_per_second"] > 0


def test_system_malloc_leaves_the_allocator_alone(tmp_path):
    plans = _tiny_plans(tmp_path)
    args = ["--device", "cpu", "--plans-file", plans, "--parts", "flops", "--models", "FilterNet", "--json"]
    r = run_cli("bench", *args, "--system-malloc")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["environment"]["malloc"] == "system default"
    assert result["environment"]["options"]["system_malloc"] is True
