"""``filternet restore``: leg predictions -> one label map per scan, on the scan's own grid.

Exit codes: 0 done; 1 with --keep-going when some scans could not be restored (listed on stderr);
2 bad input or misuse (one-line reason), and then nothing is written.
"""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import jobs_type


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--pred", required=True, metavar="DIR", help="folder of leg predictions <subject>_<L|R>.nii.gz")
    add("--records", required=True, metavar="LEGS_JSON", help="legs.json written by `filternet convert`")
    add("-o", "--out", required=True, metavar="DIR", help="output folder for the <subject>.nii.gz label maps (uint8)")
    add("-j", "--jobs", type=jobs_type, default=None, help="worker processes (default: all cores)")
    add("--keep-going", action="store_true", help="restore the good scans when others fail; exit 1, list them")


def run(args: argparse.Namespace) -> int:
    import sys

    from nnunet_filternet.dataset_conversion.restore import restoration

    result = restoration(args.pred, args.records, args.out, args.jobs, args.keep_going)
    restored = ", ".join(f"{s} ({'+'.join(sides)})" for s, sides in result.legs.items())
    print(f"restore: {len(result.written)} label map(s) in {args.out}: {restored}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.not_predicted:
        print(f"note: no leg predicted for {len(result.not_predicted)} scan(s), skipped: "
              f"{', '.join(result.not_predicted)}", file=sys.stderr)  # fmt: skip
    for subject, problems in result.incomplete.items():
        print(f"error: {subject}: {'; '.join(problems)}", file=sys.stderr)
    return 1 if result.incomplete else 0
