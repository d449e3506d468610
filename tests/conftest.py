"""Shared fixtures: temporary nnU-Net folders and the CLI runner."""

from __future__ import annotations

import locale
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SESSION_LOCALE = locale.setlocale(locale.LC_ALL)


@pytest.fixture(autouse=True)
def _restore_locale():
    """SimpleITK's DICOM writer (GDCM) switches the process locale to "C" (ASCII); undo it after each test.

    Our own code names its text encodings, so it is immune; this keeps one test's DICOM fixture from changing
    the defaults of the tests that run after it in the same process.
    """
    locale.setlocale(locale.LC_ALL, _SESSION_LOCALE)  # also undoes a switch made by a module fixture
    yield
    locale.setlocale(locale.LC_ALL, _SESSION_LOCALE)


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch):
    """Point nnU-Net's three folders at fresh temporary ones (for this test only)."""
    env = {}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
        env[name] = folder
    return env


def run_cli(*args: str, env: dict | None = None, cwd: str | os.PathLike | None = None, timeout: float = 600):
    """Run ``filternet ARGS`` in a subprocess; return the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    return subprocess.run(
        [sys.executable, "-m", "nnunet_filternet", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


def reuse_counts(capsys, verb: str) -> tuple[int, int]:
    """(reused, computed) from the last line in which ``verb`` reported its reuse on stderr since the last read."""
    import re

    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"{verb}: ")]
    found = [re.search(r": (\d+) of \d+ \w+\(s\) reused from .*; (\d+) computed$", line) for line in lines]
    found = [m for m in found if m]
    assert found, f"{verb} did not report its reuse"
    return int(found[-1].group(1)), int(found[-1].group(2))


@pytest.fixture(scope="session")
def tiny_nnunet(tmp_path_factory):
    """The session's planned and preprocessed tiny nnU-Net dataset (:class:`tests.tiny_dataset.TinyNnunet`).

    Planned and preprocessed once per session, in a fixed folder of the session's base temp dir.
    """
    from tests.tiny_dataset import DATASET_ID, TinyNnunet, prepare_tiny_nnunet

    root = tmp_path_factory.getbasetemp() / "tiny_nnunet"
    done = root / ".prepared"
    if not done.exists():
        prepare_tiny_nnunet(root)
        done.touch()
    return TinyNnunet(root, f"Dataset{DATASET_ID:03d}_TinyCalf")
