"""The sigma study's scripts (``nnunet_filternet.training.sigma_study``): importable from the package, using its
definitions, and their trainers found by nnU-Net's own search through the study's ``nnUNet_extTrainer`` folder."""

from __future__ import annotations

import pytest
import torch

from nnunet_filternet.edge.kernels import GAUSSIAN_NORMALISATIONS
from nnunet_filternet.labels import LABELS
from nnunet_filternet.training.sigma_study import static_gradients, trainers, trajectories, weight_decay_schedule


def test_the_study_trainers_are_found_by_nnunets_search_from_the_printed_folder(monkeypatch):
    from nnunet_filternet.training.discovery import find_trainer

    monkeypatch.setenv("nnUNet_extTrainer", trainers.EXT_TRAINER_DIR)
    for normalisation in GAUSSIAN_NORMALISATIONS:
        name = f"nnUNetTrainerFilterNet_sigma_{normalisation}"
        found = find_trainer(name)
        assert found is getattr(trainers, name) is trainers.STUDY_TRAINERS[normalisation]
        assert found.__module__ == "nnunet_filternet.training.sigma_study.trainers"
        assert found.edge_gate_normalisation == normalisation and found.budget == trainers.BUDGET
    monkeypatch.delenv("nnUNet_extTrainer")
    assert find_trainer("nnUNetTrainerFilterNet_sigma_tau_constant") is None  # not among the package's trainers


def test_a_study_trainer_is_the_budget_variant_made_by_the_one_factory():
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    cls = trainers.STUDY_TRAINERS["unit_energy"]
    (base,) = cls.__bases__
    assert base.__name__ == "nnUNetTrainerFilterNet_30epochs_50iters_2val" and issubclass(cls, nnUNetTrainerFilterNet)
    assert "perform_actual_validation" in vars(cls) and "__init__" not in vars(cls)


def test_static_gradients_label_every_compartment_of_the_label_convention():
    labels, predictions = static_gradients.labels_and_predictions(size=32)
    assert set(torch.unique(labels).tolist()) == set(LABELS.values())
    assert all(p.shape == (1, len(LABELS), 4, 32, 32) for p in predictions.values())
    loss, d_sigma = static_gradients.gradient(labels, predictions["noisy"], 1.0, "tau_constant")
    assert loss > 0 and d_sigma < 0  # docs/training.md: reading 1 pushes sigma up for spread errors


def test_weight_decay_schedule_follows_the_paper_protocol():
    """docs/training.md's table, row 5e-4: 0.9475, 0.9373, 0.9353 (epochs 10, 20, 30)."""
    assert weight_decay_schedule.trajectory(5e-4) == pytest.approx([0.9475, 0.9373, 0.9353], abs=5e-5)


def test_trajectories_read_sigma_per_epoch_from_the_checkpoint(tmp_path):
    fold = tmp_path / "nnUNetTrainerFilterNet__nnUNetPlans__3d_fullres" / "fold_0"
    fold.mkdir(parents=True)
    torch.save({"logging": {trajectories.SIGMA_KEY: [1.0, 1.0000123456]}}, fold / "checkpoint_final.pth")
    assert trajectories.sigma_per_epoch(fold) == [1.0, 1.0000123456]
    torch.save({"logging": {}}, fold / "checkpoint_final.pth")
    with pytest.raises(SystemExit, match="edge gate's sigma"):
        trajectories.sigma_per_epoch(fold)
