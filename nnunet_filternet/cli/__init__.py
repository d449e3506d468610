"""The ``filternet`` command: one verb per job.

Each verb lives in ``nnunet_filternet/cli/<verb>.py`` (``-`` written ``_``) and exposes ``add_arguments(parser)`` and
``run(args) -> int``. Verb modules are imported lazily so that ``filternet --help`` stays fast (no
torch import). Misuse (argparse), bad input (:class:`~nnunet_filternet.errors.FilterNetError`) and files
that cannot be read or written (``OSError``) exit with code 2 and a one-line reason naming the file.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys

#: verb -> one-line description. The module ``nnunet_filternet.cli.<verb>`` implements it.
VERBS: dict[str, str] = {
    "phantom": "make a synthetic two-leg T1 MR cohort with compartment labels",
    "convert": "scans -> nnU-Net raw dataset of single (mirrored) legs, with subject-grouped folds",
    "restore": "leg predictions -> label maps on the original scans",
    "plans": "write FilterNet / tiny / paper plans presets from a dataset's nnUNetPlans.json",
    "evaluate": "per-compartment Dice and surface distances of label maps against references",
    "report": "the paper's tables and figures from nnU-Net cross-validation results",
    "compare": "a candidate model against a reference over training repeats: differences, intervals, verdicts",
    "quantify": "per-compartment volume, T1 signal and fat fraction biomarkers",
    "demo": "the whole pipeline end to end on the synthetic cohort",
    "predict": "segment new scans with a trained model (convert, nnU-Net predict, restore, quantify)",
    "bench": "benchmark FilterNet against stock nnU-Net (time, memory, FLOPs)",
    "gpu-check": "one-shot check of the GPU path: compile, AMP, training, prediction, benchmark (PASS/FAIL per step)",
}


def bounded(cast, accept, what: str):
    """An argparse ``type`` that converts with ``cast`` and accepts values for which ``accept`` is true.

    Every verb validates its numbers this way, so misuse is refused before any work, with exit code 2.
    """

    def convert(text: str):
        try:
            value = cast(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return convert


#: ``-j/--jobs`` of every verb: a positive integer (0 and negative numbers are refused, not clamped).
jobs_type = bounded(int, lambda v: v >= 1, "a positive number of worker processes")
#: Counts and sizes shared by the verbs' options.
positive_int = bounded(int, lambda v: v >= 1, "a positive integer")
non_negative_int = bounded(int, lambda v: v >= 0, "an integer >= 0")
positive_float = bounded(float, lambda v: math.isfinite(v) and v > 0, "a positive, finite number")
at_least_4_subjects = bounded(int, lambda v: v >= 4, "at least 4 subjects (4 folds)")
#: nnU-Net fold numbers (``fold_<k>``).
fold_number = bounded(int, lambda v: v >= 0, "a fold number >= 0")
#: nnU-Net dataset ids.
dataset_id = bounded(int, lambda v: 1 <= v <= 999, "an nnU-Net dataset id from 1 to 999")
#: An odd positive count (sub-slices averaged into a slice).
odd_positive_int = bounded(int, lambda v: v >= 1 and v % 2 == 1, "an odd positive integer")
#: GPU memory a planner plans for: nnU-Net's planner shrinks the patch until its estimate fits, which never
#: ends for 0 or less; an infinite (or huge) target makes its batch size infinite.
gpu_memory_gb = bounded(float, lambda v: math.isfinite(v) and 0 < v <= 1024, "a GPU memory in GB, > 0 and <= 1024")


def _module_name(verb: str) -> str:
    """``nnunet_filternet.cli.<verb>``, with ``-`` as ``_`` (``gpu-check`` lives in ``gpu_check.py``)."""
    return f"nnunet_filternet.cli.{verb.replace('-', '_')}"


def _available_verbs() -> dict[str, str]:
    """Verbs whose module exists in this installation."""
    out = {}
    for verb, help_text in VERBS.items():
        if importlib.util.find_spec(_module_name(verb)) is not None:
            out[verb] = help_text
    return out


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """Top-level parser; only the named verb's module is imported (all of them when ``verb`` is None)."""
    parser = argparse.ArgumentParser(prog="filternet", description=__doc__.splitlines()[0])
    from nnunet_filternet import __version__

    parser.add_argument("--version", action="version", version=f"nnunet-filternet {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, help_text in _available_verbs().items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if verb is None or name == verb:
            module = importlib.import_module(_module_name(name))
            module.add_arguments(p)
            p.set_defaults(_module=module, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``filternet``. Returns the process exit code."""
    from nnunet_filternet.errors import FilterNetError

    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 console shows "?" rather than crashing on "±"
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in VERBS else None)
    args = parser.parse_args(argv)
    check = getattr(args._module, "check_arguments", None)
    problem = check(args) if check else None
    if problem:  # arguments that are wrong only together (a fold the preset lacks): usage error, exit 2
        args._parser.error(problem)
    try:
        return int(args._module.run(args) or 0)
    except FilterNetError as e:
        print(f"filternet {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be read or written, wherever it is opened: name it, no traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"filternet {args.verb}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"filternet {args.verb}: interrupted; rerun the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
