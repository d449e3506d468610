"""Mixed precision of one training step: the trainer's own ``train_step`` in float32 and under autocast, compared.

nnU-Net's ``train_step`` autocasts (float16) and scales the loss with a ``GradScaler`` only when
``self.device.type == 'cuda'``; elsewhere it enters ``dummy_context()`` and has no scaler. On a GPU the step is
therefore compared as nnU-Net runs it. On a CPU, :func:`cpu_autocast` runs the *same* ``train_step`` under CPU
autocast: for the duration of the block it rebinds the name ``dummy_context`` in nnU-Net's trainer module to
``torch.autocast("cpu", dtype)`` and gives the trainer a CPU ``GradScaler``. Nothing of nnU-Net's step is copied,
so scale, backward, unscale, nnU-Net's clip of the network, the optimizer step (with our step pre-hook clipping
sigma after the unscale) and the scaler update all run as written.

The edge gate computes softmax, the Laplacian of the probabilities, rho and the Gaussian in float32 under
autocast (``edge/loss.py``, ``edge/filter.py``): in float16 the probabilities near 0 and 1 keep 11 bits, so the
Laplacian's small differences of neighbouring probabilities (and with them the edge maps) would round away.
:func:`compare_steps` states how close a mixed-precision step must stay to float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

#: Largest relative difference of the total loss, the edge loss and sigma's gradient between a mixed-precision
#: step and a float32 step from the same weights and batch (measured on the tiny plans, CPU: loss 2e-5 / 5e-5,
#: edge loss 4e-5 / 2e-4, sigma's gradient 3e-4 / 2e-3 for float16 / bfloat16).
LOSS_RTOL = 1e-2
EDGE_LOSS_RTOL = 2e-3
SIGMA_GRAD_RTOL = 0.1


def cpu_autocast_dtype() -> torch.dtype:
    """float16 where PyTorch's CPU kernels run a 3D conv and transposed conv forward + backward in it, else bfloat16."""
    x = torch.randn(1, 2, 3, 4, 4, requires_grad=True)
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            y = torch.nn.functional.conv3d(x, torch.randn(2, 2, 3, 3, 3), padding=1)
            y = torch.nn.functional.conv_transpose3d(y, torch.randn(2, 2, 1, 2, 2), stride=(1, 2, 2))
        y.float().sum().backward()
    except (RuntimeError, NotImplementedError):
        return torch.bfloat16
    return torch.float16 if y.dtype == torch.float16 else torch.bfloat16


@contextlib.contextmanager
def cpu_autocast(trainer, dtype: torch.dtype) -> Iterator[None]:
    """Run ``trainer.train_step`` (nnU-Net's own) under ``torch.autocast("cpu", dtype)`` with a CPU GradScaler.

    Args:
        trainer: an initialised nnU-Net trainer on the CPU.
        dtype: ``torch.float16`` or ``torch.bfloat16``.
    """
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module

    if trainer.device.type != "cpu":
        raise ValueError(f"cpu_autocast: expected a trainer on the CPU, found device {trainer.device}")
    original = trainer_module.dummy_context
    trainer_module.dummy_context = lambda: torch.autocast("cpu", dtype=dtype)
    trainer.grad_scaler = torch.GradScaler("cpu")
    try:
        yield
    finally:
        trainer_module.dummy_context = original
        trainer.grad_scaler = None


def enter_epoch_of_final_lambda(trainer) -> None:
    """Set an edge-gate trainer to the first epoch of its last lambda part and start that epoch (its hooks).

    There lambda is 0.1 (at epoch 0 it is 0.001) while nnU-Net's poly schedule still gives 0.37 x the initial
    learning rate, so sigma's gradient and step are large enough to compare; times the GradScaler's initial
    scale (2**16) its gradient then exceeds the clip bound, so a clip before the unscale would show.
    """
    from nnunet_filternet.edge.schedule import edge_lambda

    n = trainer.num_epochs
    trainer.current_epoch = next(e for e in range(n) if edge_lambda(e, n) == edge_lambda(n - 1, n))
    trainer.on_train_epoch_start()


