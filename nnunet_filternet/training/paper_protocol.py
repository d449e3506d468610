"""The paper's training protocol as an nnU-Net trainer mixin.

What the mixin sets, each through one nnU-Net hook:

- optimizer (``configure_optimizers``): SGD, LR 1e-3, momentum 0.9, no weight decay (the paper names
  neither momentum nor weight decay), LR divided by 5 at each third of training (:class:`StepLRScheduler`,
  every 10 of the paper's 30 epochs);
- length (``__init__``): 30 epochs of nnU-Net's 250 iterations (the budget variants change the epochs);
- loss (``_build_loss``): plain cross-entropy, deep supervision off (the paper's networks have one output);
- network (``batch_norm``): BatchNorm instead of the plans' InstanceNorm (read by ``PlansNetworkMixin``);
- augmentation (``get_training_transforms``, ``configure_rotation_dummyDA_mirroring_and_inital_patch_size``):
  in-plane rotation +-10 degrees and independent x/y scaling 0.8-1.2 only; no mirroring in training or at
  test time.

Patch (28 x 120 x 120) and batch size (2) belong to the plans: train with ``-p nnUNetPlans_paper``
(``filternet plans DATASET --preset paper``); the trainer notes in its log when the plans differ.

Place the mixin after the trainer's other mixins and before ``PlansNetworkMixin`` / ``nnUNetTrainer``, so
that e.g. the edge gate's owner wraps its optimizer and loss.
"""

from __future__ import annotations

import torch

from nnunet_filternet.training import paper_augmentation
from nnunet_filternet.training.device import DEFAULT_DEVICE

#: The paper's patch (z, y, x) in voxels and batch size.
PAPER_PATCH_SIZE = (28, 120, 120)
PAPER_BATCH_SIZE = 2
PAPER_NUM_EPOCHS = 30
PAPER_INITIAL_LR = 1e-3
PAPER_MOMENTUM = 0.9


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
        self.enable_deep_supervision = False

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
