"""``filternet report``: the paper's tables and figures from nnU-Net cross-validation results."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import jobs_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results", required=True, nargs="+", metavar="DIR",
        help="$nnUNet_results/DatasetNNN_NAME; several: one per training repeat (the same dataset trained again "
        "into another nnUNet_results), which adds the comparison of every trainer with --reference",
    )  # fmt: skip
    parser.add_argument("--trainers", required=True, nargs="+", help="trainer class names (table column order)")
    parser.add_argument("--reference", required=True, help="trainer the others are tested against")
    parser.add_argument("--out", required=True, help="output folder (report.md, CSV tables, PNG figures)")
    parser.add_argument("--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("--configuration", default="3d_fullres", help="nnU-Net configuration (default: 3d_fullres)")
    parser.add_argument(
        "--gt", default=None, help="ground-truth folder (default: the dataset's gt_segmentations, else labelsTr)"
    )
    parser.add_argument("--images", default=None, help="images for Fig. 4 (default: the dataset's imagesTr)")
    parser.add_argument("-j", "--jobs", type=jobs_type, default=None, help="worker processes (default: all cores)")


def run(args: argparse.Namespace) -> int:
    from nnunet_filternet.report.report import headline_table, write_report
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    inputs = {**{r: "a --results folder" for r in args.results}, args.gt: "--gt", args.images: "--images"}
    refuse_inputs_as_outputs(inputs, whole_folders=[args.out])

    report = write_report(
        args.results,
        args.trainers,
        args.reference,
        args.out,
        plans=args.plans,
        configuration=args.configuration,
        gt_dir=args.gt,
        images_dir=args.images,
        jobs=args.jobs,
    )
    print(headline_table(args.out))
    print(f"wrote {report}")
    return 0
