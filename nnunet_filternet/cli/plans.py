"""``filternet plans DATASET --preset filternet|tiny|paper``: write a plans preset next to nnUNetPlans.json."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import gpu_memory_gb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="nnU-Net dataset id (e.g. 501) or name (Dataset501_Calf)")
    parser.add_argument(
        "--preset",
        required=True,
        choices=("filternet", "tiny", "paper"),
        help="filternet: FilterNet planned by nnU-Net's planner (nnUNetPlans_FilterNet); tiny: coarse in-plane, "
        "small plans for CPU tests and the demo (nnUNetPlans_tiny); paper: the paper's network (3x3x3 convs, so "
        "zeta 7, 5, 3 on every axis), patch, batch and BN (nnUNetPlans_paper)",
    )
    parser.add_argument(
        "--source-plans",
        default="nnUNetPlans",
        metavar="NAME",
        help="plans in nnUNet_preprocessed/DATASET to start from (default: nnUNetPlans)",
    )
    parser.add_argument(
        "--gpu-memory-gb",
        type=gpu_memory_gb,
        default=8.0,
        metavar="GB",
        help="GPU memory target of the filternet preset's planner (nnU-Net's default: 8)",
    )


def run(args) -> int:
    from nnunet_filternet.plans.presets import write_preset

    result = write_preset(args.dataset, args.preset, args.source_plans, args.gpu_memory_gb)
    print(f"wrote {result.plans_file} (plans {result.plans_name})")
    for name, identifier in result.data_identifiers.items():
        state = "needs preprocessing" if name in result.to_preprocess else "preprocessed"
        print(f"  {name}: data {identifier} ({state})")
    print("next:")
    for command in result.follow_up_commands():
        print(f"  {command}")
    return 0
