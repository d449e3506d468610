"""The edge loss Le = sum_n w_n mean |F(Y_n) - F(Y_hat_n)| between filtered labels and probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nnunet_filternet.edge import fused_cpu
from nnunet_filternet.edge.gate import EdgeGate, LaplacianGate
from nnunet_filternet.errors import FilterNetError


class EdgeLoss(nn.Module):
    """Paper eq. 10 with the L1 norm taken as a mean over batch and voxels.

    The mean (not the sum) keeps the loss, and so lambda, independent of patch and batch size.

    Computed as ``gate.smooth(gate.edges(Y_n) - gate.edges(Y_hat_n))``, which equals ``F(Y_n) - F(Y_hat_n)``
    because the smoothing (the Gaussian, or the identity of the Laplacian-only gate) is linear: one Gaussian
    pass instead of two. Classes with weight 0 (the background in the paper's W) are not filtered at all, and
    the labels' edges are computed once per batch without gradient, by the gate's ``label_edges`` (for the
    ``EdgeGate`` read off the label map, with the values filtering the one-hot maps gives).

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
        self.register_buffer("used_weights", torch.tensor([weights[n] for n in used]), persistent=False)
        self._used, self._used_weight_values = tuple(used), tuple(weights[n] for n in used)  # as numbers
        #: the used classes as one run ``first, first + 1, ...`` (taken as a view of the softmax), or None
        self._used_run = (used[0], len(used)) if used and used == list(range(used[0], used[0] + len(used))) else None

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
        if not self._used:
            return logits.new_zeros((), dtype=torch.float64 if logits.dtype == torch.float64 else torch.float32)
        if _autocast_on(logits.device.type):
            with torch.autocast(device_type=logits.device.type, enabled=False):
                return self._loss(logits, target)
        return self._loss(logits, target)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``forward`` without its checks, outside autocast."""
        logits = logits if logits.dtype == torch.float64 else logits.float()
        if fused_cpu.applies(self.gate, logits):  # the same loss in one CPU kernel: edge/fused_cpu.py
            return fused_cpu.fused_edge_loss(
                self.gate, logits, target, self._used, self._used_weight_values, self.constant_target
            )
        probabilities = self._used_channels(torch.softmax(logits, dim=1))
        with torch.no_grad():
            used = self.used_classes.to(logits.device)  # made on the trainer's device: no copy there
            label_edges = self.gate.label_edges(target, used, probabilities.dtype)
            if self.constant_target:
                label_edges = self.gate.smooth(label_edges)
        # |F(P) - F(Y)| = |F(Y) - F(P)|: the labels' side is subtracted in place from the prediction's
        if self.constant_target:
            difference = self.gate.smooth(self.gate.edges(probabilities)).sub_(label_edges)
        else:
            difference = self.gate.smooth(self.gate.edges(probabilities).sub_(label_edges))
        return _WeightedMeanAbs.apply(difference, self.used_weights.to(difference))

    def _used_channels(self, probabilities: torch.Tensor) -> torch.Tensor:
        """The channels of the classes with weight > 0: a view when they are one run, else a copy."""
        if self._used_run is not None:
            return probabilities.narrow(1, *self._used_run)
        return probabilities.index_select(1, self.used_classes)


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for this device type (False for types autocast does not know, e.g. ``meta``)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except RuntimeError:
        return False


class _WeightedMeanAbs(torch.autograd.Function):
    """sum_c w_c mean |x_c| over batch and voxels, for x of shape B C *spatial and w of shape C.

    The same value and gradient as ``(x.abs().mean(over all but C) * w).sum()``: the per-class sums of |x| are
    one |x| tensor and one reduction, and the backward writes sgn(x) w_c / voxels in one tensor.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        voxels = x.numel() // x.shape[1]
        ctx.save_for_backward(x, weights)
        ctx.voxels = voxels
        per_class = x.abs().sum(dim=[0, *range(2, x.ndim)])  # C (faster on the CPU than an L1 vector_norm)
        return (per_class * weights).sum() / voxels

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weights = ctx.saved_tensors
        scale = (weights * (grad / ctx.voxels)).view((1, -1) + (1,) * (x.ndim - 2))
        return torch.sign(x).mul_(scale), None
