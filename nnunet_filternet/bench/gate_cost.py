"""The edge gate and edge loss alone: forward and backward on a FilterNet-sized output.

This is the extra work the gate adds to a training step: the edge-gate trainer's own ``EdgeLoss`` (the
``edge_loss`` of its ``RegionEdgeLoss``) on the full-resolution logits (softmax, one-hot, the L-rho-G filter,
the weighted L1) and its backward into the logits and sigma. Under CUDA the logits are half precision, as
the network's output under nnU-Net's autocast.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from nnunet_filternet.bench.plans import BenchSetup


class EdgeGateCost:
    """One call = the edge loss forward and backward, as inside a training step.

    Args:
        edge_loss: the trainer's edge loss (with its gate), on ``device``: ``trainer.loss.edge_loss``.
        setup: shared configuration (batch, classes, patch).
        device: where it runs.
        seed: seed of the random logits and labels.
    """

    def __init__(self, edge_loss: nn.Module, setup: BenchSetup, device: torch.device, seed: int = 0):
        self.device = device
        self.edge_loss = edge_loss
        generator = torch.Generator().manual_seed(seed)
        shape = (setup.batch_size, setup.num_classes, *setup.patch_size)
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        self.logits = torch.randn(shape, generator=generator).to(device=device, dtype=dtype).requires_grad_(True)
        labels = torch.randint(0, setup.num_classes, (setup.batch_size, 1, *setup.patch_size), generator=generator)
        self.target = labels.to(device=device, dtype=torch.int16)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", enabled=True)
        return contextlib.nullcontext()

    def __call__(self) -> None:
        """Edge loss forward + backward (into the logits and sigma)."""
        self.logits.grad = None
        with self._autocast():
            loss = self.edge_loss(self.logits, self.target)
        loss.backward()
