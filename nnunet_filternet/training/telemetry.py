"""Per-epoch peak memory and the network's parameter count, as lines in nnU-Net's training log.

The report parser reads exactly these lines::

    network parameters: 1440000
    peak memory: 1234.5 MiB (cuda max allocated)
    peak memory: 1234.5 MiB (process max RSS)

On CUDA the peak is ``torch.cuda.max_memory_allocated`` since the start of the epoch (the statistics are
reset at every epoch start). On a CPU it is the process's maximum resident set size so far, which the
operating system cannot reset, so it never decreases from one epoch to the next.
"""

from __future__ import annotations

import sys

import torch

from nnunet_filternet.network import count_parameters


def reset_peak_memory(device: torch.device) -> None:
    """Start a new CUDA peak-memory window (no-op on other devices)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    """(peak memory in MiB, what was measured): CUDA max allocated, else the process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    import resource  # POSIX only

    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bytes_per_unit = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return max_rss * bytes_per_unit / 2**20, "process max RSS"


def peak_memory_line(device: torch.device) -> str:
    """``peak memory: X MiB (cuda max allocated)`` or ``... (process max RSS)``."""
    mib, what = peak_memory_mib(device)
    return f"peak memory: {mib:.1f} MiB ({what})"


class TelemetryMixin:
    """Mixin for an ``nnUNetTrainer`` subclass: logs the parameter count once and the peak memory per epoch."""

    def on_train_start(self):
        super().on_train_start()
        self.print_to_log_file(f"network parameters: {count_parameters(self.network)}")

    def on_epoch_start(self):
        reset_peak_memory(self.device)
        super().on_epoch_start()

    def on_epoch_end(self):
        self.print_to_log_file(peak_memory_line(self.device))
        super().on_epoch_end()
