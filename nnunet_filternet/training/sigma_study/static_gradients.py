"""dLe/dsigma of fixed predictions under each reading of tau (docs/training.md, "Sigma"); CPU, a few seconds.

Run: ``python -m nnunet_filternet.training.sigma_study.static_gradients``. Labels: 4 slices of 96 x 96 with five random
elliptic compartments (seed 0); predictions: softmax of the logits named in the table; W = (0, 0.2, 0.2, 0.15,
0.15, 0.3); the gate in-plane, as in training. Prints Le and dLe/dsigma per prediction, sigma and reading, and
for the labels' edge map held as a constant target (``EdgeLoss(constant_target=True)``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy import ndimage

from nnunet_filternet.edge.gate import EdgeGate
from nnunet_filternet.edge.kernels import GAUSSIAN_NORMALISATIONS
from nnunet_filternet.edge.loss import EdgeLoss
from nnunet_filternet.labels import LABELS, PAPER_EDGE_WEIGHTS

SIGMAS = (0.3, 0.5, 0.7, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0)


def labels_and_predictions(size: int = 96, seed: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Label map 1 x 1 x 4 x size x size and logits 1 x C x 4 x size x size per kind of prediction (C = len(LABELS))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((4, size, size), int)
    for z in range(4):
        for value in sorted(LABELS.values())[1:]:  # every compartment, background left out
            cy, cx = rng.uniform(0.25 * size, 0.75 * size, 2)
            ry, rx = rng.uniform(0.08 * size, 0.19 * size, 2)
            labels[z][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = value

    def logits(label_map: np.ndarray) -> np.ndarray:
        return 4.0 * np.stack([label_map == v for v in sorted(LABELS.values())]).astype(np.float64)

    sharp = logits(labels)
    smooth = ndimage.gaussian_filter(sharp, (0, 0, 2, 2))
    eroded = np.where(ndimage.binary_erosion(labels > 0, np.ones((1, 3, 3))), labels, 0)
    predictions = {
        "random": rng.normal(size=sharp.shape),
        "noisy": sharp + 2.0 * rng.normal(size=sharp.shape),
        "shifted": logits(np.roll(labels, 2, axis=2)),
        "smooth": smooth,
        "smooth+noise": smooth + 0.5 * rng.normal(size=sharp.shape),
        "eroded": logits(eroded),
    }
    as_tensor = {name: torch.from_numpy(p[None]) for name, p in predictions.items()}
    return torch.from_numpy(labels[None, None]).double(), as_tensor


def gradient(
    labels: torch.Tensor, logits: torch.Tensor, sigma: float, normalisation: str, constant_target: bool = False
) -> tuple[float, float]:
    """(Le, dLe/dsigma) at ``sigma`` in float64; ``constant_target``: the labels' edge map as a constant."""
    gate = EdgeGate(3, (1, 2), sigma_init=sigma, normalisation=normalisation).double()
    loss = EdgeLoss(gate, PAPER_EDGE_WEIGHTS, constant_target=constant_target)(logits, labels)
    (d_log_sigma,) = torch.autograd.grad(loss, gate.log_sigma)
    return loss.item(), d_log_sigma.item() / gate.sigma.item()


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(1)
    labels, predictions = labels_and_predictions()
    columns = [*GAUSSIAN_NORMALISATIONS, "tau_constant, constant target", "tau_differentiated, constant target"]
    print("| prediction | sigma | Le (sum-1 kG) | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for name, logits in predictions.items():
        for sigma in SIGMAS:
            loss = gradient(labels, logits, sigma, "tau_differentiated")[0]
            cells = [f"{gradient(labels, logits, sigma, n)[1]:+.5f}" for n in GAUSSIAN_NORMALISATIONS]
            for normalisation in ("tau_constant", "tau_differentiated"):
                cells.append(f"{gradient(labels, logits, sigma, normalisation, constant_target=True)[1]:+.5f}")
            print(f"| {name} | {sigma:g} | {loss:.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
