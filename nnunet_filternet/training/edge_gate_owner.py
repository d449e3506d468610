"""The owner of the edge gate's trainable sigma inside an nnU-Net trainer.

nnU-Net's base trainer builds the optimizer before the loss, clips and checkpoints only
``self.network`` and lets DDP synchronise only the network's gradients. The gate (and its one parameter,
``log_sigma``) lives outside the network, so that a prediction is a plain forward of the network. This
mixin gives it an explicit owner, each duty through one of nnU-Net's hooks, always wrapping ``super()``:

- ``initialize``: builds the gate (:func:`build_edge_gate`, its kind from the class attributes
  ``edge_gate_laplacian_only``, ``edge_gate_train_sigma``, ``edge_gate_normalisation`` and
  ``edge_gate_sigma_parametrisation``) from the configuration's spacing before nnU-Net builds the optimizer.
- ``configure_optimizers``: when the gate has a trainable sigma, adds its own parameter group (weight decay
  ``edge_gate_sigma_weight_decay``, 0 by default) to whatever optimizer ``super()`` returns; nnU-Net's LR schedulers
  set the learning rate of every group, so sigma follows the network's schedule. A step pre-hook on the optimizer
  clips sigma's gradient norm at :data:`GRAD_CLIP` (nnU-Net clips ``network.parameters()`` at 12 in ``train_step``;
  the gate is clipped separately, at the same bound, after GradScaler's unscale, just before the step).
- DDP: a post-accumulate-grad hook averages sigma's gradient over the ranks (its own process group, so
  the collective never interleaves with DDP's buckets) and ``on_train_start`` broadcasts sigma from rank 0.
- ``save_checkpoint`` / ``load_checkpoint``: the gate's state dict under :data:`EDGE_GATE_KEY` in the optimizer's
  state dict of every checkpoint (nnU-Net writes it once); ``nnUNetv2_train --c`` and ``--val`` restore it.
- ``_build_loss``: wraps ``super()``'s region loss into :class:`RegionEdgeLoss`, with W from dataset.json (and the
  labels' edge map as a constant target where ``edge_loss_constant_target`` says so).
- per epoch: lambda from :func:`edge_lambda`, the line ``edge gate: lambda 0.001 sigma 1.000`` (see
  :func:`edge_gate_log_line`) in the training log, and both values in the logger and the progress plot.
"""

from __future__ import annotations

import math
import os

import torch
from torch import distributed as dist
from torch import nn

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.training.device import DEFAULT_DEVICE

#: Key of the gate's state dict in the optimizer's state dict, i.e. in ``checkpoint["optimizer_state"]``.
EDGE_GATE_KEY = "filternet_edge_gate"

#: Name of the optimizer parameter group that holds the gate's parameters.
EDGE_GATE_GROUP = "filternet_edge_gate"

#: Gradient-norm bound of the gate (nnU-Net's bound for the network in ``train_step``).
GRAD_CLIP = 12.0


def build_edge_gate(
    configuration_manager,
    laplacian_only: bool = False,
    train_sigma: bool = True,
    normalisation: str | None = None,
    parametrisation: str = "log",
) -> nn.Module:
    """The edge gate for a plans configuration, on the axes nnU-Net convolves at its first stage; sigma = 1.

    Args:
        configuration_manager: nnU-Net's ``ConfigurationManager`` (needs ``.spacing``, nnU-Net axis order).
        laplacian_only: a ``LaplacianGate`` (F_L = L * x) instead of an ``EdgeGate``.
        train_sigma: whether the ``EdgeGate``'s sigma is trained (False: fixed at 1).
        normalisation: the ``EdgeGate``'s reading of tau (``edge.kernels.GAUSSIAN_NORMALISATIONS``; None: the
            default).
        parametrisation: how a trained sigma is stored (``edge.gate.SIGMA_PARAMETRISATIONS``: log or direct).
    """
    from nnunet_filternet.edge.gate import EdgeGate, LaplacianGate, in_plane_axes_from_spacing
    from nnunet_filternet.edge.kernels import DEFAULT_NORMALISATION

    spacing = list(configuration_manager.spacing)
    axes = in_plane_axes_from_spacing(spacing)
    if laplacian_only:
        return LaplacianGate(n_spatial_dims=len(spacing), in_plane_axes=axes)
    return EdgeGate(
        n_spatial_dims=len(spacing),
        in_plane_axes=axes,
        train_sigma=train_sigma,
        normalisation=DEFAULT_NORMALISATION if normalisation is None else normalisation,
        parametrisation=parametrisation,
    )


def add_gate_param_group(optimizer: torch.optim.Optimizer, gate: nn.Module, weight_decay: float = 0.0) -> dict:
    """Give ``gate``'s parameters their own group (``weight_decay``, current LR of group 0); return it."""
    group = {"params": list(gate.parameters()), "weight_decay": float(weight_decay), "name": EDGE_GATE_GROUP}
    if "lr" in optimizer.param_groups[0]:
        group["lr"] = optimizer.param_groups[0]["lr"]
    optimizer.add_param_group(group)
    return optimizer.param_groups[-1]


