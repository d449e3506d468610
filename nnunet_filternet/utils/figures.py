"""matplotlib without a display, and PNGs written atomically: what every figure of the package draws with."""

from __future__ import annotations

import os

from nnunet_filternet.utils.atomic import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, out_png: str | os.PathLike) -> None:
    """Save ``fig`` as a PNG atomically."""
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
