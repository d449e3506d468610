"""One name per concept in every verb: the shared vocabulary, nnU-Net's short options, deprecated spellings.

All in-process, through the real parsers (``build_parser``) and ``main``.
"""

from __future__ import annotations

import argparse

import pytest

from nnunet_filternet.cli import VERBS, Parser, build_parser, deprecated_alias, deprecated_values, main

#: Old spelling -> (verb, arguments with the old spelling, the same with the current one).
DEPRECATED = {
    "--ref": ("evaluate", ["--pred", "p", "--ref", "r", "--csv", "m.csv"],
              ["--pred", "p", "--labels", "r", "--csv", "m.csv"]),
    "--out": ("evaluate", ["--pred", "p", "--labels", "r", "--out", "m.csv"],
              ["--pred", "p", "--labels", "r", "--csv", "m.csv"]),
    "--reference": ("compare", ["--reference", "a.csv", "--candidate", "b.csv", "--csv", "c.csv"],
                    ["--baseline", "a.csv", "--candidate", "b.csv", "--csv", "c.csv"]),
    "--gt": ("report", ["--results", "r", "-tr", "A", "--baseline", "A", "-o", "o", "--gt", "g"],
             ["--results", "r", "-tr", "A", "--baseline", "A", "-o", "o", "--labels", "g"]),
    "--folds": ("convert", ["-i", "s", "-o", "o", "--folds", "5"], ["-i", "s", "-o", "o", "--n-folds", "5"]),
    "--plans": ("bench", ["--plans", "p.json", "--repeats", "2", "--preset", "cpu", "--out", "b.md"],
                ["--plans-file", "p.json", "--rounds", "2", "--size", "cpu", "--markdown", "b.md"]),
    "--preset": ("demo", ["--preset", "study", "--folds", "0", "1"], ["--setup", "study", "-f", "0", "1"]),
}  # fmt: skip


def _parse(verb: str, args: list[str]) -> dict:
    namespace = vars(build_parser(verb).parse_args([verb, *args]))
    namespace.pop("_module"), namespace.pop("_parser")
    return namespace


@pytest.mark.parametrize("old", DEPRECATED)
def test_old_spellings_parse_as_the_new_ones_with_one_warning_each(old, capsys):
    verb, old_args, new_args = DEPRECATED[old]
    assert _parse(verb, old_args) == _parse(verb, new_args)
    warnings = capsys.readouterr().err.splitlines()
    assert f"filternet {verb}: warning: {old} is deprecated, use " in warnings[0]
    assert len(warnings) == len(set(warnings)) == sum(a in old_args for a in _verb_parser(verb).deprecated_options)
    _parse(verb, new_args)
    assert capsys.readouterr().err == ""  # the current spelling warns of nothing


def _verb_parser(verb: str) -> Parser:
    return build_parser(verb)._subparsers._group_actions[0].choices[verb]


def test_a_repeated_old_spelling_warns_once_and_keeps_its_value_forms(capsys):
    args = _parse("compare", ["--reference=a.csv", "--candidate", "b.csv", "--out", "c.csv", "--reference", "d.csv"])
    assert args["baseline"] == ["d.csv"] and args["csv"] == "c.csv"
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "filternet compare: warning: --reference is deprecated, use --baseline",
        "filternet compare: warning: --out is deprecated, use --csv",
    ]
    # after --, nothing is renamed: "--ref" there is a value, not an option
    assert Parser(prog="x")._current_spellings(["--", "--ref"]) == ["--", "--ref"]


def test_an_old_value_of_gpu_checks_plans_is_renamed_with_a_warning(capsys):
    for old, new in (("tiny", "nnUNetPlans_tiny"), ("nnunet", "nnUNetPlans")):
        for option, spelling in (("--plans", ["--plans", old]), ("-p", ["-p", old]), ("--plans", [f"--plans={old}"])):
            assert _parse("gpu-check", spelling)["plans"] == new
            expected = f"filternet gpu-check: warning: {option} {old} is deprecated, use {option} {new}"
            assert capsys.readouterr().err.splitlines() == [expected]
    assert _parse("gpu-check", ["-p", "nnUNetPlans_tiny"])["plans"] == "nnUNetPlans_tiny"
    assert capsys.readouterr().err == ""


def test_a_required_option_given_by_its_old_name_counts_and_misuse_still_exits_2(capsys):
    assert _parse("evaluate", ["--pred", "p", "--ref", "r", "--out", "m.csv"])["labels"] == "r"  # both required
    with pytest.raises(SystemExit) as info:
        build_parser("evaluate").parse_args(["evaluate", "--pred", "p", "--csv", "m.csv"])
    assert info.value.code == 2 and "the following arguments are required: --labels" in capsys.readouterr().err


