"""Shim for nnU-Net's trainer search (``nnUNet_extTrainer``): re-exports the sigma study's trainers.

The classes keep their real module path, ``nnunet_filternet.training.sigma_study.trainers``.
"""

from nnunet_filternet.training.sigma_study.trainers import *  # noqa: F403
