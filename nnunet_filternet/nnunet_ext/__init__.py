"""Discovery of our trainers by nnU-Net's CLIs.

nnU-Net imports every module of each folder named in ``nnUNet_extTrainer`` as a top-level module and
looks for the trainer class by name. The folder :data:`TRAINER_DIR` holds only side-effect-free shim
modules that re-export our trainer classes from :mod:`nnunet_filternet.training`, so the classes keep
their real module path (checkpoints and multiprocessing pickles stay valid).
"""

from __future__ import annotations

import os

#: The folder handed to nnU-Net through ``nnUNet_extTrainer``.
TRAINER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trainers")


def add_to_environment(environ: dict | None = None) -> None:
    """Append :data:`TRAINER_DIR` to ``nnUNet_extTrainer`` unless it is already listed."""
    environ = os.environ if environ is None else environ
    current = [p for p in environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if TRAINER_DIR not in current:
        environ["nnUNet_extTrainer"] = os.pathsep.join([*current, TRAINER_DIR])


def find_trainer(name: str):
    """The trainer class nnU-Net's own search finds under ``name`` (nnunetv2, then ``nnUNet_extTrainer``), or None.

    The search is the one every nnU-Net CLI runs (``recursive_find_trainer_class_by_name``), in this process'
    environment; the progress it prints is swallowed.
    """
    import contextlib
    import io

    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return recursive_find_trainer_class_by_name(name)
    except (RuntimeError, AssertionError):  # not found; found but not an nnUNetTrainer
        return None
