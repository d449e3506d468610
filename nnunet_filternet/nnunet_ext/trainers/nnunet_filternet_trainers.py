"""Shim for nnU-Net's trainer search: re-exports every trainer of ``nnunet_filternet.training.trainers``.

nnU-Net imports each module of the folders on ``nnUNet_extTrainer`` as a top-level module and looks the
trainer up by name (``hasattr``). This module only imports: the trainer classes, and the module ``__getattr__``
that makes budget variants (``X_50epochs``, ``X_40epochs_40iters_4val``, ...) on first access. The classes keep
their real module path.
"""

from nnunet_filternet.training.trainers import *  # noqa: F403
from nnunet_filternet.training.trainers import __all__, __getattr__  # noqa: F401
