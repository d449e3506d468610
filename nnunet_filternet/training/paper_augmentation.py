"""The paper's only augmentation: in-plane rotation within +-10 degrees and independent x/y scaling 0.8-1.2.

Built from batchgeneratorsv2 transforms as nnU-Net builds its own pipeline. 3D patches are turned into
stacks of 2D slices (nnU-Net's ``Convert3DTo2DTransform``) so that rotation and scaling act in the plane of
the last two axes only; nnU-Net puts the thick-slice axis first. The paper made 3 augmented copies of each
patch; drawing fresh parameters per sample with probability :data:`AUGMENT_P` = 3/4 gives the same mix of
original (1/4) and augmented (3/4) patches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Largest in-plane rotation angle, degrees.
ROTATION_DEG = 10.0
#: Range of the per-axis scale factor.
SCALING = (0.8, 1.2)
#: Probability that a sample is rotated (and, independently, scaled).
AUGMENT_P = 0.75


def rotation_range() -> tuple[float, float]:
    """(-10, 10) degrees in radians, as nnU-Net's transforms expect."""
    angle = math.radians(ROTATION_DEG)
    return (-angle, angle)


def initial_patch_size(patch_size: Sequence[int]) -> list[int]:
    """Patch size the data loader must crop so that rotation and scaling leave no empty corners.

    Uses nnU-Net's ``get_patch_size`` on the rotated plane (the last two axes); a 3D patch keeps its first axis.
    """
    from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size

    plane = [int(i) for i in get_patch_size(list(patch_size[-2:]), rotation_range(), 0, 0, SCALING)]
    return [int(patch_size[0]), *plane] if len(patch_size) == 3 else plane


def paper_training_transforms(
    patch_size: Sequence[int],
    deep_supervision_scales: Sequence | None = None,
    use_mask_for_norm: Sequence[bool] | None = None,
):
    """The paper's training pipeline for one configuration.

    Args:
        patch_size: final patch size (z, y, x) or (y, x) in voxels.
        deep_supervision_scales: nnU-Net's target downsampling scales, or None (the paper protocol has none).
        use_mask_for_norm: nnU-Net's per-channel flag; masked channels are zeroed outside the mask as nnU-Net
            does (part of its normalisation, not an augmentation).

    Returns:
        A batchgeneratorsv2 ``ComposeTransforms``.
    """
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
    from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
    from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
    from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform, Convert3DTo2DTransform
    from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform

    is_3d = len(patch_size) == 3
    spatial = SpatialTransform(
        list(patch_size[-2:]),
        patch_center_dist_from_border=0,
        random_crop=False,
        p_elastic_deform=0,
        p_rotation=AUGMENT_P,
        rotation=rotation_range(),
        p_scaling=AUGMENT_P,
        scaling=SCALING,
        p_synchronize_scaling_across_axes=0,
        bg_style_seg_sampling=False,
        border_mode_seg="constant",
        padding_value_seg=-1,
    )
    transforms = [Convert3DTo2DTransform(), spatial, Convert2DTo3DTransform()] if is_3d else [spatial]
    if use_mask_for_norm is not None and any(use_mask_for_norm):
        channels = [i for i, used in enumerate(use_mask_for_norm) if used]
        transforms.append(MaskImageTransform(apply_to_channels=channels, channel_idx_in_seg=0, set_outside_to=0))
    transforms.append(RemoveLabelTansform(-1, 0))
    if deep_supervision_scales is not None:
        transforms.append(DownsampleSegForDSTransform(ds_scales=deep_supervision_scales))
    return ComposeTransforms(transforms)
