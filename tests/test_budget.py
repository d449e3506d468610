"""Budget variants: one factory, names that say the budget, made for any trainer nnU-Net can find."""

from __future__ import annotations

import pytest
import torch

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

    from nnunet_filternet.bench.plans import DEFAULT_DATASET_JSON, PRESETS, builtin_plans
    from nnunet_filternet.training import trainers
    from nnunet_filternet.training.norm_policy import NormPolicyMixin
    from nnunet_filternet.training.progress_plot import ThrottledProgressPlotMixin
    from nnunet_filternet.training.telemetry import TelemetryMixin

    cls = trainers.nnUNetTrainer_40epochs_40iters_4val
    assert cls.__mro__[1:5] == (ThrottledProgressPlotMixin, TelemetryMixin, NormPolicyMixin, nnUNetTrainer)
    ours = trainers.nnUNetTrainerFilterNet_40epochs_40iters_4val  # has telemetry and norm: added once, not twice
    assert ours.__mro__[1:3] == (ThrottledProgressPlotMixin, trainers.nnUNetTrainerFilterNet)
    plans = builtin_plans(PRESETS["quick"])
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
