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
