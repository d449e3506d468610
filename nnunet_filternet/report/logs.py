"""Parsing nnU-Net training logs (``training_log_*.txt``) of one fold.

Lines parsed (anywhere after nnU-Net's timestamp prefix ``2026-11-25 15:00:01.123456:``):

- ``Epoch time: 12.3 s`` (every nnU-Net trainer, once per epoch)
- ``peak memory: 1234.5 MiB (cuda max allocated)`` or ``... (process max RSS)`` (our trainers, per epoch)
- ``edge gate: lambda 0.001 sigma 1.000`` (edge-gate trainers with a sigma, per epoch; the Laplacian-only
  gate's ``edge gate: lambda 0.001 (Laplacian only, no sigma)`` is not read)
- ``network parameters: 1440000`` (our trainers, once)

A fold trained in several sessions has several log files; they are read in the order of the date and
time in their names (nnU-Net does not zero-pad month and day, so names do not sort as text).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_EPOCH_TIME = re.compile(r"Epoch time: ([0-9.eE+-]+) s")
_PEAK_MEMORY = re.compile(r"peak memory: ([0-9.eE+-]+) MiB \(([^)]*)\)")
_EDGE_GATE = re.compile(r"edge gate: lambda ([0-9.eE+-]+) sigma ([0-9.eE+-]+)")
_PARAMETERS = re.compile(r"network parameters: (\d+)")
_LOG_NAME = re.compile(r"training_log_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)_(\d+)\.txt$")


@dataclass
class TrainingLog:
    """What one fold's training logged.

    Attributes:
        epoch_times_s: seconds per epoch, in order.
        peak_memory_mib: peak memory per epoch (MiB).
        memory_source: what the memory figure measures ("cuda max allocated" or "process max RSS").
        edge_gate: (lambda, sigma) per epoch, for edge-gate trainers.
        network_parameters: the logged parameter count, if any.
        files: the log files read.
    """

    epoch_times_s: list[float] = field(default_factory=list)
    peak_memory_mib: list[float] = field(default_factory=list)
    memory_source: str | None = None
    edge_gate: list[tuple[float, float]] = field(default_factory=list)
    network_parameters: int | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def final_sigma(self) -> float | None:
        """The edge gate's sigma at the last logged epoch, None for trainers without a gate."""
        return self.edge_gate[-1][1] if self.edge_gate else None

    @property
    def final_lambda(self) -> float | None:
        """The edge loss weight lambda at the last logged epoch."""
        return self.edge_gate[-1][0] if self.edge_gate else None


def parse_training_log(text: str, log: TrainingLog | None = None) -> TrainingLog:
    """Add the recognised lines of ``text`` to ``log`` (a new one if None) and return it."""
    log = TrainingLog() if log is None else log
    for line in text.splitlines():
        if m := _EPOCH_TIME.search(line):
            log.epoch_times_s.append(float(m.group(1)))
        elif m := _PEAK_MEMORY.search(line):
            log.peak_memory_mib.append(float(m.group(1)))
            log.memory_source = m.group(2)
        elif m := _EDGE_GATE.search(line):
            log.edge_gate.append((float(m.group(1)), float(m.group(2))))
        elif m := _PARAMETERS.search(line):
            log.network_parameters = int(m.group(1))
    return log


def _log_order(path: Path) -> tuple:
    m = _LOG_NAME.search(path.name)
    return (tuple(int(g) for g in m.groups()) if m else (), path.name)


def read_fold_logs(fold_dir: str | os.PathLike) -> TrainingLog:
    """Parse every ``training_log_*.txt`` of a fold folder, oldest first (empty log if there are none)."""
    log = TrainingLog()
    for path in sorted(Path(fold_dir).glob("training_log_*.txt"), key=_log_order):
        parse_training_log(path.read_text(errors="replace"), log)
        log.files.append(path)
    return log
