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


@pytest.mark.parametrize("verb", ["phantom", "convert", "restore", "evaluate", "quantify"])
@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_every_verb_refuses_the_same_bad_jobs(tmp_path, verb, jobs):
    """-j is validated the same way everywhere: a positive integer, refused before any work otherwise."""
    args = {
        "phantom": ["--out", tmp_path / "c"],
        "convert": ["--images", tmp_path, "--out", tmp_path / "o"],
        "restore": ["--pred", tmp_path, "--records", tmp_path / "legs.json", "--out", tmp_path / "o"],
        "evaluate": ["--pred", tmp_path, "--labels", tmp_path, "--csv", tmp_path / "m.csv"],
        "quantify": ["--images", tmp_path, "--labels", tmp_path, "--csv", tmp_path / "b.csv"],
    }[verb]
    r = run_cli(verb, *args, "-j", jobs)
    assert r.returncode == 2 and "expected a positive number of worker processes" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_parallel_map_refuses_bad_jobs_for_every_caller():
    from nnunet_filternet.errors import FilterNetError
    from nnunet_filternet.utils.parallel import parallel_map

    for jobs in (0, -3, 1.5):
        with pytest.raises(FilterNetError, match="-j/--jobs: expected a positive number"):
            parallel_map(abs, [1, 2], jobs=jobs, disable_progress=True)
    assert parallel_map(abs, [-1, -2], jobs=1, disable_progress=True) == [1, 2]
