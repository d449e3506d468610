"""``filternet demo``: phantom -> convert -> nnU-Net plan/preprocess/train/predict -> restore -> report."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import bounded, jobs_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="filternet_demo", help="work folder (default: ./filternet_demo)")
    parser.add_argument(
        "--preset",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="cpu: small cohort, tiny plans, fold 0, ~4 min training per trainer; gpu: 40 subjects at full "
        "resolution, nnU-Net's 3d_fullres plans, 4 folds; auto: gpu when CUDA is available (default)",
    )
    parser.add_argument(
        "--subjects",
        type=bounded(int, lambda v: v >= 4, "at least 4 subjects (4 folds)"),
        help="cohort size (default: the preset's)",
    )
    parser.add_argument("--folds", type=int, nargs="+", help="folds to train, of 0 1 2 3 (default: the preset's)")
    parser.add_argument(
        "--trainers", nargs="+", help="nnU-Net trainers (default: nnUNetTrainerFilterNet nnUNetTrainer)"
    )
    parser.add_argument("-j", "--jobs", type=jobs_type, help="worker processes for cohort, conversion and metrics")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_filternet.pipeline.demo import run_demo
    from nnunet_filternet.pipeline.presets import resolve

    preset = resolve(args.preset)
    print(f"filternet demo: preset {preset.name}, work folder {Path(args.workdir).resolve()}", flush=True)
    report = run_demo(
        args.workdir, preset, subjects=args.subjects, folds=args.folds, trainers=args.trainers, jobs=args.jobs
    )
    from nnunet_filternet.report.report import headline_table

    print(f"\nreport: {report}\n")
    print(headline_table(report.parent))
    return 0
