"""Training-budget variants of any trainer, named after their budget and made when nnU-Net first asks for them.

nnU-Net ships ``nnUNetTrainer_5epochs`` etc. as pasted classes. Here one factory makes the same subclass of
any trainer for any :class:`Budget`, and the name says the budget, so a results folder
(``<trainer>__<plans>__<configuration>``) says how long its model was trained:

=============================================  ===============================================================
name                                           budget
=============================================  ===============================================================
``nnUNetTrainerFilterNet_1epoch``              1 epoch, the base trainer's iterations (nnU-Net's: 250 + 50)
``nnUNetTrainerFilterNet_50epochs``            50 epochs, the base trainer's iterations
``nnUNetTrainer_40epochs_40iters_4val``        40 epochs of 40 training and 4 validation iterations
=============================================  ===============================================================

The variants are attributes of :mod:`nnunet_filternet.training.trainers`, made on first access by its module
``__getattr__`` (:func:`budget_variant_attribute`) and then kept there: nnU-Net's trainer search (``hasattr``
on the shim module of ``nnunet_ext/trainers``), ``pickle`` and ``from ... import`` all get the same class, in
every process and shell where the package is installed, with no variable to set. The base is one of our
trainers or any trainer nnU-Net's own search finds (stock ``nnUNetTrainer`` and its variants, a user's
trainer on ``nnUNet_extTrainer``). A variant adds what every trainer of the project has and the base lacks:
the per-epoch memory / parameter log lines (:class:`~nnunet_filternet.training.telemetry.TelemetryMixin`) and
the norm policy (:class:`~nnunet_filternet.training.norm_policy.NormPolicyMixin`), and draws nnU-Net's
``progress.png`` every 10 epochs rather than every epoch (:mod:`~nnunet_filternet.training.progress_plot`: about
1 s an epoch on the CPU). nnU-Net's own names
(``nnUNetTrainer_5epochs``, ...) stay nnU-Net's: its search looks in nnunetv2 first.

A variant keeps the base ``__init__`` signature (nnU-Net stores it in checkpoints and re-creates trainers from
it) and sets the budget after the base class has set everything else.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import torch

from nnunet_filternet.training.device import DEFAULT_DEVICE

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


def make_budget_variant(base: type, budget: Budget, module: str) -> type:
    """Subclass of ``base`` training for ``budget``, named :func:`budget_variant_name`, with ``__module__ = module``.

    The caller makes the class an attribute of ``module`` under its name (pickling, nnU-Net's search).

    Args:
        base: an ``nnUNetTrainer`` subclass.
        budget: the training length.
        module: dotted name of the module that will hold the class.
    """
    from nnunet_filternet.training.norm_policy import NormPolicyMixin
    from nnunet_filternet.training.progress_plot import ThrottledProgressPlotMixin
    from nnunet_filternet.training.telemetry import TelemetryMixin

    name = budget_variant_name(base.__name__, budget)

    def __init__(
        self, plans: dict, configuration: str, fold: int, dataset_json: dict, device: torch.device = DEFAULT_DEVICE
    ):
        super(variant, self).__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = budget.epochs
        if budget.iterations is not None:
            self.num_iterations_per_epoch = budget.iterations
        if budget.val_iterations is not None:
            self.num_val_iterations_per_epoch = budget.val_iterations

    __init__.__qualname__ = f"{name}.__init__"
    mixins = tuple(m for m in (ThrottledProgressPlotMixin, TelemetryMixin, NormPolicyMixin) if not issubclass(base, m))
    namespace = {
        "__init__": __init__,
        "__module__": module,
        "__qualname__": name,
        "__doc__": f"{base.__name__} trained for {budget.describe()} (budget variant, training/budget.py).",
        "budget": budget,
    }
    variant = type(name, (*mixins, base), namespace)
    return variant


def find_base_trainer(name: str, module: str) -> type | None:
    """The trainer class ``name``: an attribute of ``module``, else what nnU-Net's search finds, else None."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_filternet.nnunet_ext import find_trainer

    found = vars(sys.modules[module]).get(name) or find_trainer(name)
    return found if isinstance(found, type) and issubclass(found, nnUNetTrainer) else None


def budget_variant_attribute(name: str, module: str) -> type:
    """The budget variant ``name`` as an attribute of ``module`` (made and stored there on first use).

    This is the body of ``module``'s ``__getattr__`` (PEP 562), called only for names ``module`` lacks.

    Raises:
        AttributeError: ``name`` is not a budget variant's name, or its base trainer is found nowhere
            (so that ``hasattr`` is False and nnU-Net's search goes on to other folders).
    """
    namespace = vars(sys.modules[module])
    if name in namespace:  # asked through the shim module, whose __getattr__ this is too
        return namespace[name]
    parsed = parse_budget_variant_name(name)
    base = find_base_trainer(parsed[0], module) if parsed is not None else None
    if base is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    variant = make_budget_variant(base, parsed[1], module)
    return namespace.setdefault(name, variant)
