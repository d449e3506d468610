"""``filternet predict``: segment new scans (NIfTI, NRRD, MHA or DICOM series folders) with a trained model.

Exit codes: 0 every scan segmented and quantified; 1 some scans failed (the others are written; the failed ones
are named on stderr and in <out>/failed.csv) or, merging, some scans have no finished prediction yet; 2 bad input
or misuse (one-line reason), nothing written.

A cohort is split nnU-Net's way (``--num-parts N --part-id K``, K from 0): each part predicts its scans into the
same ``--out`` (side by side, on other GPUs or nodes), then ``--merge`` with the same arguments writes the cohort's
tables. docs/predict.md.
"""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import fold_number, jobs_type, non_negative_int, positive_int
from nnunet_filternet.pipeline.predict import CHUNK_SCANS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-i", "--images", required=True, metavar="DIR", help="folder of scans (files or DICOM series sub-folders)"
    )
    parser.add_argument(
        "-o", "--out", required=True, metavar="DIR", help="output folder: <subject>.nii.gz label maps + biomarkers.csv"
    )
    parser.add_argument(
        "--results", required=True, metavar="DIR", help="$nnUNet_results/DatasetNNN_NAME of the trained model"
    )
    parser.add_argument(
        "-tr",
        "--trainer",
        default="nnUNetTrainerFilterNet",
        metavar="TRAINER",
        help="trainer name (default: %(default)s)",
    )
    parser.add_argument(
        "-p", "--plans", metavar="NAME", help="plans identifier (default: the only one trained with this trainer)"
    )
    parser.add_argument("-c", "--configuration", default="3d_fullres", metavar="NAME", help="default: %(default)s")
    parser.add_argument(
        "-f", "--folds", type=fold_number, nargs="+", metavar="K", help="fold ids to ensemble (default: all trained)"
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda when available (default)"
    )
    parser.add_argument(
        "-chk", "--checkpoint", default="checkpoint_final.pth", metavar="FILE", help="default: %(default)s"
    )
    parser.add_argument("--disable-tta", action="store_true", help="no mirroring test-time augmentation")
    parser.add_argument("-j", "--jobs", type=jobs_type, help="worker processes for conversion and restore")
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch threads of this run (default: one per core); parts side by side on one CPU machine: the "
        "cores divided by the parts, each",
    )
    cohort = parser.add_argument_group("cohort scale (docs/predict.md)")
    cohort.add_argument(
        "--num-parts",
        "-num_parts",
        type=positive_int,
        default=1,
        help="split the scans into this many parts, run side by side (default: %(default)s)",
    )
    cohort.add_argument(
        "--part-id",
        "-part_id",
        type=non_negative_int,
        default=0,
        help="this run's part, 0 to num-parts - 1: every num-parts-th scan by name from the part-id-th "
        "(as nnUNetv2_predict)",
    )
    cohort.add_argument(
        "--merge",
        action="store_true",
        help="predict nothing: write biomarkers.csv, qc.csv and failed.csv of every finished scan",
    )
    cohort.add_argument(
        "--overwrite",
        action="store_true",
        help="predict every scan again (default: skip scans finished from the same scan and model)",
    )
    cohort.add_argument(
        "--chunk-size",
        type=positive_int,
        default=CHUNK_SCANS,
        help="scans carried through the steps at a time; memory grows with it (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from nnunet_filternet.errors import FilterNetError
    from nnunet_filternet.pipeline.predict import merge_predictions, predict_scans, print_summary

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    model = dict(
        trainer=args.trainer, plans=args.plans, configuration=args.configuration, folds=args.folds,
        checkpoint=args.checkpoint, disable_tta=args.disable_tta,
    )  # fmt: skip
    if args.merge:
        given = [o for o, v in (("--num-parts", args.num_parts != 1), ("--part-id", args.part_id != 0),
                                ("--overwrite", args.overwrite)) if v]  # fmt: skip
        if given:
            raise FilterNetError(f"--merge merges the tables of every part; leave out {', '.join(given)}")
        result = merge_predictions(args.images, args.out, args.results, **model)
    else:
        result = predict_scans(
            args.images, args.out, args.results, device=args.device, jobs=args.jobs, num_parts=args.num_parts,
            part_id=args.part_id, overwrite=args.overwrite, chunk_size=args.chunk_size, **model,
        )  # fmt: skip
    print_summary(result)
    return 1 if result.failed or result.tally.missing else 0
