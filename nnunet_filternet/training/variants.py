"""Trainer variants, made one way: a base trainer plus the paper's protocol and/or a training budget.

One naming rule, one factory (:func:`make_variant`) for both kinds::

    <Base>[Paper][_<E>epoch(s)[_<I>iters][_<V>val]]

- ``Paper``: the base trainer with the paper's protocol (:class:`~.paper_protocol.PaperProtocolMixin`). Every
  trainer of the nnU-Net recipe in :mod:`~nnunet_filternet.training.trainers` has its Paper twin, each written
  there as one line ``nnUNetTrainerXPaper = paper_twin(nnUNetTrainerX)`` (grep the name to find it), listed in
  ``trainers.PAPER_TRAINERS``.
- ``_<E>epochs...``: the base trainer for a :class:`~.budget.Budget` (``budget.py`` spells it). Budget variants
  exist for every trainer nnU-Net's search finds (ours, the Paper twins, stock ``nnUNetTrainer`` and its variants,
  a user's trainer on ``nnUNet_extTrainer``): they are made when first asked for, by the ``__getattr__`` of
  :mod:`~nnunet_filternet.training.trainers` (:func:`variant_attribute`), and kept there. nnU-Net's trainer search
  (``hasattr`` on the shim module of ``nnunet_ext/trainers``), ``pickle`` and ``from ... import`` then all get the
  same class, in every process and shell where the package is installed, with no variable to set. nnU-Net's own
  names (``nnUNetTrainer_5epochs``, ...) stay nnU-Net's: its search looks in nnunetv2 first.

So a trainer's definition is found from its name: drop the budget suffix (its meaning is the name itself), then
``...Paper``; what is left is a ``class`` in ``training/trainers.py`` (or nnU-Net's, or the user's).

A Paper twin places the protocol after the base trainer's own mixins and before its plans network
(``PlansNetworkMixin``), where the protocol's hooks must sit for e.g. the edge gate's owner to wrap the optimizer and
loss it makes. A budget variant adds what every trainer of the project has and the base lacks: the per-epoch
memory / parameter log lines (:class:`~.telemetry.TelemetryMixin`) and the kernel policy
(:class:`~.kernel_policy.KernelPolicyMixin`), and draws nnU-Net's ``progress.png`` every 10 epochs rather than every
epoch (:mod:`~.progress_plot`: about 1 s an epoch on the CPU); it keeps the base ``__init__`` signature (nnU-Net
stores it in checkpoints and re-creates trainers from it) and sets the budget after the base class has set
everything else.
"""

from __future__ import annotations

import sys

import torch

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.training.budget import Budget, budget_variant_name, parse_budget_variant_name
from nnunet_filternet.training.device import DEFAULT_DEVICE

#: The suffix of a Paper twin's name.
PAPER = "Paper"


def variant_name(base_name: str, paper: bool = False, budget: Budget | None = None) -> str:
    """The naming rule: ``nnUNetTrainerFilterNet`` -> ``nnUNetTrainerFilterNetPaper_40epochs_40iters_4val`` etc."""
    name = base_name + (PAPER if paper else "")
    return name if budget is None else budget_variant_name(name, budget)


def make_variant(base: type, module: str, *, paper: bool = False, budget: Budget | None = None) -> type:
    """Subclass of ``base`` with the paper's protocol and/or a training budget, named :func:`variant_name`.

    The caller makes the class an attribute of ``module`` under its name (pickling, nnU-Net's search).

    Args:
        base: an ``nnUNetTrainer`` subclass (for ``paper``: one that builds its network with ``PlansNetworkMixin``).
        module: dotted name of the module that will hold the class.
        paper: add the paper's protocol.
        budget: the training length, or None to keep the base's.

    Raises:
        FilterNetError: nothing to add, or a Paper twin of a trainer that does not build its network from the plans
            through ``PlansNetworkMixin``.
    """
    from nnunet_filternet.training.kernel_policy import KernelPolicyMixin
    from nnunet_filternet.training.networks import PlansNetworkMixin
    from nnunet_filternet.training.paper_protocol import PaperProtocolMixin
    from nnunet_filternet.training.progress_plot import ThrottledProgressPlotMixin
    from nnunet_filternet.training.telemetry import TelemetryMixin

    if not paper and budget is None:
        raise FilterNetError(f"make_variant: expected the paper's protocol or a budget for {base.__name__}, found none")
    name = variant_name(base.__name__, paper, budget)
    bases: tuple[type, ...] = (base,)
    namespace = {"__module__": module, "__qualname__": name, "__doc__": _doc(base, paper, budget)}
    if paper:
        if not issubclass(base, PlansNetworkMixin):
            raise FilterNetError(
                f"{name}: the paper's protocol needs a trainer that builds its network through PlansNetworkMixin "
                f"(it switches the norm to BatchNorm there); {base.__name__} does not"
            )
        bases = (base, PaperProtocolMixin, PlansNetworkMixin)  # C3 puts the protocol just before the plans network
    if budget is not None:
        mixins = (ThrottledProgressPlotMixin, TelemetryMixin, KernelPolicyMixin)
        bases = (*(m for m in mixins if not issubclass(base, m)), *bases)
        namespace["budget"] = budget
        namespace["__init__"] = _budget_init(name, budget, lambda: variant)
    variant = type(name, bases, namespace)
    return variant


def _doc(base: type, paper: bool, budget: Budget | None) -> str:
    parts = (["the paper's protocol"] if paper else []) + ([f"trained for {budget.describe()}"] if budget else [])
    return f"{base.__name__} with {' and '.join(parts)} (training/variants.py)."


def _budget_init(name: str, budget: Budget, variant):
    """The ``__init__`` of a budget variant: the base's, then the budget. ``variant()`` returns the class."""

    def __init__(
        self, plans: dict, configuration: str, fold: int, dataset_json: dict, device: torch.device = DEFAULT_DEVICE
    ):
        super(variant(), self).__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = budget.epochs
        if budget.iterations is not None:
            self.num_iterations_per_epoch = budget.iterations
        if budget.val_iterations is not None:
            self.num_val_iterations_per_epoch = budget.val_iterations

    __init__.__qualname__ = f"{name}.__init__"
    return __init__


def find_base_trainer(name: str, module: str) -> type | None:
    """The trainer class ``name``: an attribute of ``module``, else what nnU-Net's search finds, else None."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_filternet.training.discovery import find_trainer

    found = vars(sys.modules[module]).get(name) or find_trainer(name)
    return found if isinstance(found, type) and issubclass(found, nnUNetTrainer) else None


def variant_attribute(name: str, module: str) -> type:
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
    return namespace.setdefault(name, make_variant(base, module, budget=parsed[1]))
