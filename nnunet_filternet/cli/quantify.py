"""``filternet quantify``: per-compartment volume, T1 signal and fat fraction; Slicer / ITK-SNAP colour tables."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import deprecated_alias, jobs_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--images", metavar="DIR", help="T1 images (<case>.nii.gz or <case>_0000.nii.gz)")
    parser.add_argument(
        "--labels", metavar="DIR", help="label maps to measure, manual or predicted (<case>.nii.gz): leg cases "
        "<subject>_L/_R or full scans",
    )  # fmt: skip
    parser.add_argument("--csv", metavar="FILE", help="biomarker CSV to write (colour tables are written beside it)")
    parser.add_argument(
        "--subjects-csv", default=None, metavar="FILE", help="CSV with a 'subject' column; other columns are appended"
    )
    parser.add_argument(
        "--fat", default=None, metavar="DIR", help="Dixon fat images (with --water): adds fat_fraction_dixon"
    )
    parser.add_argument("--water", default=None, metavar="DIR", help="Dixon water images (with --fat)")
    parser.add_argument(
        "--colour-table",
        metavar="DIR",
        default=None,
        help="write the 3D Slicer (.ctbl) and ITK-SNAP label tables into DIR (alone: only that)",
    )
    parser.add_argument("-j", "--jobs", type=jobs_type, default=None, help="worker processes (default: all cores)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="recompute every subject (default: reuse the rows of subjects whose files and options are unchanged "
        "since the last run into --csv)",
    )
    deprecated_alias(parser, "--out", "--csv")


def _refuse_outputs_among_inputs(args: argparse.Namespace, folder, files=()) -> None:
    """The tables go to ``folder`` (--colour-table DIR, or the folder of --csv): not over an input, nor into an
    input folder (checked before anything is written)."""
    from pathlib import Path

    from nnunet_filternet.quantify.colour_table import ITKSNAP_FILE, SLICER_FILE
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    inputs = {args.images: "images (--images)", args.labels: "label maps (--labels)", args.fat: "--fat",
              args.water: "--water", args.subjects_csv: "--subjects-csv"}  # fmt: skip
    folder = Path(folder)
    refuse_inputs_as_outputs(inputs, files=[folder / SLICER_FILE, folder / ITKSNAP_FILE, *files], folders=[folder])


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnunet_filternet.errors import FilterNetError
    from nnunet_filternet.quantify.colour_table import write_colour_tables

    wanted = (args.images, args.labels, args.csv)
    if all(wanted):  # before anything is written, the colour tables too
        from nnunet_filternet.quantify.biomarkers import output_files

        _refuse_outputs_among_inputs(args, Path(args.csv).parent, output_files(args.csv))
    if args.colour_table is not None:
        _refuse_outputs_among_inputs(args, args.colour_table)
        for path in write_colour_tables(args.colour_table):
            print(f"wrote {path}")
        if not any(wanted):
            return 0
    if not all(wanted):
        raise FilterNetError("expected --images, --labels and --csv (or only --colour-table DIR)")
    from nnunet_filternet.quantify.biomarkers import quantify_folder

    out = quantify_folder(
        args.images, args.labels, args.csv, subjects_csv=args.subjects_csv, fat_dir=args.fat, water_dir=args.water,
        jobs=args.jobs, fresh=args.fresh,
    )  # fmt: skip
    print(f"wrote {out} (colour tables beside it)")
    return 0
