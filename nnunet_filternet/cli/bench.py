"""``filternet bench``: FilterNet against stock nnU-Net on cost (time, memory, FLOPs), side by side."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys

from nnunet_filternet.bench.models import MODELS
from nnunet_filternet.bench.options import EDGE_GATE, PARTS, BenchOptions
from nnunet_filternet.bench.plans import SIZES
from nnunet_filternet.cli import deprecated_alias, positive_int


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="where to run (default: cuda if available, else cpu)"
    )
    parser.add_argument(
        "--plans-file", metavar="FILE", help="an nnUNetPlans.json (default: built-in phantom-leg plans)"
    )
    parser.add_argument(
        "-c", "--configuration", metavar="NAME", help="configuration in --plans-file (default: 3d_fullres)"
    )
    parser.add_argument(
        "--rounds", type=positive_int, default=None, metavar="N", help="timed rounds (default 5, --quick 3)"
    )
    parser.add_argument("--quick", action="store_true", help="small patch, volume and scans (a few minutes on a CPU)")
    parser.add_argument(
        "--size",
        choices=tuple(SIZES),
        help="patch, batch and volume of the built-in plans (default: quick with --quick, else the device's), e.g. "
        "the cuda sizes on a CPU",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of Markdown")
    parser.add_argument(
        "--markdown",
        metavar="FILE",
        help="also put the Markdown section into FILE (e.g. docs/benchmarks.md), in place",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the networks (CUDA only; default: nnU-Net's rule, i.e. the nnUNet_compile variable)",
    )
    parser.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="CPU: leave the C library's allocator as it is (default: it keeps freed memory for reuse, so steps do "
        "not fault their memory in again; see docs/benchmarks.md)",
    )
    parser.add_argument("--models", type=_names, metavar="A,B", help=f"subset of {', '.join(m.name for m in MODELS)}")
    parser.add_argument(
        "--parts",
        type=_names,
        metavar="A,B",
        help=f"subset of {', '.join(PARTS)} (default: all; FLOPs and parameters are always counted)",
    )
    parser.add_argument(
        "--profile",
        metavar="MODEL[,MODEL]",
        help="instead of benchmarking, print torch.profiler's operator table of MODEL's training step "
        f"(or of FilterNet's '{EDGE_GATE}' and edge loss alone); with several models (e.g. nnU-Net,FilterNet), "
        "first their time per part of the step side by side (gate, loss, convs by role, norm, ...; the first is "
        "the reference), then each operator table",
    )
    deprecated_alias(parser, "--plans", "--plans-file")
    deprecated_alias(parser, "--repeats", "--rounds")
    deprecated_alias(parser, "--preset", "--size")
    deprecated_alias(parser, "--out", "--markdown")


def _device(requested: str | None) -> str:
    import torch

    from nnunet_filternet.errors import FilterNetError

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise FilterNetError("--device cuda: expected a CUDA GPU visible to torch, found none")
    return requested or ("cuda" if available else "cpu")


def _check(args, device: str) -> None:
    from nnunet_filternet.errors import FilterNetError

    if args.rounds is not None and args.rounds < 1:
        raise FilterNetError(f"--rounds: expected a positive number of rounds, found {args.rounds}")
    if args.threads is not None and args.threads < 1:
        raise FilterNetError(f"--threads: expected a positive number, found {args.threads}")
    if args.compile and device != "cuda":
        raise FilterNetError("--compile: nnU-Net does not compile on a CPU; use it with --device cuda")
    unknown = sorted(set(args.parts or ()) - set(PARTS))
    if unknown:
        raise FilterNetError(f"--parts: expected names from {list(PARTS)}, found {unknown}")
    if args.markdown:
        from nnunet_filternet.utils.atomic import check_writable
        from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs

        check_writable(args.markdown, "benchmark section (--markdown)")
        refuse_inputs_as_outputs({args.plans_file: "plans (--plans-file)"}, files=[args.markdown])


def _profile(names: str, setup, device: str, options: BenchOptions) -> int:
    """Print the operator table of each model named (comma-separated); for several, their parts table first."""
    import torch

    from nnunet_filternet.bench.models import select_models
    from nnunet_filternet.bench.profile import compare_parts, profile_table
    from nnunet_filternet.bench.runner import configure_allocator

    print(f"allocator: {configure_allocator(torch.device(device), options)}", file=sys.stderr)
    wanted = _names(names)
    known = [m.name for m in MODELS] + [EDGE_GATE]
    unknown = [n for n in wanted if n.lower() not in {k.lower() for k in known}]
    if unknown or not wanted:
        from nnunet_filternet.errors import FilterNetError

        raise FilterNetError(f"--profile: expected names from {known}, found {unknown or repr(names)}")
    specs = []
    for name in wanted:
        model = "FilterNet" if name.lower() == EDGE_GATE else name
        specs.append(next(m for m in select_models([model]) if m.name.lower() == model.lower()))
    tables = []
    with contextlib.redirect_stdout(sys.stderr):
        models = [s for s, n in zip(specs, wanted) if n.lower() != EDGE_GATE]
        if len(wanted) > 1 and len(models) > 1:
            tables.append(compare_parts(models, setup, torch.device(device)))
        for spec, name in zip(specs, wanted):
            tables.append(profile_table(spec, setup, torch.device(device), gate_only=name.lower() == EDGE_GATE))
    print("\n\n".join(tables))
    return 0


def run(args) -> int:
    import torch

    from nnunet_filternet.bench.plans import resolve_setup
    from nnunet_filternet.bench.report import to_json, to_markdown, write_section
    from nnunet_filternet.bench.runner import run_benchmark

    device = _device(args.device)
    _check(args, device)
    if args.compile is not None:  # nnU-Net's own switch, read by its trainer and predictor code
        os.environ["nnUNet_compile"] = "t" if args.compile else "f"
    if args.threads:
        torch.set_num_threads(args.threads)
    setup = resolve_setup(device, args.plans_file, args.configuration, args.quick, args.size)
    options = BenchOptions(
        device=device,
        repeats=args.rounds or (3 if args.quick else 5),
        quick=args.quick,
        size=args.size,
        models=args.models or None,
        parts=args.parts or PARTS,
        system_malloc=args.system_malloc,
    )
    if args.profile:
        return _profile(args.profile, setup, device, options)
    command = "filternet " + shlex.join(sys.argv[1:])
    with contextlib.redirect_stdout(sys.stderr):  # nnU-Net prints notes on stdout; keep it for the result
        result = run_benchmark(setup, options, command=command)
    print(to_json(result) if args.json else to_markdown(result), end="")
    if args.markdown:
        print(f"wrote {write_section(args.markdown, result)}", file=sys.stderr)
    return 0
