"""Edge label maps: the Boundary-Aware FCN's edge labels and the boundary the edge gate finds in a label map."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nnunet_filternet.edge.filter import resolve_axes


def _differs_from_neighbour(labels: torch.Tensor, axis: int) -> torch.Tensor:
    """True where a voxel's label differs from one of its two neighbours along ``axis`` (dim of ``labels``).

    The border is replicated, so the image border is not an edge.
    """
    n = labels.shape[axis]
    padded = torch.cat([labels.narrow(axis, 0, 1), labels, labels.narrow(axis, n - 1, 1)], dim=axis)
    before = padded.narrow(axis, 0, n)
    after = padded.narrow(axis, 2, n)
    return (labels != before) | (labels != after)


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
    boundary = _differs_from_neighbour(labels, axes[0] + 2)
    for axis in axes[1:]:
        boundary |= _differs_from_neighbour(labels, axis + 2)
    return boundary
