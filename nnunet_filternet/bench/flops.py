"""FLOPs of a training step, counted the same way for every model with torch's ``FlopCounterMode``.

The count covers forward, loss and backward (convolutions, transposed convolutions, matrix products; one
multiply-add = 2 FLOPs). Elementwise work (norms, activations, the optimizer) is not counted. Counting runs
under torch's ``FakeTensorMode`` (tensors with shapes but no data, the tool torch's own FLOP estimates use):
the model's real parameters meet fake inputs, so every activation and gradient is fake, no arithmetic is
done, and it takes a second even for GPU-sized patches. The counted code path is the CPU one (autocast
regions are entered as on a real device; they do not change the FLOPs).
"""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the torch operations ``fn`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def fake_tensors():
    """Context in which tensors (parameters, data) have shapes but no storage: torch's ``FakeTensorMode``.

    Models built and run inside cost no memory and no arithmetic; :func:`count_flops` works as on real tensors.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)
