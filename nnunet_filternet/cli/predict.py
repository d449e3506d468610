"""``filternet predict``: segment new scans (NIfTI, NRRD, MHA or DICOM series folders) with a trained model.

Exit codes: 0 every scan segmented and quantified; 1 some scans failed (the others are written; the failed ones
are named on stderr and in <out>/failed.csv); 2 bad input or misuse (one-line reason), nothing written.
"""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import fold_number, jobs_type


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


def run(args: argparse.Namespace) -> int:
    from nnunet_filternet.pipeline.predict import predict_scans, print_summary

    result = predict_scans(
        args.images, args.out, args.results, trainer=args.trainer, plans=args.plans,
        configuration=args.configuration, folds=args.folds, device=args.device, checkpoint=args.checkpoint,
        jobs=args.jobs, disable_tta=args.disable_tta,
    )  # fmt: skip
    print_summary(result)
    return 1 if result.failed else 0
