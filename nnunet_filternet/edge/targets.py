"""Edge label maps: the Boundary-Aware FCN's edge labels and the boundary the edge gate finds in a label map."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nnunet_filternet.edge.filter import resolve_axes


def edge_targets(labels: torch.Tensor, in_plane_axes: Sequence[int] | None) -> torch.Tensor:
    """Inner boundary of every foreground label, labelled with that label; 0 elsewhere.

    A voxel of label l > 0 is an edge voxel if one of its face neighbours along the in-plane axes has another
    label; it keeps label l, so the edge map has the same classes as the region map (the edge decoder and
    its loss use ``num_classes`` outputs). These are exactly the voxels where the gate's Laplacian of the
    one-hot map of l is positive.

    Args:
        labels: integer label map B 1 *spatial (2 or 3 spatial axes).
        in_plane_axes: 0-based spatial axes along which neighbours are compared; None for all axes.

    Returns:
        LongTensor B 1 *spatial.
    """
    labels = labels.long()
    return torch.where(boundary_mask(labels, in_plane_axes), labels, torch.zeros_like(labels))


def boundary_mask(labels: torch.Tensor, in_plane_axes: Sequence[int] | None) -> torch.Tensor:
    """True where a voxel's label differs from one of its face neighbours along the filtered axes.

    The border is replicated (the image border is not a boundary). For every label l, ``boundary & (labels == l)``
    is exactly where the gate's rho(L * one_hot_l) is 1 (and 0 elsewhere): L of a 0/1 map at a voxel of l is the
    number of its neighbours outside l (>= 1 clamps to 1), and at any other voxel minus its neighbours in l.

    Args:
        labels: label map B 1 *spatial (2 or 3 spatial axes; any dtype, compared as it is).
        in_plane_axes: 0-based spatial axes along which neighbours are compared; None for all axes.

    Returns:
        BoolTensor of the shape of ``labels``.
    """
    axes = resolve_axes(labels.ndim - 2, in_plane_axes)
    boundary = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for axis in axes:
        dim, length = axis + 2, labels.shape[axis + 2]
        if length > 1:  # voxels i and i + 1 differ: both are on it (a replicated border differs from nothing)
            step = labels.narrow(dim, 1, length - 1) != labels.narrow(dim, 0, length - 1)
            after = [0, 0] * (labels.ndim - 1 - dim)  # F.pad lists the last axis first
            boundary = boundary | F.pad(step, after + [1, 0]) | F.pad(step, after + [0, 1])
    return boundary
