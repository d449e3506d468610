"""A real short run of every trainer through nnU-Net's own CLIs (``nnUNetv2_train``, ``nnUNetv2_predict``).

Each trainer runs as its budget variant ``<Trainer>_1epoch_2iters_1val`` (one epoch of 2 iterations, one
validation iteration; ``training/budget.py``), which nnU-Net finds with no variable set. The runs go in two
concurrent lanes. The continuation (``--c``) is tested in-process through nnU-Net's ``maybe_load_checkpoint``
in test_trainers.py.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_filternet.training.budget import Budget
from tests.tiny_dataset import nnunet_command, run_checked

pytestmark = pytest.mark.e2e  # whole nnU-Net runs in subprocesses: `make test-fast` skips them

#: The budget of every run here, as a trainer-name suffix.
SUFFIX = Budget(epochs=1, iterations=2, val_iterations=1).suffix

GATE_TRAINERS = (
    "nnUNetTrainerFilterNet",
    "nnUNetTrainerUNetF",
    "nnUNetTrainerFilterNetPaper",
    "nnUNetTrainerFilterNetLaplacian",
    "nnUNetTrainerFilterNetFixedSigma",
)
#: Table III's gate variants: trained and used for prediction through nnU-Net's CLIs.
TABLE3_TRAINERS = ("nnUNetTrainerFilterNetLaplacian", "nnUNetTrainerFilterNetFixedSigma")
NO_GATE_TRAINERS = ("nnUNetTrainerBUNet", "nnUNetTrainerBoundaryAwareFCN")


class Runs:
    """Where the module's CLI runs wrote, and helpers to read it."""

    def __init__(self, tiny, root: Path):
        self.tiny = tiny
        self.results = root / "results"
        self.inputs = root / "inputs"

    def env(self, **extra) -> dict:
        return self.tiny.env(self.results, **extra)

    def fold(self, trainer: str) -> Path:
        return self.results / self.tiny.dataset_name / f"{trainer}{SUFFIX}__nnUNetPlans_tiny__3d_fullres" / "fold_0"

    def logs(self, trainer: str) -> list[str]:
        return [p.read_text() for p in sorted(self.fold(trainer).glob("training_log_*.txt"))]

    def train(self, trainer: str):
        d = self.tiny.dataset_id
        args = f"{d} 3d_fullres 0 -tr {trainer}{SUFFIX} -p nnUNetPlans_tiny -device cpu".split()
        return run_checked([nnunet_command("nnUNetv2_train"), *args], self.env())

    def predict(self, trainer: str):
        d = self.tiny.dataset_id
        args = f"-d {d} -c 3d_fullres -f 0 -tr {trainer}{SUFFIX} -p nnUNetPlans_tiny -device cpu -npp 1 -nps 1".split()
        out = self.results.parent / f"predicted_{trainer}"
        io = ["-i", str(self.inputs), "-o", str(out)]
        return run_checked([nnunet_command("nnUNetv2_predict"), *io, *args], self.env())


@pytest.fixture(scope="module")
def runs(tiny_nnunet, tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer_runs")
    r = Runs(tiny_nnunet, root)
    r.inputs.mkdir()
    source = tiny_nnunet.raw / tiny_nnunet.dataset_name / "imagesTr" / "case00_0000.nii.gz"
    (r.inputs / source.name).write_bytes(source.read_bytes())

    def lane_a():
        r.train("nnUNetTrainerFilterNet")
        r.predict("nnUNetTrainerFilterNet")
        r.train("nnUNetTrainerUNetF")
        r.train("nnUNetTrainerFilterNetLaplacian")
        r.predict("nnUNetTrainerFilterNetLaplacian")

    def lane_b():
        r.train("nnUNetTrainerBoundaryAwareFCN")
        r.train("nnUNetTrainerBUNet")
        r.train("nnUNetTrainerFilterNetPaper")
        r.train("nnUNetTrainerFilterNetFixedSigma")
        r.predict("nnUNetTrainerFilterNetFixedSigma")

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(lane_a), pool.submit(lane_b)]:
            future.result()
    return r


@pytest.mark.parametrize("trainer", GATE_TRAINERS + NO_GATE_TRAINERS)
def test_training_log_has_the_report_lines(runs, trainer):
    log = runs.logs(trainer)[0]
    assert len(re.findall(r"^\S+ \S+ network parameters: \d+ $", log, re.M)) == 1
    assert len(re.findall(r"peak memory: \d+\.\d MiB \(process max RSS\)", log)) == 1  # one epoch
    gate_lines = re.findall(r"edge gate: lambda (\S+) sigma (\d\.\d{3})", log)
    laplacian_lines = re.findall(r"edge gate: lambda (\S+) \(Laplacian only, no sigma\)", log)
    if trainer == "nnUNetTrainerFilterNetLaplacian":
        assert laplacian_lines == ["0.001"] and gate_lines == []
    elif trainer in GATE_TRAINERS:
        assert [lam for lam, _ in gate_lines] == ["0.001"] and laplacian_lines == []
        if trainer == "nnUNetTrainerFilterNetFixedSigma":
            assert gate_lines[0][1] == "1.000"
    else:
        assert gate_lines == [] and laplacian_lines == []
    assert "Mean Validation Dice" in log
    assert (runs.fold(trainer) / "progress.png").is_file()
    assert (runs.fold(trainer) / "validation" / "summary.json").is_file()


@pytest.mark.parametrize("trainer", GATE_TRAINERS + NO_GATE_TRAINERS)
def test_final_checkpoint_holds_the_gate_exactly_when_there_is_one(runs, trainer):
    checkpoint = torch.load(runs.fold(trainer) / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == f"{trainer}{SUFFIX}"
    assert ("filternet_edge_gate" in checkpoint["optimizer_state"]) == (trainer in GATE_TRAINERS)


def test_paper_variant_logs_its_protocol(runs):
    log = runs.logs("nnUNetTrainerFilterNetPaper")[0]
    assert "Current learning rate: 0.001" in log
    assert "paper protocol: plans give patch (8, 32, 32) and batch 2" in log


@pytest.mark.parametrize("trainer", ("nnUNetTrainerFilterNet",) + TABLE3_TRAINERS)
def test_nnunet_predict_finds_and_rebuilds_our_trainer(runs, trainer):
    """nnUNetv2_predict looks the trainer up by the name in the checkpoint and builds its network."""
    import SimpleITK as sitk

    predicted = runs.results.parent / f"predicted_{trainer}" / "case00.nii.gz"
    image = sitk.ReadImage(str(runs.inputs / "case00_0000.nii.gz"))
    labels = sitk.ReadImage(str(predicted))
    assert labels.GetSize() == image.GetSize() and labels.GetSpacing() == pytest.approx(image.GetSpacing())
    assert set(np.unique(sitk.GetArrayFromImage(labels)).tolist()) <= set(range(6))
    plans = json.loads((predicted.parent / "plans.json").read_text())
    assert plans["plans_name"] == "nnUNetPlans_tiny"
