"""Every command shown in README.md and docs/*.md goes through the real argument parser of its program.

A renamed or removed option, a wrong trainer flag or a missing required argument then breaks this test, not a
reader. Commands are taken from fenced ``bash`` / ``sh`` / ``console`` blocks (line continuations joined,
comments dropped, ``$VAR`` expanded to a placeholder) and from inline code spans that start with a program
name (a mention in prose: its program, verb and option names must exist, the rest need not be complete).
Programs checked:

* ``filternet VERB ...``: the ``filternet`` parser (``nnunet_filternet.cli.build_parser``);
* ``nnUNetv2_*``: nnU-Net's own entry point, run with ``ArgumentParser.parse_args`` stopped right after a
  successful parse (nothing is executed);
* ``python -m MODULE ...`` of this package: the module's ``main(argv)``, stopped the same way;
* ``make TARGET``: the target exists in the Makefile.

Everything else in a block (``export``, ``pip``, ``cd``, ``for`` / ``done`` lines, ...) is shell, not parsed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import shlex
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\s*$")
_INLINE = re.compile(r"`((?:filternet|nnUNetv2_\w+|python -m nnunet_filternet[\w.]*|make) [^`]*)`")
_VAR = re.compile(r"\$\{?(\w+)\}?")


@dataclass(frozen=True)
class Command:
    """A command of the docs; ``inline``: from a code span in prose (a mention, whose options must exist)."""

    file: str
    line: int
    text: str
    inline: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def _program_line(text: str) -> str | None:
    """The command in a shell line, or None when the line is not one of the programs this test parses."""
    text = text.strip()
    text = re.sub(r"^(?:do|then|time|/usr/bin/time(?: -v)?|nice(?: -n \d+)?)\s+", "", text)
    text = re.sub(r"^(?:\w+=\S+\s+)+", "", text)  # VAR=value command
    text = text.split(" | ")[0].split(" && ")[0].split(" > ")[0].split(" 2>")[0].strip()
    if re.match(r"^(?:filternet|nnUNetv2_\w+|python3? -m nnunet_filternet[\w.]*|make)(?:\s|$)", text):
        return text
    return None


def commands() -> list[Command]:
    """Every command of README.md and docs/*.md (module docstring)."""
    found = []
    for path in DOCS:
        name = path.relative_to(REPO).as_posix()
        lines = path.read_text(encoding="utf-8").splitlines()
        in_block, shell, pending, start = False, False, "", 0
        for number, line in enumerate(lines, 1):
            fence = _FENCE.match(line.strip())
            if fence:
                in_block, shell = (not in_block), (not in_block and fence.group(1) in ("bash", "sh", "console", ""))
                continue
            if in_block and shell:
                code = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
                code = code.removeprefix("$ ")
                if not pending:
                    start = number
                if code.rstrip().endswith("\\"):
                    pending += code.rstrip()[:-1] + " "
                    continue
                text = _program_line(pending + code)
                pending = ""
                if text:
                    found.append(Command(name, start, text))
            elif not in_block:
                for match in _INLINE.finditer(line):
                    text = _program_line(match.group(1))
                    if text:
                        found.append(Command(name, number, text, inline=True))
    return found


class _Parsed(Exception):
    """Raised instead of running a program once its arguments parsed (``parser``: the parser that parsed)."""

    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__()
        self.parser = parser


@contextlib.contextmanager
def _stop_at_parsing(parse: bool):
    """``parse_args`` / ``parse_known_args`` raise :class:`_Parsed` after parsing (``parse``) or instead of it.

    Arguments that ``parse_known_args`` leaves over are an error too (nnU-Net's entry points that use it only
    warn about them).
    """
    real_args, real_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    inside = []

    def parse_args(self, args=None, namespace=None):
        if parse:
            inside.append(1)
            try:
                real_args(self, args, namespace)
            finally:
                inside.pop()
        raise _Parsed(self)

    def parse_known_args(self, args=None, namespace=None):
        if inside:  # called by parse_args
            return real_known(self, args, namespace)
        if parse:
            _, extra = real_known(self, args, namespace)
            if extra:
                self.error(f"unrecognized arguments: {' '.join(extra)}")
        raise _Parsed(self)

    argparse.ArgumentParser.parse_args = parse_args
    argparse.ArgumentParser.parse_known_args = parse_known_args
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = real_args
        argparse.ArgumentParser.parse_known_args = real_known


def _argv(text: str) -> list[str]:
    placeholder = lambda m: "0" if m.group(1) in ("f", "fold", "k") else f"PLACEHOLDER_{m.group(1)}"  # noqa: E731
    return shlex.split(_VAR.sub(placeholder, text))


def _run_parser(argv: list[str], run, parse: bool) -> argparse.ArgumentParser | str:
    """The parser ``run`` used (after parsing ``argv[1:]`` if ``parse``), or the parser's complaint."""
    import io
    import sys

    saved = sys.argv
    sys.argv = argv
    try:
        with _stop_at_parsing(parse), contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                run()
            except _Parsed as done:
                return done.parser
            except SystemExit as e:
                return f"exit {e.code}: {err.getvalue().strip().splitlines()[-1:]}"
        return "the program ran past argument parsing without parsing (no parser found)"
    finally:
        sys.argv = saved


def _runner(argv: list[str]):
    """A callable that runs ``argv``'s program with its arguments (parsing them first), or why there is none."""
    program = argv[0]
    if program == "filternet":
        from nnunet_filternet.cli import VERBS, build_parser

        verb = next((a for a in argv[1:] if not a.startswith("-")), None)
        if verb not in VERBS:
            return f"no filternet verb {verb!r}"
        return lambda: build_parser(verb).parse_args(argv[1:])
    if program.startswith("nnUNetv2_"):
        scripts = {e.name: e for e in entry_points(group="console_scripts")}
        return scripts[program].load() if program in scripts else f"no nnU-Net console script {program}"
    module = importlib.import_module(argv[2])
    return (lambda: module.main(argv[3:])) if hasattr(module, "main") else f"{argv[2]} has no main()"


def _synopsis(argv: list[str]) -> bool:
    """A usage line (``[--opt X]``, ``a|b``, ``...``) rather than a command to run: only option names are checked."""
    return any(t.startswith("[") or t.endswith("]") or "|" in t or t == "..." for t in argv)


def _options(parser: argparse.ArgumentParser, verb: str | None) -> set[str]:
    """Option strings of ``parser`` (of its sub-command ``verb``, for ``filternet``)."""
    if verb is not None:
        verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = verbs.choices[verb]
    return set(parser._option_string_actions)


def check(command: Command) -> str | None:
    """None when ``command`` parses with its program's real parser (a usage line: names only options it has)."""
    argv = _argv(command.text)
    if argv[0] == "make":
        targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(encoding="utf-8"), re.M))
        unknown = [t for t in argv[1:] if "=" not in t and t not in targets]
        return f"unknown make target(s) {unknown}" if unknown else None
    head = {"filternet": 2}.get(argv[0], 3 if argv[0].startswith("python") else 1)
    names_only = command.inline or _synopsis(argv)
    runner = _runner(argv[:head] if names_only else argv)
    if isinstance(runner, str) or len(argv) == head:  # a program or verb named in prose: it exists
        return runner if isinstance(runner, str) else None
    if not names_only:
        found = _run_parser(argv, runner, parse=True)
        return found if isinstance(found, str) else None
    parser = _run_parser(argv[:head], runner, parse=False)
    if isinstance(parser, str):
        return parser
    known = _options(parser, argv[1] if argv[0] == "filternet" else None)
    named = {
        re.match(r"\[?(-{1,2}[A-Za-z][\w-]*)", t).group(1) for t in argv[head:] if re.match(r"\[?-{1,2}[A-Za-z]", t)
    }
    unknown = sorted(named - known)
    return f"options not in {' '.join(argv[:head])}'s parser: {unknown}" if unknown else None


ALL = commands()


def test_the_docs_show_commands_of_every_kind():
    programs = {c.text.split()[0] for c in ALL}
    assert {"filternet", "nnUNetv2_train", "nnUNetv2_predict", "make"} <= programs, programs
    assert len(ALL) > 50


@pytest.mark.parametrize("command", ALL, ids=[f"{c.file}:{c.line}" for c in ALL])
def test_command_parses_with_its_programs_parser(command):
    problem = check(command)
    assert problem is None, f"{command}\n  -> {problem}"


@pytest.mark.parametrize(
    "text",
    [
        "filternet compare --baseline a.csv --candidate b.csv --no-such-option",
        "filternet evaluate --pred p",  # --ref and --out missing
        "nnUNetv2_train 501 3d_fullres 0 --trainer nnUNetTrainerFilterNet",  # nnU-Net spells it -tr
        "make no-such-target",
    ],
)
def test_a_wrong_command_is_caught(text):
    assert check(Command("example", 1, text)) is not None
