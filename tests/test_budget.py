"""Budget variants: one factory, names that say the budget, made for any trainer nnU-Net can find."""

from __future__ import annotations

import pytest
import torch

from nnunet_filternet.training import trainers
from nnunet_filternet.training.budget import Budget, budget_variant_name, parse_budget_variant_name


@pytest.mark.parametrize(
    ("budget", "suffix"),
    [
        (Budget(1), "_1epoch"),
        (Budget(50), "_50epochs"),
        (Budget(40, 40, 4), "_40epochs_40iters_4val"),
        (Budget(2, 3), "_2epochs_3iters"),
        (Budget(2, val_iterations=1), "_2epochs_1val"),
    ],
)
def test_names_say_the_budget_and_parse_back(budget, suffix):
    name = budget_variant_name("nnUNetTrainerFilterNet", budget)
    assert name == "nnUNetTrainerFilterNet" + suffix
    assert parse_budget_variant_name(name) == ("nnUNetTrainerFilterNet", budget)


@pytest.mark.parametrize(
    "name",
    [
        "nnUNetTrainerFilterNet_5epoch",  # only the one spelling of a budget counts
        "nnUNetTrainerFilterNet_1epochs",
        "nnUNetTrainerFilterNet_05epochs",
        "nnUNetTrainerFilterNet_0epochs",
        "nnUNetTrainerFilterNet_5epochs_0iters",
        "nnUNetTrainerFilterNet_5epochs_4val_40iters",
        "nnUNetTrainerFilterNet_5epochs_10epochs",  # no variant of a variant
        "nnUNetTrainerFilterNet_demo",
    ],
)
def test_other_names_are_not_budget_variants(name):
    from nnunet_filternet.training import trainers

    assert parse_budget_variant_name(name) is None
    assert not hasattr(trainers, name)


def test_a_base_with_a_budget_like_name_inside():
    assert parse_budget_variant_name("nnUNetTrainer_250epochs_NoMirroring_2epochs") == (
        "nnUNetTrainer_250epochs_NoMirroring",
        Budget(2),
    )


def test_budget_refuses_non_positive_lengths():
    with pytest.raises(ValueError, match="iterations to be a whole number >= 1, found 0"):
        Budget(3, 0)


def test_unknown_base_is_no_attribute():
    from nnunet_filternet.training import trainers

    assert not hasattr(trainers, "nnUNetTrainerDoesNotExist_2epochs")
    assert not hasattr(trainers, "BoundaryAwareLossMixin_2epochs")  # in the module, but not a trainer


def test_stock_variant_sets_the_budget_and_gets_the_project_mixins(nnunet_env):
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_filternet.bench.plans import DEFAULT_DATASET_JSON, SIZES, builtin_plans
    from nnunet_filternet.training import trainers
    from nnunet_filternet.training.kernel_policy import KernelPolicyMixin
    from nnunet_filternet.training.progress_plot import ThrottledProgressPlotMixin
    from nnunet_filternet.training.telemetry import TelemetryMixin

    cls = trainers.nnUNetTrainer_40epochs_40iters_4val
    assert cls.__mro__[1:5] == (ThrottledProgressPlotMixin, TelemetryMixin, KernelPolicyMixin, nnUNetTrainer)
    ours = trainers.nnUNetTrainerFilterNet_40epochs_40iters_4val  # has telemetry and norm: added once, not twice
    assert ours.__mro__[1:3] == (ThrottledProgressPlotMixin, trainers.nnUNetTrainerFilterNet)
    plans = builtin_plans(SIZES["quick"])
    plans["continue_training"] = False
    trainer = cls(plans, "3d_fullres", 0, DEFAULT_DATASET_JSON, torch.device("cpu"))
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (40, 40, 4)
    assert trainer.output_folder.endswith("nnUNetTrainer_40epochs_40iters_4val__nnUNetPlans__3d_fullres/fold_0")


def test_variants_keep_nnunets_init_signature_and_its_default_device():
    import inspect

    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_filternet.training import trainers
    from nnunet_filternet.training.device import DEFAULT_DEVICE

    stock = inspect.signature(nnUNetTrainer.__init__).parameters
    assert DEFAULT_DEVICE == stock["device"].default
    for cls in (trainers.nnUNetTrainer_2epochs, trainers.nnUNetTrainerFilterNetPaper, trainers.nnUNetTrainerFilterNet):
        params = inspect.signature(cls.__init__).parameters
        assert [(p.name, p.default) for p in params.values()] == [(p.name, p.default) for p in stock.values()]


