"""``filternet compare``: a candidate model against a baseline, several training repeats each."""

from __future__ import annotations

import argparse

from nnunet_filternet.cli import deprecated_alias


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, found {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, found {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_filternet.compare.comparison import DEFAULT_METRICS, METRICS
    from nnunet_filternet.statistics import ALPHA

    parser.add_argument(
        "--baseline", required=True, nargs="+", metavar="CSV",
        help="the baseline model's filternet evaluate metrics CSV, one per training repeat (with a fold column from "
        "filternet evaluate --splits: the fold is the unit of the test; without: each subject is its own fold); "
        "differences are candidate - baseline",
    )  # fmt: skip
    parser.add_argument(
        "--candidate", required=True, nargs="+", metavar="CSV",
        help="the candidate model's metrics CSV, one per training repeat (the same subjects)",
    )  # fmt: skip
    parser.add_argument(
        "--names", nargs=2, default=("baseline", "candidate"), metavar=("BASELINE", "CANDIDATE"),
        help="display names of the two models (default: baseline candidate)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics", nargs="+", default=list(DEFAULT_METRICS), choices=list(METRICS), metavar="METRIC",
        help=f"metric columns to compare, of {', '.join(METRICS)} (default: {' '.join(DEFAULT_METRICS)})",
    )  # fmt: skip
    parser.add_argument("--alpha", type=_alpha, default=ALPHA, help=f"significance level (default: {ALPHA})")
    parser.add_argument(
        "--csv", required=True, metavar="FILE", help="comparison CSV to write; the figure goes beside it (.png)"
    )
    deprecated_alias(parser, "--reference", "--baseline")
    deprecated_alias(parser, "--out", "--csv")


def run(args: argparse.Namespace) -> int:
    from nnunet_filternet.compare.files import compare_files, figure_path
    from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

    inputs = {**{p: "a --candidate metrics CSV" for p in args.candidate},
              **{p: "a --baseline metrics CSV" for p in args.baseline}}  # fmt: skip
    refuse_inputs_as_outputs(inputs, files=[args.csv, figure_path(args.csv)])

    result = compare_files(
        args.baseline, args.candidate, args.csv, names=tuple(args.names), metrics=args.metrics, alpha=args.alpha
    )
    print(result.table_markdown)
    print()
    print("\n".join(result.summary))
    print(f"wrote {result.csv} and {result.figure}")
    return 0
