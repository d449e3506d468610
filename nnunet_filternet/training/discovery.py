"""nnU-Net's own trainer search, the one every nnU-Net CLI runs, as a function of this package.

Used by the budget variants (a base trainer of any folder nnU-Net searches) and, through
:mod:`nnunet_filternet.nnunet_ext`, by the pipelines and ``filternet gpu-check`` (is a trainer findable?). Nothing
here imports nnU-Net or torch before it is called.
"""

from __future__ import annotations


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
