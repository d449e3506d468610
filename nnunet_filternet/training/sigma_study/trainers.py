"""Experiment-only trainers of the sigma study (docs/training.md, "Sigma"): one per reading of tau, short budget.

``nnUNetTrainerFilterNet_sigma_<reading>`` for each reading in ``edge.kernels.GAUSSIAN_NORMALISATIONS``: the budget
variant of ``nnUNetTrainerFilterNet`` for :data:`BUDGET` (made by the one variant factory,
``training/variants.py``) with the edge gate's normalisation set to the reading and no final validation (the study
reads sigma from the training log). They are not among the package's trainers: put their folder on
``nnUNet_extTrainer`` (this module, run, prints it) and train e.g.::

    export nnUNet_extTrainer=$(python -m nnunet_filternet.training.sigma_study.trainers)
    nnUNetv2_train 601 3d_fullres 0 -tr nnUNetTrainerFilterNet_sigma_tau_constant -p nnUNetPlans_tiny -device cpu \\
        --disable_checkpointing
"""

from __future__ import annotations

import argparse
import os

from nnunet_filternet.edge.kernels import GAUSSIAN_NORMALISATIONS
from nnunet_filternet.training.budget import Budget
from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet
from nnunet_filternet.training.variants import make_variant

#: 30 epochs x 50 iterations, 2 validation iterations per epoch.
BUDGET = Budget(epochs=30, iterations=50, val_iterations=2)
#: The folder for ``nnUNet_extTrainer``: one shim module that re-exports the study's trainers.
EXT_TRAINER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ext")


def study_trainer_name(normalisation: str) -> str:
    """``nnUNetTrainerFilterNet_sigma_<normalisation>``."""
    return f"{nnUNetTrainerFilterNet.__name__}_sigma_{normalisation}"


def _skip_final_validation(self, save_probabilities: bool = False) -> None:
    self.print_to_log_file("sigma study: final validation skipped")


def study_trainer(normalisation: str) -> type:
    """The study's trainer for one reading of tau (a subclass of the :data:`BUDGET` variant of FilterNet)."""
    budget_variant = make_variant(nnUNetTrainerFilterNet, __name__, budget=BUDGET)
    name = study_trainer_name(normalisation)
    namespace = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"{budget_variant.__doc__[:-1]}, tau read as {normalisation!r}, no final validation.",
        "edge_gate_normalisation": normalisation,
        "perform_actual_validation": _skip_final_validation,
    }
    return type(name, (budget_variant,), namespace)


STUDY_TRAINERS: dict[str, type] = {n: study_trainer(n) for n in GAUSSIAN_NORMALISATIONS}
globals().update({cls.__name__: cls for cls in STUDY_TRAINERS.values()})
__all__ = [cls.__name__ for cls in STUDY_TRAINERS.values()]


def main(argv: list[str] | None = None) -> None:
    """Print :data:`EXT_TRAINER_DIR` (for ``export nnUNet_extTrainer=$(python -m ...)``)."""
    argparse.ArgumentParser(description="print the folder to put on nnUNet_extTrainer").parse_args(argv)
    print(EXT_TRAINER_DIR)


if __name__ == "__main__":
    main()
