"""Device placement: a training step of each of our trainers makes no tensor on the host (no per-step H2D copy).

Each trainer is built by nnU-Net's own ``get_trainer_from_args`` on the tiny plans with ``device=meta`` and
initialised as nnUNetv2_train does, so whatever its ``initialize`` puts on the device lands on ``meta`` and whatever
it forgets stays on the CPU; ``train_step`` then runs under a recorder of every operator touching a CPU tensor
(``gpu_check.placement``). On a GPU, ``filternet gpu-check`` counts the real ``Memcpy HtoD`` events instead.
"""

from __future__ import annotations

import pytest
import torch

from nnunet_filternet.gpu_check.placement import HostTensorEvent, host_tensor_events
from tests.test_trainers import synthetic_batch
from tests.tiny_dataset import DATASET_ID

TRAINERS = (
    "nnUNetTrainerFilterNet",
    "nnUNetTrainerUNetF",
    "nnUNetTrainerBUNet",
    "nnUNetTrainerBoundaryAwareFCN",
    "nnUNetTrainerFilterNetPaper",
)


@pytest.fixture
def meta_trainer(tiny_nnunet, tmp_path, monkeypatch):
    """``make(trainer_name)``: an initialised trainer on the tiny plans whose device is ``meta``."""
    from nnunetv2.run.run_training import get_trainer_from_args

    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_nnunet.preprocessed))
    monkeypatch.setenv("nnUNet_raw", str(tiny_nnunet.raw))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    monkeypatch.setenv("nnUNet_compile", "f")  # nnU-Net compiles on every device but CPU and MPS by default

    def make(trainer_name: str):
        trainer = get_trainer_from_args(
            str(DATASET_ID), "3d_fullres", 0, trainer_name, "nnUNetPlans_tiny", device=torch.device("meta")
        )
        trainer.initialize()
        return trainer

    return make


def _listing(events: list[HostTensorEvent]) -> str:
    return "\n".join(f"  {e.op} at {e.where}" for e in events)


@pytest.mark.parametrize("trainer_name", TRAINERS)
def test_training_step_creates_no_host_tensor_in_our_code(meta_trainer, trainer_name):
    trainer = meta_trainer(trainer_name)
    assert {p.device.type for p in trainer.network.parameters()} == {"meta"}
    events = host_tensor_events(trainer, synthetic_batch(trainer))
    ours = [e for e in events if e.ours]
    assert ours == [], f"{trainer_name}: host tensors made or read in our code during a step:\n{_listing(ours)}"
    # the recorder works: it sees nnU-Net's own copies of the batch to the device and of the loss back
    copies = [e for e in events if e.op == "aten._to_copy.default" and "nnUNetTrainer.py" in e.where]
    assert len(copies) >= 3, _listing(events)  # data, at least one target, the loss


def test_recorder_blames_a_host_constant_in_our_code(meta_trainer, monkeypatch):
    """A mutant edge loss whose class weights live on the host (the bug class fixed in EdgeLoss) is caught."""
    trainer = meta_trainer("nnUNetTrainerFilterNet")
    edge_loss = trainer.loss.edge_loss
    edge_loss.weights = torch.zeros(edge_loss.weights.shape)  # as the trainer built them before the fix: on the host
    edge_loss.used_classes = torch.zeros(edge_loss.used_classes.shape, dtype=torch.long)
    events = host_tensor_events(trainer, synthetic_batch(trainer))
    assert any(e.ours and "edge/loss.py" in e.where for e in events), _listing(events)


def test_profiler_copy_listing_runs_on_a_step():
    """``host_to_device_copies`` (the GPU check's counter) parses a profile; on a CPU there is nothing to copy."""
    from nnunet_filternet.gpu_check.placement import host_to_device_copies

    layer = torch.nn.Conv3d(1, 2, 3)
    assert host_to_device_copies(lambda: layer(torch.randn(1, 1, 4, 6, 6)).sum().backward()) == []
