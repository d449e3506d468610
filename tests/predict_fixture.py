"""A fake trained model for fast ``filternet predict`` tests: everything real except nnU-Net's network.

``make_model(results, label)`` writes ``results/nnUNetTrainer__nnUNetPlans__3d_fullres`` with ``plans.json``,
``dataset.json`` and ``fold_0/checkpoint_final.pth``, a checkpoint nnU-Net's predictor would accept (trainer
name, configuration, weights) that also carries ``label``. :func:`fake_nnunet` replaces nnU-Net's predictor
(:mod:`nnunet_filternet.pipeline.leg_predictions`) by one that writes, for every leg image without a
prediction, ``label`` where the (normalised) leg image is above 0, on the leg image's grid, and records the
cases it predicted. So the model that made a label map can be read off its values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_filternet.pipeline import leg_predictions

MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def make_model(results: Path, label: int = 1, name: str = MODEL) -> Path:
    """A fake model folder in ``results`` whose predictions are ``label``; returns the model folder."""
    import torch

    model = results / name
    (model / "fold_0").mkdir(parents=True, exist_ok=True)
    from nnunet_filternet.bench.plans import DEFAULT_DATASET_JSON, SIZES, builtin_plans

    (model / "plans.json").write_text(json.dumps(builtin_plans(SIZES["quick"])))
    (model / "dataset.json").write_text(json.dumps(DEFAULT_DATASET_JSON))
    checkpoint = {
        "trainer_name": "nnUNetTrainer",
        "init_args": {"configuration": "3d_fullres"},
        "network_weights": {"w": torch.full((2,), float(label))},
        "label": int(label),
    }
    torch.save(checkpoint, model / "fold_0" / "checkpoint_final.pth")
    return model


class FakePredictor:
    def __init__(self, label: int):
        self.label = label


def fake_nnunet(monkeypatch, die_after: int | None = None, barrier=None) -> list[str]:
    """Replace nnU-Net's predictor; return the list the predicted cases are appended to.

    Args:
        die_after: kill this process (SIGKILL, no clean-up of any kind) once it has written this many leg
            predictions: a run killed in the middle of nnU-Net's work.
        barrier: a ``multiprocessing.Barrier`` every process waits at before its first prediction (runs that are
            proven to overlap).
    """
    import os
    import signal

    import torch

    predicted: list[str] = []

    def load(model, folds, checkpoint, device, disable_tta, qc_folder=None):  # no agreement records
        saved = torch.load(Path(model) / f"fold_{folds[0]}" / checkpoint, weights_only=False)
        return FakePredictor(saved["label"])

    def run(predictor, legs_in, legs_pred, device):
        if barrier is not None and not predicted:
            barrier.wait(timeout=120)
        for image in sorted(Path(legs_in).glob("*_0000.nii.gz")):
            case = image.name[: -len("_0000.nii.gz")]
            target = Path(legs_pred) / f"{case}.nii.gz"
            if target.exists():
                continue
            leg = sitk.ReadImage(str(image))
            array = (sitk.GetArrayFromImage(leg) > 0).astype(np.uint8) * predictor.label
            out = sitk.GetImageFromArray(array)
            out.CopyInformation(leg)
            sitk.WriteImage(out, str(target), useCompression=True)
            predicted.append(case)
            if die_after is not None and len(predicted) >= die_after:
                os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(leg_predictions, "load_predictor", load)
    monkeypatch.setattr(leg_predictions, "run_nnunet", run)
    return predicted


def labels_in(path: Path) -> set[int]:
    """The label values of a label map, background excluded."""
    return set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(path))))) - {0}


def predict(root: Path) -> int:
    """``filternet predict`` of ``root/images`` into ``root/out`` with the model in ``root/results``; exit code."""
    from nnunet_filternet.cli import main

    args = ["predict", "--images", root / "images", "--out", root / "out", "--results", root / "results"]
    return main([*map(str, args), "--trainer", "nnUNetTrainer", "--device", "cpu", "-j", "1"])