def test_progress_figure_is_drawn_every_tenth_epoch_and_after_the_last():
    from types import SimpleNamespace

    from nnunet_filternet.training.progress_plot import ThrottledProgressPlotMixin

    drawn = []

    class Base:  # what nnU-Net's trainer offers the mixin: a logger whose local logger draws the figure
        def on_train_start(self):
            local = SimpleNamespace(plot_progress_png=lambda folder: drawn.append((self.current_epoch, folder)))
            self.logger = SimpleNamespace(local_logger=local)

    class Trainer(ThrottledProgressPlotMixin, Base):
        num_epochs = 25
        current_epoch = 0

    trainer = Trainer()
    trainer.on_train_start()
    for epoch in range(trainer.num_epochs):  # nnU-Net's on_epoch_end calls the logger's plot every epoch
        trainer.current_epoch = epoch
        trainer.logger.local_logger.plot_progress_png("out")
    assert drawn == [(9, "out"), (19, "out"), (24, "out")]


@pytest.mark.parametrize("recipe", [pytest.param(c, id=c.__name__) for c in trainers.RECIPE_TRAINERS])
def test_a_paper_twin_is_its_trainer_with_the_protocol_just_before_the_plans_network(recipe):
    """The factory's twin has the recipe trainer's whole MRO, the protocol inserted right before PlansNetworkMixin:
    the trainer's own mixins (the edge gate's owner, telemetry, ...) wrap the optimizer and loss it makes."""
    from nnunet_filternet.training.networks import PlansNetworkMixin
    from nnunet_filternet.training.paper_protocol import PaperProtocolMixin

    twin = getattr(trainers, recipe.__name__ + "Paper")
    assert (twin.__name__, twin.__qualname__, twin.__module__) == (recipe.__name__ + "Paper",) * 2 + (
        trainers.__name__,
    )
    mro = twin.__mro__
    assert [c for c in mro[1:] if c is not PaperProtocolMixin] == list(recipe.__mro__)
    assert mro[mro.index(PaperProtocolMixin) + 1] is PlansNetworkMixin
    assert twin.batch_norm and not recipe.batch_norm


def test_paper_twins_are_written_out_one_line_each_and_registered():
    """grep finds every Paper twin's definition: a line ``XPaper = paper_twin(X)`` in trainers.py, listed in order."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(trainers))
    twins = {
        node.targets[0].id: node.value.args[0].id
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.func.id == "paper_twin"
    }
    assert list(twins) == [c.__name__ for c in trainers.PAPER_TRAINERS]
    assert [base + "Paper" for base in twins.values()] == list(twins)
    assert [c.__name__ for c in trainers.RECIPE_TRAINERS] == list(twins.values())
    assert trainers.__all__ == [c.__name__ for c in trainers.RECIPE_TRAINERS + trainers.PAPER_TRAINERS]


def test_one_factory_one_naming_rule_for_both_kinds():
    from nnunet_filternet.errors import FilterNetError
    from nnunet_filternet.training.progress_plot import ThrottledProgressPlotMixin
    from nnunet_filternet.training.variants import make_variant, variant_name

    assert variant_name("X", paper=True, budget=Budget(40, 40, 4)) == "XPaper_40epochs_40iters_4val"
    both = trainers.nnUNetTrainerFilterNetPaper_2epochs  # a budget variant of a twin, by the same rule
    assert both.__mro__[1:3] == (ThrottledProgressPlotMixin, trainers.nnUNetTrainerFilterNetPaper)
    assert both.budget == Budget(2) and "Paper_2epochs" in both.__name__
    with pytest.raises(FilterNetError, match="PlansNetworkMixin"):
        make_variant(trainers.nnUNetTrainer, trainers.__name__, paper=True)  # stock: its network is the plans'
    with pytest.raises(FilterNetError, match="expected the paper's protocol or a budget"):
        make_variant(trainers.nnUNetTrainerUNet, trainers.__name__)
    assert not hasattr(trainers, "nnUNetTrainerPaper")  # twins only where written out: no lazy Paper names
