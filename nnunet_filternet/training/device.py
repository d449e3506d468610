"""The default device of nnU-Net's trainer ``__init__`` signature, which every trainer subclass here keeps.

nnU-Net stores a trainer's ``__init__`` arguments in its checkpoints (``init_args``) and re-creates trainers
from them, so a subclass keeps the base signature ``(plans, configuration, fold, dataset_json, device)``
with the same default.
"""

from __future__ import annotations

import torch

#: nnU-Net's default device in the trainer ``__init__`` signature (``nnUNetTrainer.__init__``).
DEFAULT_DEVICE = torch.device("cuda")