def clip_gate_grads_before_step(optimizer: torch.optim.Optimizer, gate: nn.Module, max_norm: float = GRAD_CLIP):
    """Register an optimizer step pre-hook clipping ``gate``'s gradient norm at ``max_norm``; return its handle."""

    def _clip(_optimizer, _args, _kwargs):
        params = [p for p in gate.parameters() if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, max_norm)

    return optimizer.register_step_pre_hook(_clip)


def average_gate_grads_across_ranks(gate: nn.Module, group=None) -> list:
    """Average ``gate``'s gradients over all ranks as soon as backward has accumulated them.

    Every rank runs the same backward, so every rank reaches the hook once per step; the result is the
    gradient of the mean loss over ranks, as DDP gives the network. Returns the hook handles.

    Args:
        gate: module whose parameters live outside the DDP-wrapped network.
        group: process group (default: the world). A dedicated group keeps this collective apart from
            the ones DDP runs for the network.
    """

    def _average(param: torch.Tensor) -> None:
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM, group=group)
        param.grad.div_(dist.get_world_size(group))

    return [p.register_post_accumulate_grad_hook(_average) for p in gate.parameters()]


def broadcast_gate(gate: nn.Module, src: int = 0, group=None) -> None:
    """Copy ``gate``'s parameters and buffers from rank ``src`` to every rank."""
    with torch.no_grad():
        for tensor in [*gate.parameters(), *gate.buffers()]:
            dist.broadcast(tensor, src=src, group=group)


def add_gate_state(optimizer_state: dict, gate: nn.Module) -> dict:
    """``optimizer_state`` (an optimizer's state dict) with ``gate``'s state dict (CPU) under :data:`EDGE_GATE_KEY`.

    Called by an optimizer state-dict post-hook while nnU-Net builds a checkpoint; ``Optimizer.load_state_dict``
    ignores the extra key.
    """
    optimizer_state[EDGE_GATE_KEY] = {k: v.detach().cpu().clone() for k, v in gate.state_dict().items()}
    return optimizer_state


def gate_state_from_checkpoint(filename_or_checkpoint) -> dict:
    """The gate's state dict stored in a checkpoint (file path or loaded checkpoint dict).

    It is read from ``checkpoint["optimizer_state"][EDGE_GATE_KEY]``, where :meth:`EdgeGateOwnerMixin.save_checkpoint`
    writes it.

    Raises:
        InputError: the checkpoint has no gate state (it was not written by an edge-gate trainer).
    """
    if isinstance(filename_or_checkpoint, dict):
        checkpoint, source = filename_or_checkpoint, "checkpoint"
    else:
        source = os.fspath(filename_or_checkpoint)
        checkpoint = torch.load(source, map_location="cpu", weights_only=False, mmap=True)
    optimizer_state = checkpoint.get("optimizer_state") or {}
    if EDGE_GATE_KEY in optimizer_state:
        return optimizer_state[EDGE_GATE_KEY]
    raise InputError(
        source,
        f'expected the key "{EDGE_GATE_KEY}" in its optimizer_state (the edge gate\'s sigma, written by every '
        f"edge-gate trainer), found only {sorted(optimizer_state)}",
    )


def edge_gate_log_line(edge_lambda_value: float, sigma: float | None) -> str:
    """The per-epoch training-log line the report parser reads.

    ``edge gate: lambda 0.001 sigma 1.000``, or ``edge gate: lambda 0.001 (Laplacian only, no sigma)`` for a
    gate without sigma (``sigma`` None).
    """
    if sigma is None:
        return f"edge gate: lambda {edge_lambda_value:g} (Laplacian only, no sigma)"
    return f"edge gate: lambda {edge_lambda_value:g} sigma {sigma:.3f}"


def gate_sigma(gate: nn.Module) -> float | None:
    """The gate's current sigma as a number, None for a gate without one (``LaplacianGate``)."""
    return None if gate.sigma is None else float(gate.sigma.detach().cpu())


def sigma_from_gate_state(state: dict) -> float | None:
    """The sigma a gate with this state dict (as saved in a checkpoint) filters with, exactly; None for none.

    The state holds ``log_sigma`` (trained or fixed sigma), ``direct_sigma`` (sigma trained as itself) or nothing
    (the Laplacian-only gate). The value is the gate's own :attr:`~nnunet_filternet.edge.gate.EdgeGate.sigma` after
    loading the state, so it follows the gate's definition (``exp``, the floor of a direct sigma) in float32.
    """
    from nnunet_filternet.edge.gate import EdgeGate

    if "direct_sigma" in state:
        gate = EdgeGate(2, None, parametrisation="direct")
    elif "log_sigma" in state:
        gate = EdgeGate(2, None, train_sigma=False)
    else:
        return None
    gate.load_state_dict(state)
    return gate_sigma(gate)


