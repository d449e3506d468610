"""``filternet report``: the paper's tables and figures from nnU-Net cross-validation results."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import deprecated_alias, jobs_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results", required=True, nargs="+", metavar="DIR",
        help="$nnUNet_results/DatasetNNN_NAME; several: one per training repeat (the same dataset trained again "
        "into another nnUNet_results), which adds the comparison of every trainer with --baseline",
    )  # fmt: skip
    parser.add_argument(
        "-tr",
        "--trainers",
        required=True,
        nargs="+",
        metavar="TRAINER",
        help="trainer class names (table column order)",
    )
    parser.add_argument(
        "--baseline", required=True, metavar="TRAINER",
        help="the trainer every other is compared with (paired tests of Table I, comparison over repeats: "
        "differences are trainer - baseline; Fig. 4 shows its worst, median and best subject)",
    )  # fmt: skip
    parser.add_argument(
        "-o", "--out", required=True, metavar="DIR", help="output folder (report.md, CSV tables, PNG figures)"
    )
    parser.add_argument(
        "-p", "--plans", default="nnUNetPlans", metavar="NAME", help="plans identifier (default: nnUNetPlans)"
    )
    parser.add_argument(
        "-c",
        "--configuration",
        default="3d_fullres",
        metavar="NAME",
        help="nnU-Net configuration (default: 3d_fullres)",
    )
    parser.add_argument(
        "--labels", default=None, metavar="DIR",
        help="ground-truth folder (default: the dataset's gt_segmentations, else labelsTr)",
    )  # fmt: skip
    parser.add_argument(
        "-i", "--images", default=None, metavar="DIR", help="images for Fig. 4 (default: the dataset's imagesTr)"
    )
    parser.add_argument("-j", "--jobs", type=jobs_type, default=None, help="worker processes (default: all cores)")
    deprecated_alias(parser, "--reference", "--baseline")
    deprecated_alias(parser, "--gt", "--labels")


def run(args: argparse.Namespace) -> int:
    from nnunet_filternet.report.report import headline_table, write_report
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    inputs = {**{r: "a --results folder" for r in args.results}, args.labels: "--labels", args.images: "--images"}
    refuse_inputs_as_outputs(inputs, whole_folders=[args.out])

    report = write_report(
        args.results,
        args.trainers,
        args.baseline,
        args.out,
        plans=args.plans,
        configuration=args.configuration,
        gt_dir=args.labels,
        images_dir=args.images,
        jobs=args.jobs,
    )
    print(headline_table(args.out))
    print(f"wrote {report}")
    return 0
