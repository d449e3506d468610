"""Receptive-field gain of Block B's extra convolutions."""

from __future__ import annotations

from collections.abc import Sequence

from nnunet_filternet.errors import FilterNetError


def receptive_field_gain(
    block_b_kernel_sizes: Sequence[Sequence[int] | None], strides: Sequence[Sequence[int]]
) -> tuple[int, ...]:
    """Receptive-field widening, per axis and in input voxels, brought by the zeta convs.

    A stride-1 conv of kernel k acting at a scale whose cumulative stride is j widens the receptive field by
    (k - 1) * j input voxels. Block B's zeta conv acts at the stage's own resolution (after the stage's
    stride), so the gain is sum_s (zeta_s - 1) * prod_{t <= s} stride_t. Paper: (7-1)*1 + (5-1)*2 + (3-1)*4
    = 22 with strides 1, 2, 2.

    Args:
        block_b_kernel_sizes: zeta per stage (list per axis) or None for stages without an extra conv.
        strides: the plans' strides per stage (list per axis).

    Returns:
        Gain per axis, in voxels at input resolution.
    """
    if len(block_b_kernel_sizes) > len(strides):
        raise FilterNetError(
            f"receptive_field_gain: expected at most {len(strides)} zeta entries (one per stage), "
            f"found {len(block_b_kernel_sizes)}"
        )
    n_axes = len(strides[0])
    jump = [1] * n_axes
    gain = [0] * n_axes
    for zeta, stride in zip(block_b_kernel_sizes, strides):
        jump = [j * s for j, s in zip(jump, stride)]
        if zeta is not None:
            gain = [g + (z - 1) * j for g, z, j in zip(gain, zeta, jump)]
    return tuple(gain)
