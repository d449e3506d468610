"""A small fake nnU-Net dataset and results folder for the report tests.

``make_results(root)`` writes, under ``root``, nnU-Net's three folders for ``Dataset900_Fake``:
raw images and labels, preprocessed ``gt_segmentations``, and per trainer two folds of
``fold_<k>/validation/*.nii.gz`` predictions, ``training_log_*.txt`` and ``checkpoint_final.pth``.
Legs are (6, 32, 32) with five elliptic compartments; predictions are the ground truth distorted per
trainer: "good" shifts one compartment by a voxel in some subjects, "bad" shifts every compartment and adds
a spurious TA blob away from the leg (which largest-component post-processing removes).

``repeats=N`` also writes training repeats 2..N (the cross-validation "trained again") into
``nnUNet_results_r<k>/Dataset900_Fake``: the same distortions applied to other subjects or in other
directions, so that repeats differ while "bad" stays worse than "good".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

DATASET = "Dataset900_Fake"
PLANS, CONFIGURATION = "nnUNetPlans", "3d_fullres"
SHAPE = (6, 32, 32)
SPACING_XYZ = (1.0, 1.0, 4.0)
#: (centre y, centre x, radius y, radius x) of TA, TP, Sol, Gas, PL.
_ELLIPSES = ((8, 10, 4, 5), (13, 17, 3, 4), (20, 15, 4, 8), (26, 15, 3, 9), (10, 24, 4, 3))
#: Parameter count of the fake network (conv 4x1x3x3x3 + bias 4, BN weight + bias 4 + 4); BN stats excluded.
FAKE_PARAMETERS = 4 * 27 + 4 + 4 + 4


@dataclass
class FakeResults:
    raw: Path
    preprocessed: Path
    results: Path
    dataset_results: Path
    subjects: list[str]
    folds: dict[str, int] = field(default_factory=dict)  # case -> fold
    n_folds: int = 2
    repeat_results: list[Path] = field(default_factory=list)  # DatasetNNN_NAME of repeats 1, 2, ...


def leg_labels(seed: int, shift: tuple[int, int] = (0, 0), labels_shifted=(1, 2, 3, 4, 5)) -> np.ndarray:
    """A (6, 32, 32) leg; ``shift`` (dy, dx) moves the listed compartments."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[1], : SHAPE[2]]
    out = np.zeros(SHAPE, np.uint8)
    jitter = rng.integers(-1, 2, size=(5, 2))
    for label, (cy, cx, ry, rx) in enumerate(_ELLIPSES, start=1):
        dy, dx = shift if label in labels_shifted else (0, 0)
        cy, cx = cy + jitter[label - 1, 0] + dy, cx + jitter[label - 1, 1] + dx
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        out[1:5][:, inside & (out[1] == 0)] = label
    return out


