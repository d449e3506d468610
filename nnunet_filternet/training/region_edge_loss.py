"""Loss (8) of the paper around whatever region loss the trainer builds: L = (1 - lambda) Lc + lambda Le."""

from __future__ import annotations

import torch
from torch import nn


def full_resolution(output_or_target):
    """The highest-resolution entry of a deep-supervision list, or the tensor itself."""
    return output_or_target[0] if isinstance(output_or_target, (list, tuple)) else output_or_target


class RegionEdgeLoss(nn.Module):
    """``(1 - edge_lambda) * region_loss(output, target) + edge_lambda * edge_loss(output[0], target[0])``.

    The region loss is used exactly as the trainer built it (nnU-Net's Dice + CE with its deep supervision
    wrapper, or plain CE for the paper's protocol). The edge loss Le only sees the full-resolution output
    and target: the gate's 3x3 Laplacian and 5x5 Gaussian are defined in voxels of the image, and the
    coarser deep-supervision outputs are already weighted down by nnU-Net.

    Args:
        region_loss: Lc, called as ``region_loss(output, target)`` with nnU-Net's outputs and targets
            (tensors B C *spatial / B 1 *spatial, or lists of them, highest resolution first).
        edge_loss: Le, an ``EdgeLoss`` called on one logits tensor and one label tensor.
        edge_lambda: initial lambda; the trainer sets :attr:`edge_lambda` at the start of every epoch.
    """

    def __init__(self, region_loss: nn.Module, edge_loss: nn.Module, edge_lambda: float = 0.0):
        super().__init__()
        self.region_loss = region_loss
        self.edge_loss = edge_loss
        self.edge_lambda = float(edge_lambda)

    def forward(self, output, target) -> torch.Tensor:
        """Scalar loss of one batch."""
        region = self.region_loss(output, target)
        edge = self.edge_loss(full_resolution(output), full_resolution(target))
        return (1.0 - self.edge_lambda) * region + self.edge_lambda * edge

    def extra_repr(self) -> str:
        return f"edge_lambda={self.edge_lambda:g}"
