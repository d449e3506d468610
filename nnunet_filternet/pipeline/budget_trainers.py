"""Training budgets for any trainer, through nnU-Net's own external-trainer mechanism.

nnU-Net trains for 1000 epochs of 250 iterations. The demo needs a fixed, small budget for whichever
trainers a user names (ours or nnU-Net's stock ones). Instead of shipping a variant per trainer and
budget, the demo writes one module into its work folder holding a subclass per trainer that changes
only the three budget attributes, and puts that folder on ``nnUNet_extTrainer`` for its own runs.
nnU-Net then finds ``<Trainer>_demo`` like any other trainer; the results folder name says which
budget was used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.utils.atomic import write_text

SUFFIX = "_demo"
MODULE_NAME = "filternet_demo_budget_trainers"


@dataclass(frozen=True)
class Budget:
    """Training length: ``epochs`` x ``iterations`` training steps, ``val_iterations`` per epoch."""

    epochs: int
    iterations: int
    val_iterations: int


def budget_trainer_name(trainer: str) -> str:
    """Name of the budget subclass of ``trainer``."""
    return f"{trainer}{SUFFIX}"


def _importable_base(trainer: str) -> tuple[str, str]:
    """(module, class name) of the trainer nnU-Net finds under ``trainer``, importable by that module path."""
    import importlib

    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    try:
        cls = recursive_find_trainer_class_by_name(trainer)
    except RuntimeError as e:
        raise FilterNetError(f"nnU-Net cannot find trainer {trainer!r}: {e}") from None
    try:
        module = importlib.import_module(cls.__module__)
        assert getattr(module, cls.__name__) is cls
    except (ImportError, AttributeError, AssertionError):
        raise FilterNetError(
            f"trainer {trainer!r} comes from {cls.__module__!r}, which is not importable as a module; "
            "install it as a package to use it in the demo"
        ) from None
    return cls.__module__, cls.__name__


def write_budget_trainers(folder: str | Path, trainers: list[str], budget: Budget) -> Path:
    """Write ``folder/filternet_demo_budget_trainers.py`` with one budget subclass per trainer.

    Each base class is looked up with nnU-Net's own trainer search, so any trainer nnU-Net can find
    (stock or ours) gets a budget variant; the module imports the bases by their real module path.

    Returns:
        The folder, to be added to ``nnUNet_extTrainer``.
    """
    lines = [
        '"""Budget variants written by `filternet demo` (nnU-Net finds them through nnUNet_extTrainer)."""',
        "",
        "import torch",
    ]
    bases = []
    for i, t in enumerate(trainers):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t):
            raise FilterNetError(f"trainer name {t!r} is not a Python class name")
        module, name = _importable_base(t)
        lines.append(f"from {module} import {name} as _Base{i}")
        bases.append(f"_Base{i}")
    lines.append("")
    for t, base in zip(trainers, bases):
        lines += [
            "",
            f"class {budget_trainer_name(t)}({base}):",
            f'    """{t} with the demo budget: {budget.epochs} epochs x {budget.iterations} iterations."""',
            "",
            '    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):',
            "        super().__init__(plans, configuration, fold, dataset_json, device)",
            f"        self.num_epochs = {int(budget.epochs)}",
            f"        self.num_iterations_per_epoch = {int(budget.iterations)}",
            f"        self.num_val_iterations_per_epoch = {int(budget.val_iterations)}",
            "",
        ]
    folder = Path(folder)
    write_text(folder / f"{MODULE_NAME}.py", "\n".join(lines))
    return folder
