"""Training-budget variants of a trainer, named like nnU-Net's own (``_1epoch``, ``_5epochs``, ...).

nnU-Net ships ``nnUNetTrainer_5epochs`` etc. as pasted classes; :func:`make_budget_variant` makes the same
subclass of any trainer: it keeps the base ``__init__`` signature (nnU-Net stores it in checkpoints and
re-creates trainers from it) and only sets ``num_epochs`` after the base class has set everything else.
The caller assigns the class to a module-level name equal to its ``__name__`` and passes that module as
``module``, so ``__module__`` / ``__qualname__`` point at a real attribute (pickling, nnU-Net's search).
"""

from __future__ import annotations

import torch

#: nnU-Net's default device in the trainer ``__init__`` signature.
DEFAULT_DEVICE = torch.device("cuda")

#: The epoch budgets nnU-Net offers for its own trainer (``variants/training_length``), up to 1000.
BUDGETS: tuple[int, ...] = (1, 5, 10, 20, 50, 100, 250, 500, 750)


def budget_variant_name(base_name: str, num_epochs: int) -> str:
    """``nnUNetTrainerFilterNet`` + 1 -> ``nnUNetTrainerFilterNet_1epoch``; + 5 -> ``..._5epochs``."""
    return f"{base_name}_{num_epochs}epoch" if num_epochs == 1 else f"{base_name}_{num_epochs}epochs"


def make_budget_variant(base: type, num_epochs: int, module: str) -> type:
    """Subclass of ``base`` training for ``num_epochs`` epochs, with ``__module__ = module``.

    Args:
        base: an ``nnUNetTrainer`` subclass.
        num_epochs: number of epochs (> 0).
        module: dotted name of the module that will hold the class under its ``__name__``.
    """
    if num_epochs < 1:
        raise ValueError(f"make_budget_variant: expected num_epochs >= 1, found {num_epochs}")
    name = budget_variant_name(base.__name__, num_epochs)

    def __init__(
        self, plans: dict, configuration: str, fold: int, dataset_json: dict, device: torch.device = DEFAULT_DEVICE
    ):
        super(variant, self).__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = num_epochs

    __init__.__qualname__ = f"{name}.__init__"
    doc = f"{base.__name__} trained for {num_epochs} epoch{'s' if num_epochs > 1 else ''} (budget variant)."
    variant = type(name, (base,), {"__init__": __init__, "__module__": module, "__qualname__": name, "__doc__": doc})
    return variant
