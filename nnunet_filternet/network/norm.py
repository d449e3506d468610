"""Instance norm that runs PyTorch's fused group-norm kernel on the CPU (same result, about 3x faster there).

nnU-Net's plans name ``torch.nn.InstanceNorm3d`` (affine, no running statistics). On the CPU PyTorch computes
it as a batch norm over a reshaped (1, B*C, ...) view, with copies of the input and repeated affine
parameters, forward and backward; ``F.group_norm`` with one group per channel computes exactly the same
normalisation in one native kernel. Measured on this project's CPU (1 thread, 2 x 32 x 16 x 64 x 64 float32,
norm + LeakyReLU, forward + backward): 35 ms with ``InstanceNorm3d``, 10 ms with group norm (the snippet in
docs/benchmarks.md, target 1).

The subclasses below keep the module type (``isinstance(m, nn.InstanceNorm3d)`` holds), the parameters and the
state-dict keys, so checkpoints are interchangeable with plain instance norm. Only the CPU path changes: on
other devices (CUDA, where nnU-Net compiles the network and autocasts to fp16) they call PyTorch's own code.

No architecture chooses them: every network a trainer builds gets them from
:func:`use_cpu_fast_instance_norms`, applied once by ``training/kernel_policy.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _GroupNormOnCPU:
    """Mixin before an ``nn.InstanceNorm*d``: per-sample statistics of a batched CPU input via ``F.group_norm``.

    Running statistics, unbatched input and other devices go to PyTorch's own instance norm.
    """

    def _apply_instance_norm(self, input: torch.Tensor) -> torch.Tensor:
        batched = input.dim() == self._get_no_batch_dim() + 1
        if input.device.type == "cpu" and not self.track_running_stats and batched:
            return F.group_norm(input, self.num_features, self.weight, self.bias, self.eps)
        return super()._apply_instance_norm(input)


class CPUFastInstanceNorm3d(_GroupNormOnCPU, nn.InstanceNorm3d):
    """``nn.InstanceNorm3d`` (x: B C Z Y X -> same shape) computed by ``F.group_norm`` on the CPU."""


class CPUFastInstanceNorm2d(_GroupNormOnCPU, nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (x: B C Y X -> same shape) computed by ``F.group_norm`` on the CPU."""


_FAST = {nn.InstanceNorm3d: CPUFastInstanceNorm3d, nn.InstanceNorm2d: CPUFastInstanceNorm2d}


def cpu_fast_norm_op(norm_op: type[nn.Module] | None) -> type[nn.Module] | None:
    """The CPU-fast subclass for nnU-Net's instance norms; any other norm op (or None) unchanged."""
    return _FAST.get(norm_op, norm_op)


def use_cpu_fast_instance_norms(network: nn.Module) -> nn.Module:
    """Make every plain ``nn.InstanceNorm2d`` / ``nn.InstanceNorm3d`` of ``network`` its CPU-fast subclass, in place.

    The modules keep their identity, parameters and buffers (only their class changes), so every reference to
    them sees the change: dynamic-network-architectures holds each norm both as an attribute and inside an
    ``nn.Sequential``. Other norms (batch norm, subclasses of instance norm) are left as they are.

    Returns:
        ``network`` itself.
    """
    for module in network.modules():
        fast = cpu_fast_norm_op(type(module))
        if fast is not type(module):
            module.__class__ = fast
    return network