@dataclass(frozen=True)
class StepRecord:
    """What one ``train_step`` did.

    Attributes:
        loss: the step's total loss (what ``train_step`` returns).
        edge_loss: the edge loss Le of the step (before lambda).
        output_dtype: dtype of the network's (first) output: float16/bfloat16 when autocast was active.
        sigma_grad: d loss / d log(sigma) after the step (unscaled and clipped, as the optimizer used it).
        sigma_before, sigma_after: sigma around the step.
        scale_before, scale_after: the GradScaler's scale around the step (None without a scaler); a drop means
            the scaler found inf/NaN gradients and skipped the step.
        finite: every network parameter and gradient is finite after the step.
    """

    loss: float
    edge_loss: float
    output_dtype: torch.dtype
    sigma_grad: float
    sigma_before: float
    sigma_after: float
    scale_before: float | None
    scale_after: float | None
    finite: bool


def _first_tensor(output) -> torch.Tensor:
    while not isinstance(output, torch.Tensor):
        output = output[0]
    return output


def record_train_step(trainer, batch: dict) -> StepRecord:
    """Run ``trainer.train_step(batch)`` once (an edge-gate trainer) and record what it did."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str, transform):
        def hook(_module, _inputs, output) -> None:  # returns None: the output stays as it is
            seen.setdefault(name, transform(output))

        return hook

    hooks = [
        trainer.network.register_forward_hook(keep("output", _first_tensor)),
        trainer.loss.edge_loss.register_forward_hook(keep("edge", torch.Tensor.detach)),
    ]
    scaler = trainer.grad_scaler
    scale_before = scaler.get_scale() if scaler is not None and scaler.is_enabled() else None
    sigma_before = trainer.edge_gate.sigma.item()
    try:
        loss = float(trainer.train_step(batch)["loss"])
    finally:
        for hook in hooks:
            hook.remove()
    params = list(trainer.network.parameters())
    finite = all(bool(torch.isfinite(p).all()) for p in params)
    finite &= all(bool(torch.isfinite(p.grad).all()) for p in params if p.grad is not None)
    return StepRecord(
        loss=loss,
        edge_loss=float(seen["edge"]),
        output_dtype=seen["output"].dtype,
        sigma_grad=float(trainer.edge_gate.log_sigma.grad),
        sigma_before=sigma_before,
        sigma_after=trainer.edge_gate.sigma.item(),
        scale_before=scale_before,
        scale_after=scaler.get_scale() if scale_before is not None else None,
        finite=finite,
    )


def _relative(value: float, reference: float) -> float:
    return abs(value - reference) / abs(reference) if reference else math.inf


def compare_steps(reference: StepRecord, mixed: StepRecord) -> list[str]:
    """Problems of a mixed-precision step against a float32 step from the same weights and batch (empty: fine).

    Checks: the network really ran in half precision; loss, edge loss, sigma and every weight finite; the
    scaler did not skip the step (sigma moved, scale unchanged); the loss and edge loss within
    :data:`LOSS_RTOL` / :data:`EDGE_LOSS_RTOL` of float32; sigma's gradient non-zero, of the same sign and
    within :data:`SIGMA_GRAD_RTOL` of float32's.
    """
    problems = []
    if mixed.output_dtype not in (torch.float16, torch.bfloat16):
        problems.append(f"the network ran in {mixed.output_dtype}, not under autocast")
    values = (mixed.loss, mixed.edge_loss, mixed.sigma_grad, mixed.sigma_after)
    if not all(math.isfinite(v) for v in values) or not mixed.finite:
        problems.append(f"not finite: loss, edge loss, sigma grad, sigma = {values}, weights finite {mixed.finite}")
    if mixed.scale_before is not None and mixed.scale_after < mixed.scale_before:
        problems.append(f"GradScaler skipped the step (scale {mixed.scale_before:g} -> {mixed.scale_after:g})")
    if mixed.sigma_after == mixed.sigma_before:
        problems.append(f"sigma did not move ({mixed.sigma_before!r})")
    for name, value, ref, rtol in (
        ("loss", mixed.loss, reference.loss, LOSS_RTOL),
        ("edge loss", mixed.edge_loss, reference.edge_loss, EDGE_LOSS_RTOL),
        ("sigma gradient", mixed.sigma_grad, reference.sigma_grad, SIGMA_GRAD_RTOL),
    ):
        if not _relative(value, ref) <= rtol:
            problems.append(f"{name} {value:.6g} against float32 {ref:.6g}: relative difference above {rtol:g}")
    if mixed.sigma_grad == 0 or math.copysign(1, mixed.sigma_grad) != math.copysign(1, reference.sigma_grad):
        problems.append(f"sigma gradient {mixed.sigma_grad:.6g}: not the sign of float32's {reference.sigma_grad:.6g}")
    return problems
