"""The edge loss Le = sum_n w_n mean |F(Y_n) - F(Y_hat_n)| between filtered labels and probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunet_filternet.edge.gate import EdgeGate
from nnunet_filternet.errors import FilterNetError


class EdgeLoss(nn.Module):
    """Paper eq. 10 with the L1 norm taken as a mean over batch and voxels.

    The mean (not the sum) keeps the loss, and so lambda, independent of patch and batch size. The gate is
    applied once, to the one-hot labels and the softmax probabilities stacked along the batch axis.

    Args:
        gate: the (trainable) ``EdgeGate``; it is a submodule of this loss, but its owner (the trainer) must
            give its parameter to the optimizer and checkpoint.
        weights: class weights w_n, one per output channel (paper: 0, 0.2, 0.2, 0.15, 0.15, 0.3).
    """

    def __init__(self, gate: EdgeGate, weights: Sequence[float]):
        super().__init__()
        weights = [float(w) for w in weights]
        if not weights or any(w < 0 for w in weights):
            raise FilterNetError(f"EdgeLoss: expected non-negative class weights, found {weights}")
        self.gate = gate
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Edge loss of one output.

        Args:
            logits: network output B C *spatial (C = number of weights).
            target: label map B 1 *spatial with values in 0..C-1 (any dtype; nnU-Net passes floats).

        Returns:
            Scalar float32 tensor (float64 for float64 logits).
        """
        n_classes = self.weights.numel()
        if logits.shape[1] != n_classes or target.shape[1] != 1 or target.shape[2:] != logits.shape[2:]:
            raise FilterNetError(
                f"EdgeLoss: expected logits B {n_classes} *spatial and target B 1 *spatial, "
                f"found {tuple(logits.shape)} and {tuple(target.shape)}"
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits if logits.dtype == torch.float64 else logits.float()
            probabilities = torch.softmax(logits, dim=1)
            one_hot = torch.zeros_like(probabilities).scatter_(1, target.long(), 1.0)
            filtered = self.gate(torch.cat([one_hot, probabilities], dim=0))
            label_edges, predicted_edges = filtered.chunk(2, dim=0)
            per_class = (label_edges - predicted_edges).abs().transpose(0, 1).flatten(1).mean(dim=1)
            return (per_class * self.weights.to(per_class.dtype)).sum()
