"""The ``filternet`` command: every verb has --help, misuse exits 2 with a one-line reason."""

from __future__ import annotations

import pytest

from nnunet_filternet.cli import VERBS, _available_verbs
from tests.conftest import run_cli


def test_top_level_help_lists_verbs():
    r = run_cli("--help")
    assert r.returncode == 0
    for verb in _available_verbs():
        assert verb in r.stdout


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help(verb):
    if verb not in _available_verbs():
        pytest.fail(f"verb {verb} has no module nnunet_filternet/cli/{verb}.py")
    r = run_cli(verb, "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: filternet " + verb in r.stdout


def test_unknown_verb_exits_2():
    r = run_cli("frobnicate")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr


def test_unknown_option_exits_2():
    r = run_cli("phantom", "--no-such-option")
    assert r.returncode == 2
