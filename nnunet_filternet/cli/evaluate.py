"""``filternet evaluate``: Dice, surface distances and volumes per case, compartment and subject."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import deprecated_alias, jobs_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, metavar="DIR", help="folder of predicted label maps (<case>.nii.gz)")
    parser.add_argument(
        "--labels", required=True, metavar="DIR", help="folder of ground-truth label maps with the same file names"
    )
    parser.add_argument(
        "--csv",
        required=True,
        metavar="FILE",
        help="per-case CSV to write; the per-subject table (mean over _L/_R legs) goes beside it "
        "as <stem>_per_subject.csv",
    )
    parser.add_argument(
        "--splits", default=None, metavar="JSON",
        help="the dataset's splits_final.json: both CSVs gain a fold column (the fold whose network predicted each "
        "case, which filternet compare tests over)",
    )  # fmt: skip
    parser.add_argument("-j", "--jobs", type=jobs_type, default=None, help="worker processes (default: all cores)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="recompute every case (default: reuse the rows of cases whose files and options are unchanged since "
        "the last run into --csv)",
    )
    deprecated_alias(parser, "--ref", "--labels")
    deprecated_alias(parser, "--out", "--csv")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_filternet.metrics.evaluate import evaluate_folders, per_subject_csv_path, read_rows
    from nnunet_filternet.metrics.summary import summary_markdown
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    inputs = {args.pred: "predicted label maps (--pred)", args.labels: "ground-truth label maps (--labels)"}
    # the tables neither over an input nor among the maps (evaluate_folders checks the files again, as a library)
    refuse_inputs_as_outputs(inputs, files=[args.csv, per_subject_csv_path(args.csv)], folders=[Path(args.csv).parent])
    case_csv, subject_csv = evaluate_folders(
        args.pred, args.labels, args.csv, jobs=args.jobs, fresh=args.fresh, splits=args.splits
    )
    print(summary_markdown(read_rows(subject_csv)))
    print(f"wrote {case_csv} and {subject_csv}")
    return 0
