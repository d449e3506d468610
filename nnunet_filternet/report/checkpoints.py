"""What nnU-Net checkpoints tell: the network's parameter count and the edge gate's sigma.

The count is taken from ``network_weights`` (the network's state dict) for every trainer, stock or ours:
floating-point tensors, without batch-norm running statistics (``running_mean``, ``running_var``) and
counters (``num_batches_tracked``), which are buffers, not parameters. The edge gate lives outside the
network (key ``filternet_edge_gate``), is used in training only and is not counted, like in the paper.
"""

from __future__ import annotations

import os
from pathlib import Path

from nnunet_filternet.errors import InputError

#: Checkpoints tried in a fold folder, in order of preference.
CHECKPOINT_NAMES: tuple[str, ...] = ("checkpoint_final.pth", "checkpoint_best.pth", "checkpoint_latest.pth")

_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def find_checkpoint(fold_dir: str | os.PathLike) -> Path | None:
    """The preferred checkpoint file of a fold folder, or None."""
    for name in CHECKPOINT_NAMES:
        path = Path(fold_dir) / name
        if path.is_file():
            return path
    return None


def count_state_dict_parameters(state_dict: dict) -> int:
    """Number of parameters in a network state dict (floating tensors, BN statistics excluded).

    The same count as :func:`nnunet_filternet.network.count_parameters` of the network the state dict came from.

    A tensor registered under several names counts once: dynamic-network-architectures' conv blocks hold each
    conv both as ``conv`` and in ``all_modules``, and its decoder keeps a reference to the encoder, so one
    weight appears two to four times in a state dict. ``torch.save`` keeps such tensors sharing storage,
    which identifies them.
    """
    total, seen = 0, set()
    for key, tensor in state_dict.items():
        if key.endswith(_BUFFER_SUFFIXES) or not hasattr(tensor, "is_floating_point"):
            continue
        if tensor.is_floating_point():
            identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
            if identity in seen:
                continue
            seen.add(identity)
            total += tensor.numel()
    return total


def checkpoint_parameters(path: str | os.PathLike) -> int:
    """Parameter count of the network stored in an nnU-Net checkpoint file.

    Raises:
        InputError: the file cannot be loaded or has no ``network_weights``.
    """
    import torch

    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for corrupt files
        raise InputError(path, f"expected an nnU-Net checkpoint (torch.save), loading failed: {e}") from e
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise InputError(path, "expected an nnU-Net checkpoint with key 'network_weights', found none")
    return count_state_dict_parameters(checkpoint["network_weights"])


def checkpoint_sigma(path: str | os.PathLike) -> float | None:
    """The edge gate's sigma stored in a checkpoint of an edge-gate trainer (exact); None for a gate without sigma.

    Raises:
        InputError: the checkpoint holds no gate state.
    """
    from nnunet_filternet.training.edge_gate_owner import gate_state_from_checkpoint, sigma_from_gate_state

    return sigma_from_gate_state(gate_state_from_checkpoint(path))
