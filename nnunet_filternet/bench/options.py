"""What a benchmark run measures and how: device, repeats, sizes, models and parts (no heavy imports)."""

from __future__ import annotations

from dataclasses import dataclass

#: Parts of the benchmark, in the order they run. FLOPs and parameters (counted on fake tensors, in seconds) are
#: always part of it, so ``("flops",)`` alone counts only them; "training" includes the edge gate alone.
PARTS: tuple[str, ...] = ("flops", "training", "inference", "throughput")

#: Name of the edge gate and edge loss alone, where a model name is expected (``--profile``, result keys).
EDGE_GATE = "edge gate"


@dataclass(frozen=True)
class BenchOptions:
    """What to run and how.

    Attributes:
        device: ``cpu`` or ``cuda``.
        repeats: timed rounds (median reported); warm-up calls are extra.
        quick: small sizes everywhere (built-in plans, scans for throughput).
        size: sizes of the built-in plans (``cpu``, ``cuda`` or ``quick``); None picks ``quick`` with ``quick``,
            else the device's.
        models: model names to run (None: all); stock nnU-Net is always included.
        parts: subset of :data:`PARTS`.
        seed: seed of the synthetic data.
        system_malloc: leave the C library's allocator as it is on the CPU (default: make it keep freed memory,
            see :mod:`nnunet_filternet.utils.malloc`), e.g. to measure what that setting changes.
    """

    device: str = "cpu"
    repeats: int = 5
    quick: bool = False
    size: str | None = None
    models: tuple[str, ...] | None = None
    parts: tuple[str, ...] = PARTS
    seed: int = 0
    system_malloc: bool = False

    @property
    def warmup(self) -> int:
        """Untimed calls before measuring: one on a CPU; two on CUDA (torch.compile, then cuDNN autotuning)."""
        return 2 if self.device == "cuda" else 1
