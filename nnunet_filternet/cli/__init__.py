"""The ``filternet`` command: one verb per job.

Each verb lives in ``nnunet_filternet/cli/<verb>.py`` (``-`` written ``_``) and exposes ``add_arguments(parser)`` and
``run(args) -> int``. Verb modules are imported lazily so that ``filternet --help`` stays fast (no
torch import). Misuse (argparse), bad input (:class:`~nnunet_filternet.errors.FilterNetError`) and files
that cannot be read or written (``OSError``) exit with code 2 and a one-line reason naming the file.

One name per concept in every verb, nnU-Net's short option beside ours where nnU-Net has one:

==========================  ====================================================================================
option                      meaning
==========================  ====================================================================================
``-i/--images DIR``         the scans read (a folder)
``--labels DIR``            label maps: the ground truth (``convert``, ``evaluate``, ``report``); in ``quantify``
                            the label maps measured, manual or predicted
``-o/--out DIR``            the folder written; a single file written is ``--csv FILE`` (``evaluate``,
                            ``compare``, ``quantify``) or ``--markdown FILE`` (``bench``)
``-d/--dataset-id N``       an nnU-Net dataset id
``-c/--configuration``      an nnU-Net configuration (``2d``, ``3d_fullres``)
``-f/--folds K [K ...]``    fold ids (``fold_<K>``); a number of folds is ``--n-folds``
``-tr/--trainer(s)``        nnU-Net trainer class names
``-p/--plans NAME``         a plans identifier (``nnUNetPlans``, ``nnUNetPlans_tiny``); a plans JSON file is
                            ``--plans-file``, a plans preset ``filternet plans --preset``
``-chk/--checkpoint``       a checkpoint file name
``--baseline``              the model the others are compared with (``compare``, ``report``): differences are
                            other - baseline
``--repeats N``             training repeats (a benchmark's timed rounds are ``--rounds``)
``--setup`` / ``--size``    the demo's setup (``cpu``, ``study``, ``gpu``) / the benchmark's built-in sizes
==========================  ====================================================================================

Old spellings (``--ref``, ``--gt``, ``--reference``, convert's ``--folds K``, bench's ``--plans FILE``, ...) still
parse for one release, with one warning each on stderr (:func:`deprecated_alias`).
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


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that knows the deprecated spellings of its options (:func:`deprecated_alias`).

    Before parsing, every old spelling in the arguments is replaced by the current one and named once on stderr
    (``filternet evaluate: warning: --ref is deprecated, use --labels``), so the current option's type, choices,
    ``required`` and help apply unchanged and ``--help`` shows only the current spelling. Sub-parsers (the verbs)
    are of this class too, each with its own spellings.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: old option string -> current one.
        self.deprecated_options: dict[str, str] = {}
        #: option string -> {old value: current value}.
        self.deprecated_values: dict[str, dict[str, str]] = {}

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else args
        return super().parse_known_args(self._current_spellings([str(a) for a in args]), namespace)

    def _current_spellings(self, args: list[str]) -> list[str]:
        """``args`` with old option names and values replaced by the current ones (nothing after ``--``)."""
        out, warned = [], set()

        def warn(old: str, new: str) -> None:
            if old not in warned:
                warned.add(old)
                print(f"{self.prog}: warning: {old} is deprecated, use {new}", file=sys.stderr)

        value_of = None  # the option whose value the next argument is, when that option has deprecated values
        for i, arg in enumerate(args):
            if arg == "--":
                return out + args[i:]
            if value_of is not None:
                new_value = self.deprecated_values[value_of].get(arg)
                if new_value is not None:
                    warn(f"{value_of} {arg}", f"{value_of} {new_value}")
                    arg = new_value
                out.append(arg)
                value_of = None
                continue
            name, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if name in self.deprecated_options:
                warn(name, self.deprecated_options[name])
                name = self.deprecated_options[name]
            if name in self.deprecated_values:
                if not equals:
                    value_of = name
                elif value in self.deprecated_values[name]:
                    warn(f"{name} {value}", f"{name} {self.deprecated_values[name][value]}")
                    value = self.deprecated_values[name][value]
            out.append(name + equals + value)
        return out


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Let ``parser`` accept the option string ``old`` for its option ``new`` (one release), with one warning.

    Args:
        parser: a :class:`Parser` (every ``filternet`` verb's parser is one) that has the option ``new``.
        old: the former option string, e.g. ``--ref``; it must not be an option of ``parser`` any more.
        new: the current option string, e.g. ``--labels``.
    """
    _check_parser(parser, new)
    if old in parser._option_string_actions:
        raise ValueError(f"deprecated_alias: {old} is still an option of {parser.prog}")
    parser.deprecated_options[old] = new


def deprecated_values(parser: argparse.ArgumentParser, option: str, renamed: dict[str, str]) -> None:
    """Let ``parser``'s ``option`` (every spelling of it) accept the old values in ``renamed`` (old -> current)."""
    action = _check_parser(parser, option)
    for spelling in action.option_strings:
        parser.deprecated_values.setdefault(spelling, {}).update(renamed)


def _check_parser(parser: argparse.ArgumentParser, option: str) -> argparse.Action:
    if not isinstance(parser, Parser):
        raise TypeError(f"deprecated spellings need a nnunet_filternet.cli.Parser, found {type(parser).__name__}")
    if option not in parser._option_string_actions:
        raise ValueError(f"{parser.prog} has no option {option}")
    return parser._option_string_actions[option]


#: The shared option vocabulary, shown by ``filternet --help`` (the module docstring has the full table).
VOCABULARY = """options mean one thing in every verb (nnU-Net's short option beside ours):
  -i/--images DIR      scans read            --labels DIR        ground-truth (or measured) label maps
  -o/--out DIR         folder written        --csv/--markdown F  a single file written
  -d/--dataset-id N    nnU-Net dataset id    -c/--configuration  nnU-Net configuration
  -f/--folds K [K ..]  fold ids              --n-folds K         a number of folds
  -tr/--trainer(s)     trainer class names   -p/--plans NAME     plans identifier (a JSON file: --plans-file)
  -chk/--checkpoint    checkpoint file name  --baseline          the model the others are compared with
old spellings (--ref, --gt, --reference, ...) still work for one release, with a warning"""


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
    parser = Parser(
        prog="filternet",
        description=__doc__.splitlines()[0],
        epilog=VOCABULARY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
