"""The edge-loss class weights W of a dataset, read from its ``dataset.json``."""

from __future__ import annotations

from nnunet_filternet.errors import InputError
from nnunet_filternet.labels import EDGE_WEIGHTS_KEY


def uniform_edge_weights(num_classes: int) -> tuple[float, ...]:
    """0 for the background, ``1 / (num_classes - 1)`` for every foreground class."""
    if num_classes < 2:
        raise ValueError(f"uniform_edge_weights: expected at least 2 classes, found {num_classes}")
    return (0.0,) + (1.0 / (num_classes - 1),) * (num_classes - 1)


def edge_weights_from_dataset_json(dataset_json: dict, num_classes: int, source: str = "dataset.json") -> tuple:
    """W from ``dataset_json[EDGE_WEIGHTS_KEY]`` when present, else :func:`uniform_edge_weights`.

    Args:
        dataset_json: the dataset's ``dataset.json`` content.
        num_classes: number of output channels of the network (labels including background).
        source: the file the content came from, for error messages.

    Returns:
        One non-negative weight per class, background first.

    Raises:
        InputError: the stored weights are not a list of ``num_classes`` non-negative numbers with a
            positive sum.
    """
    if EDGE_WEIGHTS_KEY not in dataset_json:
        return uniform_edge_weights(num_classes)
    weights = dataset_json[EDGE_WEIGHTS_KEY]
    ok = isinstance(weights, (list, tuple)) and all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights
    )
    if not ok or len(weights) != num_classes or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise InputError(
            source,
            f'expected "{EDGE_WEIGHTS_KEY}" to be a list of {num_classes} non-negative numbers (one per label, '
            f"background first) with a positive sum, found {weights!r}",
        )
    return tuple(float(w) for w in weights)
