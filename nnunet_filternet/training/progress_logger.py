"""nnU-Net's local logger, extended by the edge gate's lambda and sigma per epoch and a panel in progress.png."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from nnunetv2.training.logging.nnunet_logger import LocalLogger

#: Logger keys added by the edge-gate trainers (one value per epoch, like nnU-Net's own keys).
EDGE_GATE_KEYS = ("edge_lambda", "edge_sigma")


def draw_edge_gate_panel(ax, lambdas: Sequence[float], sigmas: Sequence[float]) -> None:
    """Sigma (left axis, linear) and lambda (right axis, log scale) against the epoch on ``ax``."""
    epochs = list(range(len(sigmas)))
    ax.plot(epochs, sigmas, color="purple", ls="-", label="edge gate sigma", linewidth=4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("sigma [voxels]")
    ax.legend(loc=(0, 1))
    ax2 = ax.twinx()
    ax2.plot(epochs, lambdas, color="orange", ls="--", label="edge loss lambda", linewidth=4)
    ax2.set_yscale("log")
    ax2.set_ylabel("lambda")
    ax2.legend(loc=(0.3, 1))


def append_edge_gate_panel(png_path: str, lambdas: Sequence[float], sigmas: Sequence[float]) -> None:
    """Append a sigma/lambda panel below the figure in ``png_path`` (nnU-Net's progress.png), atomically.

    The panel is drawn at the width of the existing image and a third of its height; the two are stacked
    as 8-bit RGBA.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from nnunet_filternet.utils.atomic import atomic_path

    with Image.open(png_path) as image:
        top = np.asarray(image.convert("RGBA"))
    height, width = top.shape[:2]
    dpi = 100
    fig, ax = plt.subplots(1, 1, figsize=(width / dpi, height / 3 / dpi), dpi=dpi)
    draw_edge_gate_panel(ax, lambdas, sigmas)
    fig.tight_layout()
    fig.canvas.draw()
    panel = np.asarray(fig.canvas.buffer_rgba())[:, :width]
    plt.close(fig)
    with atomic_path(png_path) as tmp:
        Image.fromarray(np.concatenate([top, panel], axis=0)).save(tmp, format="PNG", compress_level=1)


class EdgeGateLocalLogger(LocalLogger):
    """nnU-Net's ``LocalLogger`` with the keys :data:`EDGE_GATE_KEYS` and a sigma/lambda panel in progress.png."""

    def __init__(self, verbose: bool = False):
        super().__init__(verbose)
        for key in EDGE_GATE_KEYS:
            self.my_fantastic_logging[key] = []

    def load_checkpoint(self, checkpoint: dict):
        super().load_checkpoint(checkpoint)
        for key in EDGE_GATE_KEYS:
            self.my_fantastic_logging.setdefault(key, [])

    def plot_progress_png(self, output_folder):
        super().plot_progress_png(output_folder)
        n_epochs = min(len(v) for v in self.my_fantastic_logging.values())
        append_edge_gate_panel(
            os.path.join(output_folder, "progress.png"),
            self.my_fantastic_logging["edge_lambda"][:n_epochs],
            self.my_fantastic_logging["edge_sigma"][:n_epochs],
        )
