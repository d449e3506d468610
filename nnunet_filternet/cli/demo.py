"""``filternet demo``: phantom -> convert -> nnU-Net plan/preprocess/train/predict -> restore -> report."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import at_least_4_subjects, bounded, deprecated_alias, jobs_type, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workdir", default="filternet_demo", metavar="DIR", help="work folder (default: ./filternet_demo)"
    )
    parser.add_argument(
        "--setup",
        choices=("auto", "cpu", "study", "gpu"),
        default="auto",
        help="cohort, plans, folds and training budget: "
        "cpu: small cohort, tiny plans, fold 0, ~4 min training per trainer; study: 32 subjects in 8 folds, "
        "the tiny plans' 2d configuration, FilterNet against stock nnU-Net with a verdict, at most 90 minutes "
        "(docs/study.md); gpu: 40 subjects at full resolution, nnU-Net's 3d_fullres plans, 4 folds; auto: gpu "
        "when CUDA is available, else cpu (default)",
    )
    parser.add_argument(
        "--subjects",
        type=at_least_4_subjects,
        help="cohort size (default: the setup's)",
    )
    parser.add_argument(
        "-f",
        "--folds",
        type=bounded(int, lambda v: 0 <= v <= 15, "a fold number 0-15"),
        nargs="+",
        metavar="K",
        help="fold ids to train, of the setup's folds (0 1 2 3; the study's 0-7) (default: all the setup's)",
    )
    parser.add_argument(
        "-tr", "--trainers", nargs="+", metavar="TRAINER",
        help="nnU-Net trainers, the baseline last: every other is compared with it (default: nnUNetTrainerFilterNet "
        "nnUNetTrainer)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=positive_int, metavar="N",
        help="train every trainer and fold N times (default: the setup's; a rerun with a larger N trains "
        "only the new repeats) and judge the comparison against the run-to-run spread",
    )  # fmt: skip
    parser.add_argument("-j", "--jobs", type=jobs_type, help="worker processes for cohort, conversion and metrics")
    deprecated_alias(parser, "--preset", "--setup")


def check_arguments(args: argparse.Namespace) -> str | None:
    """The problem with arguments that are valid one by one but not together (``--folds`` beyond the setup's)."""
    if args.folds is None:
        return None
    from nnunet_filternet.pipeline.presets import resolve

    n_folds = resolve(args.setup).n_folds
    bad = sorted({f for f in args.folds if f >= n_folds})
    if bad:
        return f"argument --folds: {bad}: the {args.setup} setup's folds are 0 to {n_folds - 1}"
    return None


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_filternet.pipeline.demo import run_demo
    from nnunet_filternet.pipeline.presets import resolve

    preset = resolve(args.setup)
    print(f"filternet demo: setup {preset.name}, work folder {Path(args.workdir).resolve()}", flush=True)
    report = run_demo(
        args.workdir,
        preset,
        subjects=args.subjects,
        folds=args.folds,
        trainers=args.trainers,
        jobs=args.jobs,
        repeats=args.repeats,
    )
    from nnunet_filternet.report.report import headline_table

    print(f"\nreport: {report}\n")
    print(headline_table(report.parent))
    return 0
