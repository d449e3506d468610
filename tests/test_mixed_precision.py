"""Mixed precision: the FilterNet and UNet-F trainers' own ``train_step`` under CPU autocast against float32.

nnU-Net autocasts only on CUDA; ``gpu_check.amp.cpu_autocast`` runs its unchanged ``train_step`` under CPU autocast
with a CPU GradScaler (the module docstring says how). Both trainers of a comparison start from the same weights
and take the same batch, at the start of the last third of training (lambda = 0.1), where sigma's gradient times the
scaler's initial scale (2**16) exceeds the clip bound: clipping sigma before the scaler's unscale would then
cut its gradient by orders of magnitude and fail the comparison.
"""

from __future__ import annotations

import pytest
import torch

from nnunet_filternet.gpu_check.amp import (
    EDGE_LOSS_RTOL,
    compare_steps,
    cpu_autocast,
    cpu_autocast_dtype,
    enter_epoch_of_final_lambda,
    record_train_step,
)
from tests.test_trainers import synthetic_batch
from tests.tiny_dataset import DATASET_ID

#: float16 where this torch's CPU kernels support it (torch 2.14 here does), else bfloat16.
HALF = cpu_autocast_dtype()


@pytest.fixture
def twin_trainers(tiny_nnunet, tmp_path, monkeypatch):
    """``twins(trainer_name)``: two initialised trainers on the tiny plans with equal weights, at lambda = 0.1."""
    from nnunetv2.run.run_training import get_trainer_from_args

    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_nnunet.preprocessed))
    monkeypatch.setenv("nnUNet_raw", str(tiny_nnunet.raw))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def twins(trainer_name: str):
        pair = []
        for _ in range(2):
            trainer = get_trainer_from_args(
                str(DATASET_ID), "3d_fullres", 0, trainer_name, "nnUNetPlans_tiny", device=torch.device("cpu")
            )
            trainer.initialize()
            enter_epoch_of_final_lambda(trainer)
            pair.append(trainer)
        pair[1].network.load_state_dict(pair[0].network.state_dict())
        pair[1].edge_gate.load_state_dict(pair[0].edge_gate.state_dict())
        assert pair[0].loss.edge_lambda == pytest.approx(0.1)
        return pair

    yield twins
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("trainer_name", "dtype"),
    [("nnUNetTrainerFilterNet", HALF), ("nnUNetTrainerUNetF", HALF), ("nnUNetTrainerFilterNet", torch.bfloat16)],
)
def test_mixed_precision_step_stays_close_to_float32(twin_trainers, trainer_name, dtype):
    from nnunet_filternet.training.edge_gate_owner import GRAD_CLIP

    reference_trainer, mixed_trainer = twin_trainers(trainer_name)
    batch = synthetic_batch(reference_trainer)
    reference = record_train_step(reference_trainer, batch)
    with cpu_autocast(mixed_trainer, dtype):
        mixed = record_train_step(mixed_trainer, batch)
    assert reference.output_dtype == torch.float32 and mixed.output_dtype == dtype  # autocast reached the network
    assert abs(reference.sigma_grad) * mixed.scale_before > GRAD_CLIP  # a clip before the unscale would show
    assert compare_steps(reference, mixed) == []


def test_comparison_flags_what_it_promises():
    """compare_steps itself: each broken property of a mixed step is reported."""
    from dataclasses import replace

    from nnunet_filternet.gpu_check.amp import StepRecord

    good = StepRecord(2.0, 0.1, torch.float16, -1e-3, 1.0, 1.0001, 65536.0, 65536.0, True)
    reference = replace(good, output_dtype=torch.float32, scale_before=None, scale_after=None)
    assert compare_steps(reference, good) == []
    broken = {
        "ran in torch.float32": replace(good, output_dtype=torch.float32),
        "not finite": replace(good, loss=float("nan")),
        "skipped the step": replace(good, scale_after=32768.0),
        "did not move": replace(good, sigma_after=1.0),
        "edge loss": replace(good, edge_loss=0.1 * (1 + 2 * EDGE_LOSS_RTOL)),
        "sigma gradient": replace(good, sigma_grad=-1e-4),
        "not the sign": replace(good, sigma_grad=1e-3),
    }
    for message, record in broken.items():
        assert any(message in p for p in compare_steps(reference, record)), message


def test_edge_loss_runs_in_float32_inside_autocast():
    """Half logits under autocast give exactly the loss and sigma gradient of the same logits cast to float32."""
    from nnunet_filternet.edge.gate import EdgeGate
    from nnunet_filternet.edge.loss import EdgeLoss
    from nnunet_filternet.labels import PAPER_EDGE_WEIGHTS

    g = torch.Generator().manual_seed(0)
    logits = (4 * torch.randn(2, 6, 4, 24, 24, generator=g)).to(HALF)
    target = torch.randint(0, 6, (2, 1, 4, 24, 24), generator=g).float()
    results = []
    for autocast, inputs in ((True, logits), (False, logits.float())):
        loss = EdgeLoss(EdgeGate(3, (1, 2), sigma_init=0.8), PAPER_EDGE_WEIGHTS)
        with torch.autocast("cpu", dtype=HALF, enabled=autocast):
            value = loss(inputs.detach().requires_grad_(), target)
        value.backward()
        results.append((value.dtype, value.item(), loss.gate.log_sigma.grad.item()))
    assert results[0] == results[1] and results[0][0] == torch.float32


def test_cpu_autocast_gives_nnunet_its_step_back(twin_trainers):
    import nnunetv2.training.nnUNetTrainer.nnUNetTrainer as trainer_module

    original = trainer_module.dummy_context
    trainer, _ = twin_trainers("nnUNetTrainerFilterNet")
    with pytest.raises(RuntimeError, match="boom"), cpu_autocast(trainer, HALF):
        assert isinstance(trainer.grad_scaler, torch.GradScaler)
        raise RuntimeError("boom")
    assert trainer_module.dummy_context is original and trainer.grad_scaler is None
