"""Experiment-only trainers of the sigma study (docs/training.md, "Sigma"): one per reading of tau, short budget.

Put this folder on ``nnUNet_extTrainer`` (``export nnUNet_extTrainer=$PWD/docs/sigma_study``) and train e.g.
``nnUNetv2_train 601 3d_fullres 0 -tr nnUNetTrainerFilterNet_sigma_tau_constant -p nnUNetPlans_tiny -device cpu
--disable_checkpointing``. 30 epochs x 50 iterations, 2 validation iterations per epoch, no final validation
(the study reads sigma from the training log).
"""

import torch

from nnunet_filternet.edge.kernels import GAUSSIAN_NORMALISATIONS
from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

EPOCHS, ITERATIONS, VAL_ITERATIONS = 30, 50, 2


def _study(base: type, normalisation: str) -> type:
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):  # noqa: B008 (nnU-Net)
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = EPOCHS
        self.num_iterations_per_epoch = ITERATIONS
        self.num_val_iterations_per_epoch = VAL_ITERATIONS

    def perform_actual_validation(self, save_probabilities=False):
        self.print_to_log_file("sigma study: final validation skipped")

    name = f"{base.__name__}_sigma_{normalisation}"
    attributes = {
        "__init__": __init__,
        "perform_actual_validation": perform_actual_validation,
        "edge_gate_normalisation": normalisation,
    }
    return type(name, (base,), attributes)


for _normalisation in GAUSSIAN_NORMALISATIONS:
    _cls = _study(nnUNetTrainerFilterNet, _normalisation)
    globals()[_cls.__name__] = _cls
