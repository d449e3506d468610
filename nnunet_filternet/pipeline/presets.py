"""Demo presets: what ``filternet demo`` runs on a CPU and on a GPU."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nnunet_filternet.training.budget import Budget


@dataclass(frozen=True)
class DemoPreset:
    """Everything the demo needs to know besides the work folder.

    Attributes:
        name: ``cpu``, ``study`` or ``gpu``.
        subjects, healthy: cohort size and healthy count (the rest are DM1).
        shape: scan matrix (x, y, z) in voxels; spacing: (x, y, z) in mm.
        plans_preset: our plans preset applied on top of nnU-Net's plans (``filternet plans``), or None to
            train on nnU-Net's own ``nnUNetPlans``.
        folds: cross-validation folds trained (of ``n_folds``).
        budget: training length of every trainer: the demo trains each trainer ``T`` as its budget variant
            ``T_<epochs>epochs_<iterations>iters_<val>val`` (``training/budget.py``).
        device: ``cpu`` or ``cuda``.
        configuration: nnU-Net configuration trained (``3d_fullres``, or ``2d`` of the ``tiny`` plans).
        n_folds: folds of the subject-grouped cross-validation that conversion writes (``splits_final.json``).
        trainers: nnU-Net trainers compared; the first is the candidate, the last the reference.
        repeats: how many times every trainer and fold is trained (a repeat = the whole cross-validation
            again, unseeded as nnU-Net trains): with 2 or more, the report and ``compare`` judge the
            difference against the run-to-run spread. Not part of a work folder's fixed settings: a rerun
            with more repeats trains only the new ones.
    """

    name: str
    subjects: int
    healthy: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    plans_preset: str | None
    folds: tuple[int, ...]
    budget: Budget
    device: str
    trainers: tuple[str, ...] = field(default=("nnUNetTrainerFilterNet", "nnUNetTrainer"))
    repeats: int = 1
    configuration: str = "3d_fullres"
    n_folds: int = 4

    def as_dict(self) -> dict:
        return asdict(self)


#: 2-core CPU: small scans, the tiny plans, one fold, about 4 minutes of training per trainer.
CPU = DemoPreset(
    name="cpu",
    subjects=8,
    healthy=2,
    shape=(256, 256, 16),
    spacing=(1.4, 1.4, 7.0),
    plans_preset="tiny",
    folds=(0,),
    budget=Budget(epochs=40, iterations=40, val_iterations=4),
    device="cpu",
)

#: 2-core CPU, at most 90 minutes: 32 subjects in 8 subject-grouped folds of 4 (every subject held out once), the
#: tiny plans' 2d configuration at 80 epochs x 40 iterations, one training of FilterNet and of stock nnU-Net per
#: fold. Chosen from the measured pilot (``python -m nnunet_filternet.pipeline.pilot``; docs/study.md): 2d at 80
#: epochs has a run SD of about half a Dice point per fold run, so the subjects, not the runs, limit the
#: detectable difference, and subjects cost no training time.
STUDY = DemoPreset(
    name="study",
    subjects=32,
    healthy=8,
    shape=(256, 256, 16),
    spacing=(1.4, 1.4, 7.0),
    plans_preset="tiny",
    folds=tuple(range(8)),
    budget=Budget(epochs=80, iterations=40, val_iterations=4),
    device="cpu",
    repeats=1,
    configuration="2d",
    n_folds=8,
)

#: One GPU: the paper-sized cohort at full resolution, nnU-Net's own 3d_fullres plans, four folds.
GPU = DemoPreset(
    name="gpu",
    subjects=40,
    healthy=10,
    shape=(512, 512, 30),
    spacing=(0.7, 0.7, 7.0),
    plans_preset=None,
    folds=(0, 1, 2, 3),
    budget=Budget(epochs=50, iterations=250, val_iterations=50),
    device="cuda",
)


PRESETS = {p.name: p for p in (CPU, STUDY, GPU)}


def resolve(name: str) -> DemoPreset:
    """A preset by name; ``auto`` -> ``gpu`` when CUDA is available, else ``cpu``."""
    if name == "auto":
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    return PRESETS[name]