def test_main_runs_a_verb_given_old_spellings(tmp_path, capsys):
    """``filternet compare --reference ... --out ...`` runs (and fails on the missing files as before), warning once."""
    code = main(["compare", "--reference", str(tmp_path / "a.csv"), "--candidate", str(tmp_path / "b.csv"),
                 "--out", str(tmp_path / "c.csv")])  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[0].endswith("--reference is deprecated, use --baseline") and "a.csv" in err[-1]


#: nnU-Net's short options: verb -> (short, long) pairs that must parse alike.
SHORT = {
    "predict": [("-i", "--images"), ("-o", "--out"), ("-tr", "--trainer"), ("-p", "--plans"),
                ("-c", "--configuration"), ("-f", "--folds"), ("-chk", "--checkpoint")],
    "convert": [("-i", "--images"), ("-d", "--dataset-id"), ("-o", "--out")],
    "report": [("-tr", "--trainers"), ("-o", "--out"), ("-p", "--plans"), ("-c", "--configuration"),
               ("-i", "--images")],
    "demo": [("-f", "--folds"), ("-tr", "--trainers")],
    "bench": [("-c", "--configuration")],
    "gpu-check": [("-p", "--plans")],
    "quantify": [("-i", "--images")],
    "restore": [("-o", "--out")],
    "phantom": [("-o", "--out")],
}  # fmt: skip


@pytest.mark.parametrize("verb", SHORT)
def test_nnunets_short_options_are_aliases_of_ours(verb):
    actions = {s: a for a in _actions(verb) for s in a.option_strings}
    for short, long in SHORT[verb]:
        assert actions[short] is actions[long], f"{verb}: {short} is not {long}"


def _actions(verb: str) -> list[argparse.Action]:
    return [a for a in _verb_parser(verb)._actions if a.option_strings]


#: option -> (short alias it must have or None, metavar it must show, or None for any).
VOCABULARY = {
    "--out": ("-o", "DIR"),
    "--images": ("-i", "DIR"),
    "--labels": (None, "DIR"),
    "--csv": (None, "FILE"),
    "--markdown": (None, "FILE"),
    "--plans-file": (None, "FILE"),
    "--dataset-id": ("-d", "N"),
    "--configuration": ("-c", "NAME"),
    "--trainer": ("-tr", "TRAINER"),
    "--trainers": ("-tr", "TRAINER"),
    "--checkpoint": ("-chk", "FILE"),
    "--workdir": (None, "DIR"),
}
#: Spellings no verb may have any more (they parse only as deprecated aliases).
RETIRED = {"--ref", "--gt", "--reference"}


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_uses_the_one_vocabulary(verb):
    for action in _actions(verb):
        strings = set(action.option_strings)
        assert not strings & RETIRED, f"{verb}: {strings & RETIRED}"
        for option, (short, metavar) in VOCABULARY.items():
            if option in strings:
                assert short is None or short in strings, f"{verb} {option}: expected the alias {short}"
                assert metavar is None or action.metavar == metavar, f"{verb} {option}: metavar {action.metavar}"
        if "--folds" in strings:  # fold ids: any number of them, each a fold number, and nnU-Net's -f
            assert "-f" in strings and action.nargs == "+" and action.metavar == "K"
        if "--plans" in strings:  # a plans identifier, never a file
            assert "-p" in strings and action.metavar != "FILE"
        if "--preset" in strings:  # a plans preset: only `filternet plans`
            assert verb == "plans"
        if "--repeats" in strings:  # training repeats: the demo's
            assert verb == "demo"


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_shows_no_deprecated_spelling(verb, capsys):
    parser = _verb_parser(verb)
    with pytest.raises(SystemExit):
        build_parser(verb).parse_args([verb, "--help"])
    text = capsys.readouterr().out
    for old in parser.deprecated_options:
        assert f"{old} " not in text and not text.rstrip().endswith(old), f"{verb} --help shows {old}"


def test_the_helpers_refuse_what_would_break_a_parser():
    parser = Parser(prog="x")
    parser.add_argument("--labels")
    with pytest.raises(ValueError, match="x has no option --nope"):
        deprecated_alias(parser, "--ref", "--nope")
    with pytest.raises(ValueError, match="--labels is still an option"):
        deprecated_alias(parser, "--labels", "--labels")
    with pytest.raises(TypeError, match="nnunet_filternet.cli.Parser"):
        deprecated_values(argparse.ArgumentParser(), "--labels", {"a": "b"})
