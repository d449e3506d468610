"""The zeta rule (Block B's extra-conv kernel per stage) and FilterNet arch_kwargs from nnU-Net plans."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from nnunet_filternet.errors import FilterNetError

#: In-plane zeta of the paper at the first three scales (full, 1/2, 1/4 resolution).
PAPER_ZETA: tuple[int, ...] = (7, 5, 3)


def derive_block_b_kernel_sizes(
    kernel_sizes: Sequence[Sequence[int] | int], in_plane_zeta: Sequence[int] = PAPER_ZETA
) -> list[list[int] | None]:
    """Zeta per stage and axis, from the plans' conv kernel sizes.

    Rule: stage s < len(in_plane_zeta) gets an extra conv; along an axis where the plans' kernel of that
    stage is 1 (nnU-Net's own decision that the axis is too coarse to convolve at that scale) zeta is 1,
    elsewhere it is ``in_plane_zeta[s]``. Deeper stages get no extra conv (None), only the residual block.

    Args:
        kernel_sizes: the plans' kernel sizes, one entry per stage (list per axis, or an int).
        in_plane_zeta: zeta of the first stages (odd).

    Returns:
        One entry per stage: a list of zeta per axis, or None.

    Example:
        kernels [[1,3,3],[1,3,3],[3,3,3],[3,3,3]] -> [[1,7,7],[1,5,5],[3,3,3],None].
    """
    if any(z < 1 or z % 2 == 0 for z in in_plane_zeta):
        raise FilterNetError(f"derive_block_b_kernel_sizes: expected odd positive zeta, found {list(in_plane_zeta)}")
    zeta: list[list[int] | None] = []
    for stage, kernel in enumerate(kernel_sizes):
        if stage >= len(in_plane_zeta):
            zeta.append(None)
            continue
        kernel = [kernel] if isinstance(kernel, int) else list(kernel)
        zeta.append([1 if k == 1 else in_plane_zeta[stage] for k in kernel])
    return zeta


def filternet_arch_kwargs(plain_arch_kwargs: dict, spacing: Sequence[float] | None = None) -> dict:
    """FilterNet arch_kwargs from a plans configuration's PlainConvUNet arch_kwargs.

    The result is JSON-serialisable like the input (ops stay strings) and adds ``block_b_kernel_sizes``
    (explicit lists, null for stages without an extra conv) and ``halve_downsampled_features`` (true: the
    encoder's halved widths; the decoder keeps the plans' ``features_per_stage``), so the plans record exactly
    what was built. The input is not modified.

    Args:
        plain_arch_kwargs: ``architecture.arch_kwargs`` of a configuration in nnUNetPlans.json.
        spacing: the configuration's voxel spacing (mm), optional; only checked to have one entry per
            axis of the kernels (the zeta rule reads the kernels, which encode nnU-Net's anisotropy).

    Returns:
        A new dict of FilterNet keyword arguments.
    """
    missing = [key for key in ("n_stages", "kernel_sizes", "strides") if key not in plain_arch_kwargs]
    if missing:
        raise FilterNetError(f"filternet_arch_kwargs: expected PlainConvUNet arch_kwargs, missing keys {missing}")
    kwargs = copy.deepcopy(plain_arch_kwargs)
    kernel_sizes = kwargs["kernel_sizes"]
    if len(kernel_sizes) != kwargs["n_stages"]:
        raise FilterNetError(
            f"filternet_arch_kwargs: expected {kwargs['n_stages']} kernel sizes (n_stages), found {len(kernel_sizes)}"
        )
    if spacing is not None:
        n_axes = len(kernel_sizes[0]) if not isinstance(kernel_sizes[0], int) else len(spacing)
        if len(spacing) != n_axes:
            raise FilterNetError(
                f"filternet_arch_kwargs: expected a spacing with {n_axes} entries (one per kernel axis), "
                f"found {list(spacing)}"
            )
    kwargs["block_b_kernel_sizes"] = derive_block_b_kernel_sizes(kernel_sizes)
    kwargs["halve_downsampled_features"] = True
    return kwargs


#: arch_kwargs key of FilterNet plans written before the decoder took the narrow skips as they are.
LEGACY_DECODER_KEY = "halve_decoder_features"


def without_legacy_keys(filternet_kwargs: dict) -> dict:
    """FilterNet arch_kwargs of plans from any version of this package, as ``FilterNet`` takes them now.

    Earlier plans carry ``halve_decoder_features``: false (the decoder at the plans' widths, which is the only
    decoder now) is dropped; true (a compact decoder at the encoder's widths, no longer built) is an error.
    The input is not modified.
    """
    kwargs = copy.deepcopy(filternet_kwargs)
    if kwargs.pop(LEGACY_DECODER_KEY, False):
        raise FilterNetError(
            f"FilterNet plans: expected no {LEGACY_DECODER_KEY!r} (the decoder always has the plans' widths), "
            f"found {LEGACY_DECODER_KEY}: true (the compact variant, no longer built); write the plans again with "
            "`filternet plans DATASET --preset ...` or train from nnU-Net's plans"
        )
    return kwargs