class EdgeGateOwnerMixin:
    """Mixin for an ``nnUNetTrainer`` subclass: owns the edge gate and adds the edge loss (see module doc).

    Put it before the trainer classes in the bases; it only wraps ``super()``'s hooks. ``self.edge_gate``
    is the gate (None before ``initialize``); ``self.edge_lambda`` is the current lambda. Subclasses choose
    the gate and its loss with the class attributes below (Table III's variants and the readings of sigma;
    docs/training.md, "Sigma").
    """

    #: Table III's "F_L": the Laplacian-only gate, no rho, no Gaussian, no sigma.
    edge_gate_laplacian_only: bool = False
    #: False: sigma stays at 1 (Table III's "F_LrhoG(sigma = 1)").
    edge_gate_train_sigma: bool = True
    #: How tau enters kG and sigma's gradient (``edge.kernels.GAUSSIAN_NORMALISATIONS``; None: the default).
    edge_gate_normalisation: str | None = None
    #: How sigma is trained: ``log`` (log sigma, the default) or ``direct`` (sigma itself).
    edge_gate_sigma_parametrisation: str = "log"
    #: Weight decay of sigma's own optimizer group (0: none, the default).
    edge_gate_sigma_weight_decay: float = 0.0
    #: The labels' edge map F(Y_n | sigma) as a constant target (no gradient into sigma through it).
    edge_loss_constant_target: bool = False

    def __init__(
        self, plans: dict, configuration: str, fold: int, dataset_json: dict, device: torch.device = DEFAULT_DEVICE
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        from nnunet_filternet.training.progress_logger import EdgeGateLocalLogger

        self.logger.local_logger = EdgeGateLocalLogger(self.logger.local_logger.verbose)
        self.edge_gate = None
        self.edge_lambda = 0.0
        self._edge_gate_group = None

    # --- ownership: build, optimise, clip, synchronise ---------------------------------------------------
    def initialize(self):
        if not self.was_initialized:
            self.edge_gate = build_edge_gate(
                self.configuration_manager,
                laplacian_only=self.edge_gate_laplacian_only,
                train_sigma=self.edge_gate_train_sigma,
                normalisation=self.edge_gate_normalisation,
                parametrisation=self.edge_gate_sigma_parametrisation,
            ).to(self.device)
            if self.is_ddp:
                self._edge_gate_group = dist.new_group()
                average_gate_grads_across_ranks(self.edge_gate, self._edge_gate_group)
        super().initialize()

    def configure_optimizers(self):
        optimizer, lr_scheduler = super().configure_optimizers()
        if any(p.requires_grad for p in self.edge_gate.parameters()):
            add_gate_param_group(optimizer, self.edge_gate, self.edge_gate_sigma_weight_decay)
            clip_gate_grads_before_step(optimizer, self.edge_gate)
        return optimizer, lr_scheduler

    def on_train_start(self):
        super().on_train_start()
        if self.is_ddp:
            broadcast_gate(self.edge_gate, src=0, group=self._edge_gate_group)

    # --- loss ------------------------------------------------------------------------------------------
    def _build_loss(self):
        from nnunet_filternet.edge.loss import EdgeLoss
        from nnunet_filternet.training.edge_weights import edge_weights_from_dataset_json
        from nnunet_filternet.training.region_edge_loss import RegionEdgeLoss

        if self.label_manager.has_regions or self.label_manager.has_ignore_label:
            raise FilterNetError(
                f"{self.__class__.__name__}: the edge loss needs plain labels (softmax output); this dataset uses "
                "region-based training or an ignore label"
            )
        source = os.path.join(self.preprocessed_dataset_folder_base or "", "dataset.json")
        weights = edge_weights_from_dataset_json(
            self.dataset_json, self.label_manager.num_segmentation_heads, source=source
        )
        with torch.device(self.device):  # its constants (class weights) made once on the device, not copied per step
            edge_loss = EdgeLoss(self.edge_gate, weights, constant_target=self.edge_loss_constant_target)
        return RegionEdgeLoss(super()._build_loss(), edge_loss, self.edge_lambda)

    # --- schedule and logging ----------------------------------------------------------------------------
    def on_train_epoch_start(self):
        from nnunet_filternet.edge.schedule import edge_lambda

        super().on_train_epoch_start()
        self.edge_lambda = edge_lambda(self.current_epoch, self.num_epochs)
        self.loss.edge_lambda = self.edge_lambda

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        sigma = gate_sigma(self.edge_gate)
        self.logger.log("edge_lambda", self.edge_lambda, self.current_epoch)
        self.logger.log("edge_sigma", math.nan if sigma is None else sigma, self.current_epoch)
        self.print_to_log_file(edge_gate_log_line(self.edge_lambda, sigma))

    # --- checkpoints -------------------------------------------------------------------------------------
    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's single write, with the gate's state added to the optimizer state dict it builds the file from."""
        hook = self.optimizer.register_state_dict_post_hook(lambda _, state: add_gate_state(state, self.edge_gate))
        try:
            super().save_checkpoint(filename)
        finally:
            hook.remove()

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        gate_state = gate_state_from_checkpoint(filename_or_checkpoint)  # fail early, naming the file
        super().load_checkpoint(filename_or_checkpoint)
        self.edge_gate.load_state_dict(gate_state)
        sigma = gate_sigma(self.edge_gate)
        if sigma is not None:
            self.print_to_log_file(f"edge gate: restored sigma {sigma:.6f} from the checkpoint")
