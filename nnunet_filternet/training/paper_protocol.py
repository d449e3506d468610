"""The paper's training protocol as an nnU-Net trainer mixin.

What the mixin sets, each through one nnU-Net hook:

- optimizer (``configure_optimizers``): SGD, LR 1e-3, momentum 0.9, no weight decay (the paper names
  neither momentum nor weight decay), LR divided by 5 at each third of training (:class:`StepLRScheduler`,
  every 10 of the paper's 30 epochs);
- length (``__init__``, ``do_split``): 30 epochs (the budget variants change the epochs), each as long as the
  paper's: 9 patches per leg area x (the patch + 3 augmented copies), i.e.
  ``ceil(9 * 4 * training cases / batch size)`` iterations (:func:`paper_iterations_per_epoch`), set once
  nnU-Net's split names the fold's training cases (one case = one leg, as ``filternet convert`` writes them);
  a subclass that sets ``num_iterations_per_epoch`` itself keeps its own value;
- patches (``__init__``): nnU-Net's random crops, without its foreground oversampling: the paper's grid of
  patches (stride 20 in x and y) covers each leg area evenly, with no choice by class;
- loss (``_build_loss``): plain cross-entropy, deep supervision off (the paper's networks have one output);
- network (``batch_norm``): BatchNorm instead of the plans' InstanceNorm (read by ``PlansNetworkMixin``);
- augmentation (``get_training_transforms``, ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``):
  3 of 4 samples rotated in-plane by U(-10, 10) degrees and zoomed by independent U(0.8, 1.2) factors along
  x and y (:mod:`paper_augmentation`), nothing else; no mirroring in training or at test time.

Patch (28 x 120 x 120) and batch size (2) belong to the plans: train with ``-p nnUNetPlans_paper``
(``filternet plans DATASET --preset paper``); the trainer notes in its log when the plans differ.

Place the mixin after the trainer's other mixins and before ``PlansNetworkMixin`` / ``nnUNetTrainer``, so
that e.g. the edge gate's owner wraps its optimizer and loss.
"""

from __future__ import annotations

import math

import torch

from nnunet_filternet.training import paper_augmentation
from nnunet_filternet.training.device import DEFAULT_DEVICE

#: The paper's patch (z, y, x) in voxels and batch size.
PAPER_PATCH_SIZE = (28, 120, 120)
PAPER_BATCH_SIZE = 2
PAPER_NUM_EPOCHS = 30
PAPER_INITIAL_LR = 1e-3
PAPER_MOMENTUM = 0.9
#: Patches per leg area and epoch: a 3 x 3 grid (stride 20 voxels in x and y), each patch as it is plus 3
#: augmented copies (paper: "9 times as large the number of the training patches as that of the leg-areas",
#: "3 more patches are generated for each training patch").
PAPER_PATCHES_PER_LEG = 9
PAPER_COPIES_PER_PATCH = 1 + 3


def paper_iterations_per_epoch(n_training_cases: int, batch_size: int) -> int:
    """Iterations of one paper epoch: ceil(9 x 4 x training cases / batch size).

    Args:
        n_training_cases: leg areas (nnU-Net cases) in the fold's training split.
        batch_size: patches per iteration over all processes (the plans' batch size).

    Example:
        30 training subjects x 2 legs, batch 2 (the paper's folds): ceil(9 * 4 * 60 / 2) = 1080.
    """
    if n_training_cases < 1 or batch_size < 1:
        raise ValueError(
            f"paper_iterations_per_epoch: expected >= 1 training case and batch size, "
            f"found {n_training_cases} and {batch_size}"
        )
    return math.ceil(PAPER_PATCHES_PER_LEG * PAPER_COPIES_PER_PATCH * n_training_cases / batch_size)


class PaperProtocolMixin:
    """Mixin for an ``nnUNetTrainer`` subclass: the paper's optimizer, schedule, loss, BN and augmentation."""

    batch_norm = True

    def __init__(
        self, plans: dict, configuration: str, fold: int, dataset_json: dict, device: torch.device = DEFAULT_DEVICE
    ):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = PAPER_INITIAL_LR
        self.weight_decay = 0.0
        self.num_epochs = PAPER_NUM_EPOCHS
        self.num_iterations_per_epoch = None  # the paper's epoch, set by do_split from the training cases
        self.oversample_foreground_percent = 0.0
        self.enable_deep_supervision = False

    def do_split(self):
        tr_keys, val_keys = super().do_split()
        if self.num_iterations_per_epoch is None:
            batch = self.configuration_manager.batch_size
            self.num_iterations_per_epoch = paper_iterations_per_epoch(len(tr_keys), batch)
            self.print_to_log_file(
                f"paper protocol: {len(tr_keys)} training cases x {PAPER_PATCHES_PER_LEG} patches x "
                f"{PAPER_COPIES_PER_PATCH} (the patch and 3 augmented copies) / batch {batch} = "
                f"{self.num_iterations_per_epoch} iterations per epoch"
            )
        return tr_keys, val_keys

    def configure_optimizers(self):
        from nnunet_filternet.training.step_lr import StepLRScheduler

        optimizer = torch.optim.SGD(
            self.network.parameters(), self.initial_lr, momentum=PAPER_MOMENTUM, weight_decay=self.weight_decay
        )
        return optimizer, StepLRScheduler(optimizer, self.initial_lr, self.num_epochs)

    def _build_loss(self):
        from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss

        ignore = self.label_manager.ignore_label if self.label_manager.has_ignore_label else -100
        return RobustCrossEntropyLoss(ignore_index=ignore)

    def on_train_start(self):
        super().on_train_start()
        patch, batch = tuple(self.configuration_manager.patch_size), self.configuration_manager.batch_size
        if patch != PAPER_PATCH_SIZE or batch != PAPER_BATCH_SIZE:
            self.print_to_log_file(
                f"paper protocol: plans give patch {patch} and batch {batch}; the paper used "
                f"{PAPER_PATCH_SIZE} and {PAPER_BATCH_SIZE} (train with -p nnUNetPlans_paper for those)"
            )

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        patch_size = self.configuration_manager.patch_size
        self.inference_allowed_mirroring_axes = None
        rotation = paper_augmentation.rotation_range()
        return rotation, len(patch_size) == 3, paper_augmentation.initial_patch_size(patch_size), None

    @staticmethod
    def get_training_transforms(
        patch_size,
        rotation_for_DA,
        deep_supervision_scales,
        mirror_axes,
        do_dummy_2d_data_aug,
        use_mask_for_norm=None,
        is_cascaded=False,
        foreground_labels=None,
        regions=None,
        ignore_label=None,
    ):
        from nnunet_filternet.errors import FilterNetError

        if is_cascaded or regions is not None:
            raise FilterNetError("the paper protocol supports neither cascades nor region-based training")
        return paper_augmentation.paper_training_transforms(patch_size, deep_supervision_scales, use_mask_for_norm)
