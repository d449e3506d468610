"""``filternet gpu-check``: the GPU path once, on a small phantom, PASS/FAIL per step (``--device cpu``: dry run)."""

from __future__ import annotations

import argparse
import shlex

from nnunet_filternet.cli import at_least_4_subjects, deprecated_values, non_negative_int, positive_float, positive_int

#: Phantom scans of the check: (matrix x, y, z), spacing (mm). ``--small`` is the size of the demo's test.
SCAN = ((256, 256, 16), (1.4, 1.4, 7.0))
SMALL_SCAN = ((128, 128, 12), (2.8, 2.8, 7.0))
#: ``--plans`` identifier -> the plans preset that writes it (None: nnU-Net's own default plans).
PLANS = {"nnUNetPlans": None, "nnUNetPlans_tiny": "tiny"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cuda: the check (default); cpu: its dry run with nnU-Net's CPU rules (no compile, no AMP)",
    )
    parser.add_argument(
        "--workdir", default="filternet_gpu_check", metavar="DIR", help="work folder (default ./filternet_gpu_check)"
    )
    parser.add_argument("--subjects", type=at_least_4_subjects, default=4, help="phantom subjects, >= 4 (default 4)")
    parser.add_argument("--epochs", type=positive_int, default=2, help="training epochs per trainer (default 2)")
    parser.add_argument("--iterations", type=positive_int, default=10, help="iterations per epoch (default 10)")
    parser.add_argument(
        "-p",
        "--plans",
        choices=tuple(PLANS),
        default="nnUNetPlans",
        help="plans identifier trained: nnUNetPlans, nnU-Net's own default plans (default); nnUNetPlans_tiny, the "
        "tiny plans preset, for a fast dry run",
    )
    parser.add_argument("--small", action="store_true", help="phantom scans of 128 x 128 x 12 (default 256 x 256 x 16)")
    parser.add_argument(
        "--bench-args",
        default="--quick",
        metavar="ARGS",
        help="arguments of `filternet bench --device DEVICE` (default: --quick), e.g. '--quick --parts flops'",
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=420.0, help="seconds allowed to each background step (default 420)"
    )
    parser.add_argument(
        "--da-workers",
        type=non_negative_int,
        default=None,
        help="nnU-Net augmentation processes per training (cuda 4, cpu 0)",
    )
    deprecated_values(parser, "--plans", {"nnunet": "nnUNetPlans", "tiny": "nnUNetPlans_tiny"})


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from nnunet_filternet.errors import FilterNetError
    from nnunet_filternet.gpu_check.runner import CheckSettings, GpuCheck, summary
    from nnunet_filternet.training.budget import Budget
    from nnunet_filternet.utils.atomic import write_text

    if args.device == "cuda" and not torch.cuda.is_available():
        raise FilterNetError("--device cuda: expected a CUDA GPU visible to torch, found none (--device cpu: dry run)")
    shape, spacing = SMALL_SCAN if args.small else SCAN
    settings = CheckSettings(
        device=args.device,
        subjects=args.subjects,
        shape=shape,
        spacing=spacing,
        plans_preset=PLANS[args.plans],
        budget=Budget(epochs=args.epochs, iterations=args.iterations, val_iterations=2),
        bench_args=tuple(shlex.split(args.bench_args)),
        timeout_s=args.timeout,
        da_workers=(4 if args.device == "cuda" else 0) if args.da_workers is None else args.da_workers,
    )
    workdir = Path(args.workdir).resolve()
    print(f"filternet gpu-check: device {args.device}, work folder {workdir}", flush=True)
    start = time.perf_counter()
    results = GpuCheck(workdir, settings).run()
    text = summary(results, time.perf_counter() - start)
    print(text, flush=True)
    write_text(workdir / "gpu_check.txt", text.lstrip() + "\n")
    return 0 if all(r.status == "PASS" for r in results) else 1
