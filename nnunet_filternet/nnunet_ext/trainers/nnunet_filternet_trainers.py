"""Shim for nnU-Net's trainer search: re-exports every trainer of ``nnunet_filternet.training.trainers``.

nnU-Net imports each module of the folders on ``nnUNet_extTrainer`` as a top-level module and looks the
trainer up by name. This module only imports; the classes keep their real module path.
"""

from nnunet_filternet.training.trainers import *  # noqa: F403
from nnunet_filternet.training.trainers import __all__  # noqa: F401
