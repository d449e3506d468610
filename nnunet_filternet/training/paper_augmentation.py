"""The paper's only augmentation: each augmented copy is rotated in-plane and scaled independently along x and y.

The paper: "3 more patches are generated for each training patch. Namely, a rotation value is randomly chosen
between -10 to 10 degrees, two scaling factors are randomly chosen between 0.8 and 1.2 along x and y
directions." So an epoch shows every patch once as it is and three times augmented, and every augmented copy
gets both a rotation and the two scalings. nnU-Net draws a fresh random patch per sample instead of cycling
through a fixed set, so the same mix is drawn per sample: with probability :data:`AUGMENT_P` = 3/4 a sample
is augmented, and then

- rotated by an angle uniform in [-10, 10] degrees in the plane of the last two axes (y, x),
- zoomed along x and along y by two independent factors, each uniform in [0.8, 1.2] (factor > 1 enlarges);

otherwise it is only cropped to the patch size. Built from batchgeneratorsv2 transforms as nnU-Net builds its
own pipeline: batchgeneratorsv2's ``RandomTransform`` decides per sample, its ``SpatialTransform`` (with
``p_rotation = p_scaling = 1``) rotates and scales, and a second ``SpatialTransform`` without augmentation
crops the unaugmented samples (it leaves the augmented ones, already at the patch size, as they are).
batchgeneratorsv2's ``scaling`` is a coordinate scale (larger = smaller objects), so it is given the
reciprocal of the zoom factor (:func:`coordinate_scale`). 3D patches are turned into stacks of 2D slices
(nnU-Net's ``Convert3DTo2DTransform``), so every slice of a patch moves alike and the slice axis (nnU-Net
puts the thick-slice axis first) is left alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Largest in-plane rotation angle, degrees.
ROTATION_DEG = 10.0
#: Range of the zoom factor along x and along y (each drawn on its own, uniformly).
ZOOM = (0.8, 1.2)
#: Probability that a sample is an augmented copy (the paper: 3 augmented copies per original patch).
AUGMENT_P = 3 / 4


def rotation_range() -> tuple[float, float]:
    """(-10, 10) degrees in radians, as nnU-Net's transforms expect."""
    angle = math.radians(ROTATION_DEG)
    return (-angle, angle)


def coordinate_scale(*args, **kwargs) -> float:
    """batchgeneratorsv2's per-axis scale for one axis: 1 / zoom, the zoom uniform in :data:`ZOOM`.

    ``SpatialTransform`` calls it once per axis (a callable ``scaling``), so x and y get independent factors.
    """
    return 1.0 / np.random.uniform(*ZOOM)


def initial_patch_size(patch_size: Sequence[int]) -> list[int]:
    """Patch size the data loader must crop so that rotation and zoom never sample outside it.

    The augmentation samples the input at R S p for every output voxel centre p (offsets from the patch centre,
    |p_i| <= h_i = (P_i - 1) / 2), with |angle| <= 10 degrees and coordinate scales s <= 1 / min(zoom) = 1.25.
    Along in-plane axis i that reaches max over the angles of s (h_i cos a + h_j sin a); bilinear interpolation
    reads the pixel centres around it, so the crop needs 2 * reach + 1 voxels (rounded up). A 3D patch keeps
    its first (slice) axis. nnU-Net's ``get_patch_size`` gives less (173 x 150 instead of 174 x 174 for a
    120 x 120 patch), which let zero padding into the corners of rotated, zoomed-out copies (measured by
    ``tests/test_paper_protocol.py``).

    Args:
        patch_size: final patch (z, y, x) or (y, x) in voxels.

    Returns:
        The crop, same axes.
    """
    plane = [int(p) for p in patch_size[-2:]]
    half = [(p - 1) / 2 for p in plane]
    max_scale = 1.0 / min(ZOOM)
    max_angle = math.radians(ROTATION_DEG)
    crop = []
    for i, j in ((0, 1), (1, 0)):
        # h_i cos a + h_j sin a grows with a up to atan(h_j / h_i), so its largest value on [0, max_angle] is at:
        angle = min(max_angle, math.atan2(half[j], half[i]))
        reach = max_scale * (half[i] * math.cos(angle) + half[j] * math.sin(angle))
        crop.append(math.ceil(2 * reach - 1e-9) + 1)
    return [int(patch_size[0]), *crop] if len(patch_size) == 3 else crop


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
    from batchgeneratorsv2.transforms.utils.random import RandomTransform
    from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform

    plane = list(patch_size[-2:])
    common = {
        "patch_center_dist_from_border": 0,
        "random_crop": False,
        "p_elastic_deform": 0,
        "bg_style_seg_sampling": False,
        "border_mode_seg": "constant",
        "padding_value_seg": -1,
    }
    augment = SpatialTransform(
        plane,
        p_rotation=1,
        rotation=rotation_range(),
        p_scaling=1,
        scaling=coordinate_scale,
        p_synchronize_scaling_across_axes=0,
        **common,
    )
    crop = SpatialTransform(plane, p_rotation=0, p_scaling=0, **common)
    spatial = [RandomTransform(augment, apply_probability=AUGMENT_P), crop]
    transforms = [Convert3DTo2DTransform(), *spatial, Convert2DTo3DTransform()] if len(patch_size) == 3 else spatial
    if use_mask_for_norm is not None and any(use_mask_for_norm):
        channels = [i for i, used in enumerate(use_mask_for_norm) if used]
        transforms.append(MaskImageTransform(apply_to_channels=channels, channel_idx_in_seg=0, set_outside_to=0))
    transforms.append(RemoveLabelTansform(-1, 0))
    if deep_supervision_scales is not None:
        transforms.append(DownsampleSegForDSTransform(ds_scales=deep_supervision_scales))
    return ComposeTransforms(transforms)
