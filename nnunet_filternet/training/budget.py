"""Training budgets and their names: ``<trainer>_<E>epoch(s)[_<I>iters][_<V>val]``.

nnU-Net ships ``nnUNetTrainer_5epochs`` etc. as pasted classes. Here a :class:`Budget` names its own suffix, so a
results folder (``<trainer>__<plans>__<configuration>``) says how long its model was trained:

=============================================  ===============================================================
name                                           budget
=============================================  ===============================================================
``nnUNetTrainerFilterNet_1epoch``              1 epoch, the base trainer's iterations (nnU-Net's: 250 + 50)
``nnUNetTrainerFilterNet_50epochs``            50 epochs, the base trainer's iterations
``nnUNetTrainer_40epochs_40iters_4val``        40 epochs of 40 training and 4 validation iterations
=============================================  ===============================================================

The classes of these names are made by the one variant factory, :func:`nnunet_filternet.training.variants.make_variant`
(which also makes the Paper twins); this module only says what a budget is and how it is spelled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"(?P<base>[A-Za-z_]\w*?)_(?P<epochs>\d+)epochs?(?:_(?P<iterations>\d+)iters)?(?:_(?P<val>\d+)val)?")


@dataclass(frozen=True)
class Budget:
    """Training length: ``epochs`` x ``iterations`` training steps, ``val_iterations`` validation steps per epoch.

    ``iterations`` / ``val_iterations`` None keep the base trainer's (nnU-Net: 250 and 50).
    """

    epochs: int
    iterations: int | None = None
    val_iterations: int | None = None

    def __post_init__(self):
        for field, value in (("epochs", self.epochs), ("iterations", self.iterations), ("val", self.val_iterations)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"Budget: expected {field} to be a whole number >= 1, found {value!r}")

    @property
    def suffix(self) -> str:
        """``_1epoch``, ``_50epochs``, ``_40epochs_40iters``, ``_40epochs_40iters_4val``, ..."""
        suffix = f"_{self.epochs}epoch" if self.epochs == 1 else f"_{self.epochs}epochs"
        if self.iterations is not None:
            suffix += f"_{self.iterations}iters"
        if self.val_iterations is not None:
            suffix += f"_{self.val_iterations}val"
        return suffix

    def describe(self) -> str:
        """E.g. ``40 epochs x 40 iterations (4 validation iterations)``, for docstrings and logs."""
        text = f"{self.epochs} epoch{'s' if self.epochs > 1 else ''}"
        if self.iterations is not None:
            text += f" x {self.iterations} iterations"
        if self.val_iterations is not None:
            text += f" ({self.val_iterations} validation iterations)"
        return text


def budget_variant_name(base_name: str, budget: Budget) -> str:
    """``nnUNetTrainerFilterNet`` + Budget(1) -> ``nnUNetTrainerFilterNet_1epoch``; + Budget(40, 40, 4) ->
    ``nnUNetTrainerFilterNet_40epochs_40iters_4val``."""
    return base_name + budget.suffix


def parse_budget_variant_name(name: str) -> tuple[str, Budget] | None:
    """(base name, budget) of a budget variant's name, None if ``name`` is not one.

    Only the spelling :func:`budget_variant_name` writes counts (``X_5epochs``, not ``X_5epoch`` or ``X_05epochs``),
    so one budget has one name and one results folder. The base is the shortest prefix that leaves a budget
    suffix, and is not itself a budget variant (a variant of a variant would be a second name of a budget).
    """
    match = _NAME.fullmatch(name)
    if match is None or parse_budget_variant_name(match["base"]) is not None:
        return None
    try:
        budget = Budget(*(None if v is None else int(v) for v in match.group("epochs", "iterations", "val")))
    except ValueError:
        return None
    return (match["base"], budget) if budget_variant_name(match["base"], budget) == name else None
