"""``filternet phantom``: write a synthetic two-leg calf T1 MR cohort (images, labels, subjects.csv)."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import bounded, jobs_type, non_negative_int, odd_positive_int, positive_float, positive_int
from nnunet_filternet.phantom.degrade import KINDS

_size = bounded(int, lambda v: v >= 2, "an integer >= 2 (voxels)")
_share = bounded(float, lambda v: 0 <= v <= 1, "a share of the subjects between 0 and 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="cohort folder to create")
    parser.add_argument("--subjects", type=positive_int, default=40, metavar="N", help="number of subjects (40)")
    parser.add_argument(
        "--healthy",
        type=non_negative_int,
        default=None,
        metavar="H",
        help="number of healthy subjects, the rest are DM1 (default: a quarter of --subjects, 10 of 40)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="cohort seed, an integer >= 0 (0)")
    parser.add_argument(
        "--shape", type=_size, nargs=3, default=[512, 512, 30], metavar=("X", "Y", "Z"),
        help="image size in voxels (512 512 30)",
    )  # fmt: skip
    parser.add_argument(
        "--spacing", type=positive_float, nargs=3, default=[0.7, 0.7, 7.0], metavar=("X", "Y", "Z"),
        help="voxel size in mm (0.7 0.7 7.0); shape x spacing must hold both legs (up to about 340 x 185 mm)",
    )  # fmt: skip
    parser.add_argument(
        "--subslices", type=odd_positive_int, default=5, metavar="K",
        help="odd number of thin sub-slices averaged into each thick slice (partial volume; 5)",
    )  # fmt: skip
    parser.add_argument("--preview", metavar="PNG", help="also write a Fig. 1-like panel (healthy and DM1 slice)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cohort folder")
    parser.add_argument("--save-bias", action="store_true", help="also write the true bias field to DIR/bias/")
    parser.add_argument(
        "--save-fat-fraction", action="store_true", help="also write the true fat fraction to DIR/fatfraction/"
    )
    parser.add_argument(
        "--degrade", type=_share, default=0.0, metavar="SHARE",
        help="degrade this share of the subjects the ways scans fail (strong bias, noise, motion ghosting, a leg "
        "cut by the field of view, fat-suppression-like contrast loss, a flipped header, a missing leg), "
        "recorded in DIR/degradations.csv (default 0: a clean cohort)",
    )  # fmt: skip
    parser.add_argument(
        "--degrade-kinds", nargs="+", choices=KINDS, metavar="KIND",
        help=f"the degradations dealt out in turn (default: all of {', '.join(KINDS)})",
    )  # fmt: skip
    parser.add_argument("-j", "--jobs", type=jobs_type, default=None, help="worker processes (all cores)")


def run(args: argparse.Namespace) -> int:
    from nnunet_filternet.phantom.cohort import make_cohort

    healthy = round(args.subjects / 4) if args.healthy is None else args.healthy
    out = make_cohort(
        args.out,
        n_subjects=args.subjects,
        n_healthy=healthy,
        seed=args.seed,
        shape=tuple(args.shape),
        spacing=tuple(args.spacing),
        save_bias=args.save_bias,
        save_fat_fraction=args.save_fat_fraction,
        preview=args.preview,
        overwrite=args.overwrite,
        jobs=args.jobs,
        n_subslices=args.subslices,
        degrade=args.degrade,
        degrade_kinds=tuple(args.degrade_kinds) if args.degrade_kinds else None,
    )
    print(f"wrote {args.subjects} subjects ({healthy} healthy, {args.subjects - healthy} DM1) to {out}")
    if args.degrade > 0:
        print(f"degraded: {round(args.degrade * args.subjects)} of them, listed in {out / 'degradations.csv'}")
    if args.preview:
        print(f"preview: {args.preview}")
    return 0