def leg_image(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    body = np.zeros(SHAPE[1:], bool)
    body[2:31, 3:30] = True
    image = np.where(body, 900.0, 20.0)[None].repeat(SHAPE[0], 0)
    image[labels > 0] = 400.0 + 30 * labels[labels > 0]
    return (image + rng.normal(0, 15, SHAPE)).astype(np.float32)


def write(array: np.ndarray, path: Path) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def prediction(trainer_kind: str, gt_seed: int, subject_index: int, repeat: int = 1) -> np.ndarray:
    """A trainer's prediction of one leg in training repeat ``repeat`` (repeat 1: the original fixture)."""
    if trainer_kind == "good":
        shift = (1, 0) if (subject_index + repeat - 1) % 2 else (0, 0)
        return leg_labels(gt_seed, shift=shift, labels_shifted=(3,) if repeat == 1 else (3, 5))
    pred = leg_labels(gt_seed, shift=(1, 1) if repeat == 1 else (1, -1))
    pred[2:4, 28:31, 1:4] = 1  # spurious TA island
    return pred


def log_text(fold: int, epochs: range, gate: bool, ours: bool) -> str:
    """Log lines of nnU-Net (epoch time) and, for ``ours``, our trainers (parameters, peak memory, edge gate)."""
    lines = ["2026-09-05 10:00:00.000001: network parameters: 999"] if ours and epochs.start == 0 else []
    for epoch in epochs:
        stamp = f"2026-09-05 10:{epoch:02d}:00.000001:"
        lines.append(f"{stamp} Epoch {epoch}")
        if gate:
            lines.append(
                f"{stamp} edge gate: lambda {0.001 * 10 ** (epoch // 2):g} sigma {1.0 - 0.01 * (epoch + fold):.3f}"
            )
        if ours:
            lines.append(f"{stamp} peak memory: {100.0 + 10 * epoch + fold:.1f} MiB (process max RSS)")
        lines.append(f"{stamp} Epoch time: {10.0 + epoch + fold:.2f} s")
    return "\n".join(lines) + "\n"


def checkpoint_sigma(fold: int) -> float:
    """The exact sigma in a gate trainer's fake checkpoint of ``fold``: its log's last line shows it to 3 decimals."""
    return 1.0 - 0.01 * (3 + fold) + 1.234e-4


def fake_checkpoint(path: Path, sigma: float | None = None) -> None:
    """A checkpoint with a small network's weights; with ``sigma``, an edge gate's state as our trainers save it."""
    import math

    import torch

    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_KEY

    state = {
        "conv.weight": torch.zeros(4, 1, 3, 3, 3),
        "conv.bias": torch.zeros(4),
        "norm.weight": torch.ones(4),
        "norm.bias": torch.zeros(4),
        "norm.running_mean": torch.zeros(4),
        "norm.running_var": torch.ones(4),
        "norm.num_batches_tracked": torch.tensor(3),
    }
    checkpoint = {"network_weights": state, "trainer_name": "fake", "init_args": {}}
    if sigma is not None:
        checkpoint["optimizer_state"] = {"state": {}, EDGE_GATE_KEY: {"log_sigma": torch.tensor(math.log(sigma))}}
    torch.save(checkpoint, str(path))


def make_results(
    root: Path,
    trainers: dict[str, str],
    n_subjects: int = 6,
    gate_trainers: tuple[str, ...] = (),
    stock_trainers: tuple[str, ...] = ("nnUNetTrainer",),
    repeats: int = 1,
    n_folds: int = 2,
) -> FakeResults:
    """Write the fake dataset and results.

    Args:
        root: where nnUNet_raw, nnUNet_preprocessed and nnUNet_results are created.
        trainers: trainer name -> "good" or "bad" predictions.
        n_subjects: subjects (two legs each); subject i in fold i % n_folds.
        gate_trainers: trainers whose logs have edge-gate lines.
        stock_trainers: trainers whose logs have only nnU-Net's lines.
        repeats: training repeats; repeat k >= 2 goes to ``nnUNet_results_r<k>`` (``fake.repeat_results``).
        n_folds: cross-validation folds.
    """
    raw, pre, res = root / "nnUNet_raw", root / "nnUNet_preprocessed", root / "nnUNet_results"
    subjects = [f"sub{i:02d}" for i in range(n_subjects)]
    fake = FakeResults(raw, pre, res, res / DATASET, subjects, n_folds=n_folds)
    for i, subject in enumerate(subjects):
        for j, side in enumerate("LR"):
            case, seed = f"{subject}_{side}", 100 * i + j
            labels = leg_labels(seed)
            write(labels, raw / DATASET / "labelsTr" / f"{case}.nii.gz")
            write(labels, pre / DATASET / "gt_segmentations" / f"{case}.nii.gz")
            write(leg_image(labels, seed), raw / DATASET / "imagesTr" / f"{case}_0000.nii.gz")
            fake.folds[case] = i % n_folds
    for repeat in range(1, repeats + 1):
        results = res if repeat == 1 else root / f"nnUNet_results_r{repeat}"
        fake.repeat_results.append(results / DATASET)
        for trainer, kind in trainers.items():
            gate, ours = trainer in gate_trainers, trainer not in stock_trainers
            _write_trainer(fake, results / DATASET, trainer, kind, gate=gate, ours=ours, repeat=repeat)
    return fake


def _write_trainer(
    fake: FakeResults, dataset_results: Path, trainer: str, kind: str, *, gate: bool, ours: bool, repeat: int
) -> None:
    """One trainer's folds (logs, checkpoint, validation predictions) in one repeat's results folder."""
    folder = dataset_results / f"{trainer}__{PLANS}__{CONFIGURATION}"
    for fold in range(fake.n_folds):
        fold_dir = folder / f"fold_{fold}"
        (fold_dir / "validation").mkdir(parents=True)
        # the second session's log sorts first as text: the parser must order by date
        (fold_dir / "training_log_2026_9_5_10_00_00.txt").write_text(log_text(fold, range(0, 2), gate, ours))
        (fold_dir / "training_log_2026_10_1_09_00_00.txt").write_text(log_text(fold, range(2, 4), gate, ours))
        fake_checkpoint(fold_dir / "checkpoint_final.pth", checkpoint_sigma(fold) if gate else None)
        (fold_dir / "validation" / "summary.json").write_text("{}")
    for i, subject in enumerate(fake.subjects):
        for j, side in enumerate("LR"):
            case = f"{subject}_{side}"
            out = folder / f"fold_{fake.folds[case]}" / "validation" / f"{case}.nii.gz"
            write(prediction(kind, 100 * i + j, i, repeat), out)
