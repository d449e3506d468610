"""The edge loss Le = sum_n w_n mean |F(Y_n) - F(Y_hat_n)| between filtered labels and probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunet_filternet.edge.gate import EdgeGate, LaplacianGate
from nnunet_filternet.errors import FilterNetError


class EdgeLoss(nn.Module):
    """Paper eq. 10 with the L1 norm taken as a mean over batch and voxels.

    The mean (not the sum) keeps the loss, and so lambda, independent of patch and batch size.

    Computed as ``gate.smooth(gate.edges(Y_n) - gate.edges(Y_hat_n))``, which equals ``F(Y_n) - F(Y_hat_n)``
    because the smoothing (the Gaussian, or the identity of the Laplacian-only gate) is linear: one Gaussian
    pass instead of two. Classes with weight 0 (the background in the paper's W) are not filtered at all, and
    the labels' edges are computed without gradient.

    ``constant_target`` (a reading of the paper, docs/training.md "Sigma"): the labels' edge map F(Y_n | sigma)
    is filtered with the current sigma but treated as a constant target, so sigma's gradient comes from the
    prediction's side only: Le = sum_n w_n mean |stopgrad(G * rho(L * Y_n)) - G * rho(L * Y_hat_n)|. The value
    is the same; two Gaussian passes instead of one.

    Args:
        gate: an ``EdgeGate`` (trainable or fixed sigma) or a ``LaplacianGate``; it is a submodule of this
            loss, but its owner (the trainer) must give its parameter to the optimizer and checkpoint.
        weights: class weights w_n, one per output channel (paper: 0, 0.2, 0.2, 0.15, 0.15, 0.3).
        constant_target: no gradient through the labels' filtered edge map (see above).
    """

    def __init__(self, gate: EdgeGate | LaplacianGate, weights: Sequence[float], constant_target: bool = False):
        super().__init__()
        self.constant_target = bool(constant_target)
        weights = [float(w) for w in weights]
        if not weights or any(w < 0 for w in weights):
            raise FilterNetError(f"EdgeLoss: expected non-negative class weights, found {weights}")
        self.gate = gate
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32), persistent=False)
        used = [n for n, w in enumerate(weights) if w > 0]
        self.register_buffer("used_classes", torch.tensor(used, dtype=torch.long), persistent=False)

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
        if self.used_classes.numel() == 0:
            return logits.new_zeros((), dtype=torch.float64 if logits.dtype == torch.float64 else torch.float32)
        used = self.used_classes.to(logits.device)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits if logits.dtype == torch.float64 else logits.float()
            probabilities = torch.softmax(logits, dim=1).index_select(1, used)
            with torch.no_grad():
                view = (1, -1) + (1,) * (target.ndim - 2)
                one_hot = (target.long() == used.view(view)).to(probabilities.dtype)
                label_edges = self.gate.edges(one_hot)
                if self.constant_target:
                    label_edges = self.gate.smooth(label_edges)
            if self.constant_target:
                difference = label_edges - self.gate.smooth(self.gate.edges(probabilities))
            else:
                difference = self.gate.smooth(label_edges - self.gate.edges(probabilities))
            per_class = difference.abs().transpose(0, 1).flatten(1).mean(dim=1)
            return (per_class * self.weights.to(per_class).index_select(0, used)).sum()
