"""The Boundary-Aware FCN's loss: region term on the final and region outputs, CE on the edge output."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class BoundaryAwareLoss(nn.Module):
    """``region_loss(final) + region_loss(region) + edge_loss(edge, edge_targets(target))``.

    In train mode the Boundary-Aware FCN returns the tuple ``(final, region, edge)``; in eval mode (nnU-Net's
    validation step) only ``final``, and then only ``region_loss(final, target)`` is computed. Edge targets
    are made from the label targets on the fly (each resolution of a deep-supervision list separately).

    Args:
        region_loss: loss of a region output against the labels (paper: CE; nnU-Net recipe: nnU-Net's
            Dice + CE), called with nnU-Net's outputs and targets (tensors or deep-supervision lists).
        edge_loss: loss of the edge output against the edge map (CE, with the same deep supervision).
        in_plane_axes: 0-based spatial axes along which edges are detected (None: all axes).
    """

    def __init__(self, region_loss: nn.Module, edge_loss: nn.Module, in_plane_axes: Sequence[int] | None):
        super().__init__()
        self.region_loss = region_loss
        self.edge_loss = edge_loss
        self.in_plane_axes = None if in_plane_axes is None else tuple(in_plane_axes)

    def edge_target(self, target):
        """Edge map of a label target B 1 *spatial (or of each entry of a deep-supervision list)."""
        from nnunet_filternet.edge.targets import edge_targets

        if isinstance(target, (list, tuple)):
            return [edge_targets(t, self.in_plane_axes) for t in target]
        return edge_targets(target, self.in_plane_axes)

    def forward(self, output, target) -> torch.Tensor:
        """Scalar loss of one batch."""
        if not isinstance(output, tuple):
            return self.region_loss(output, target)
        final, region, edge = output
        return (
            self.region_loss(final, target)
            + self.region_loss(region, target)
            + self.edge_loss(edge, self.edge_target(target))
        )


class BoundaryAwareLossMixin:
    """Mixin for an ``nnUNetTrainer`` subclass building the Boundary-Aware FCN: wraps ``super()._build_loss()``.

    The region term is whatever ``super()`` builds (nnU-Net's Dice + CE with deep supervision, or the paper
    protocol's CE); the edge term is cross-entropy with the same deep-supervision weights.
    """

    def _build_loss(self):
        from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
        from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss

        from nnunet_filternet.edge.gate import in_plane_axes_from_spacing

        region_loss = super()._build_loss()
        edge_loss = RobustCrossEntropyLoss()
        if isinstance(region_loss, DeepSupervisionWrapper):
            edge_loss = DeepSupervisionWrapper(edge_loss, region_loss.weight_factors)
        return BoundaryAwareLoss(region_loss, edge_loss, in_plane_axes_from_spacing(self.configuration_manager.spacing))
