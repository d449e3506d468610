"""The edge-loss weight lambda: multiplied by ``factor`` at each of ``n_steps`` equal parts of training."""

from __future__ import annotations

from nnunet_filternet.errors import FilterNetError


def edge_lambda(epoch: int, num_epochs: int, start: float = 1e-3, factor: float = 10.0, n_steps: int = 3) -> float:
    """Lambda of loss (8) for an epoch: ``start * factor ** k`` in the k-th of ``n_steps`` equal parts.

    Paper: 0.001, then 0.01, then 0.1, each for 10 of 30 epochs. With 1000 epochs the parts are epochs
    0-333, 334-666 and 667-999 (part k holds the epochs e with floor(e * n_steps / num_epochs) = k).

    Args:
        epoch: 0-based current epoch (epochs past the end keep the last value).
        num_epochs: total number of training epochs (> 0).
        start: lambda of the first part.
        factor: multiplier from one part to the next.
        n_steps: number of parts (>= 1).

    Returns:
        Lambda as a float.
    """
    if num_epochs < 1 or n_steps < 1 or epoch < 0:
        raise FilterNetError(
            f"edge_lambda: expected epoch >= 0, num_epochs >= 1 and n_steps >= 1, "
            f"found epoch={epoch}, num_epochs={num_epochs}, n_steps={n_steps}"
        )
    part = min(epoch * n_steps // num_epochs, n_steps - 1)
    return start * factor**part
