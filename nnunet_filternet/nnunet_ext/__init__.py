"""Discovery of our trainers by nnU-Net's CLIs.

nnU-Net imports every module of each folder named in ``nnUNet_extTrainer`` as a top-level module and
looks for the trainer class by name. The folder :data:`TRAINER_DIR` holds only side-effect-free shim
modules that re-export our trainer classes from :mod:`nnunet_filternet.training`, so the classes keep
their real module path (checkpoints and multiprocessing pickles stay valid). :func:`find_trainer` is nnU-Net's own
search (defined in :mod:`nnunet_filternet.training.discovery`, below the trainers that use it).
"""

from __future__ import annotations

import os

from nnunet_filternet.training.discovery import find_trainer

__all__ = ["TRAINER_DIR", "add_to_environment", "find_trainer"]

#: The folder handed to nnU-Net through ``nnUNet_extTrainer``.
TRAINER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers")


def add_to_environment(environ: dict | None = None) -> None:
    """Append :data:`TRAINER_DIR` to ``nnUNet_extTrainer`` unless it is already listed."""
    environ = os.environ if environ is None else environ
    current = [p for p in environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if TRAINER_DIR not in current:
        environ["nnUNet_extTrainer"] = os.pathsep.join([*current, TRAINER_DIR])
