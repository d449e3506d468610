"""``filternet convert``: two-leg scans -> nnU-Net raw dataset (training) or leg images (inference).

Exit codes: 0 all converted; 1 with --keep-going when some inputs failed (listed on stderr);
2 bad input or misuse (one-line reason).
"""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import bounded, dataset_id, deprecated_alias, jobs_type

EPILOG = """modes:
  training:  filternet convert -i DIR --labels DIR -d N --name NAME [--n-folds K]
             -> $nnUNet_raw/DatasetNNN_NAME (imagesTr, labelsTr, dataset.json, legs.json)
                and $nnUNet_preprocessed/DatasetNNN_NAME/splits_final.json
  inference: filternet convert -i DIR -o DIR
             -> DIR/<subject>_<L|R>_0000.nii.gz and DIR/legs.json, for nnUNetv2_predict
see docs/conversion.md"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("-i", "--images", required=True, metavar="DIR", help="folder of scans (NIfTI, NRRD, MHA/MHD, DICOM folders)")
    add("--labels", metavar="DIR", help="training: folder of ground-truth label maps named like the scans (0..5)")
    add("-d", "--dataset-id", type=dataset_id, metavar="N", help="training: nnU-Net dataset id (1..999)")
    add("--name", help="training: dataset name (folder DatasetNNN_NAME)")
    add("-o", "--out", metavar="DIR", help="inference: output folder for the leg images and legs.json")
    add(
        "--n-folds",
        type=bounded(int, lambda v: v >= 2, "an integer >= 2"),
        default=4,
        metavar="K",
        help="training: number of cross-validation folds, written to splits_final.json (default 4)",
    )
    add(
        "--seed",
        type=bounded(int, lambda v: v >= 0, "an integer >= 0"),
        default=0,
        metavar="S",
        help="training: seed of the folds (default 0)",
    )
    csv_help = "training: CSV with columns subject, group (healthy|DM1) (default: subjects.csv beside the images)"
    add("--subjects-csv", metavar="FILE", help=csv_help)
    add("-j", "--jobs", type=jobs_type, default=None, help="worker processes (default: all cores)")
    add("--keep-going", action="store_true", help="convert the good scans when some fail; exit 1 and list the failures")
    add(
        "--allow-unlabelled-legs",
        action="store_true",
        help="training: keep a leg without any labelled compartment as an all-background case (listed in "
        "dataset.json); by default such a leg is an error",
    )
    deprecated_alias(parser, "--folds", "--n-folds")


def run(args: argparse.Namespace) -> int:
    from nnunet_filternet.dataset_conversion.convert import inference_conversion, print_result, training_conversion
    from nnunet_filternet.errors import FilterNetError

    training = [a for a in ("labels", "dataset_id", "name") if getattr(args, a) is not None]
    if args.out is not None:
        if training or args.allow_unlabelled_legs:
            flag = training[0].replace("_", "-") if training else "allow-unlabelled-legs"
            raise FilterNetError(f"--out (inference) cannot be combined with --{flag}")
        result = inference_conversion(args.images, args.out, args.jobs, args.keep_going)
        print_result(result, "inference")
    else:
        missing = [a for a in ("labels", "dataset_id", "name") if a not in training]
        if missing:
            flags = ", ".join("--" + m.replace("_", "-") for m in missing)
            raise FilterNetError(f"training mode needs {flags} (or give --out for inference mode)")
        result = training_conversion(
            args.images, args.labels, args.dataset_id, args.name, folds=args.n_folds, seed=args.seed,
            jobs=args.jobs, keep_going=args.keep_going, subjects_csv=args.subjects_csv,
            allow_unlabelled_legs=args.allow_unlabelled_legs,
        )  # fmt: skip
        print_result(result, "training")
    return 1 if result.failed else 0
