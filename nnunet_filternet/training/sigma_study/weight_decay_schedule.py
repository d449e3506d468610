"""sigma under weight decay alone over the paper's schedule (docs/training.md, "Sigma", hypothesis 1); CPU, seconds.

Run: ``python -m nnunet_filternet.training.sigma_study.weight_decay_schedule``. sigma is one parameter, trained as
itself from 1 by ``torch.optim.SGD`` as the paper's protocol would (LR 1e-3 divided by 5 every 10 epochs, momentum
0.9, 30 epochs of 1,080 iterations: 30 subjects x 2 legs x 9 patches x 4 copies / batch 2), with the edge loss's
gradient left out: each step's gradient is the weight decay's alone. Prints sigma after epochs 10, 20 and 30
per weight decay.
"""

from __future__ import annotations

import argparse

import torch

from nnunet_filternet.training.paper_protocol import (
    PAPER_BATCH_SIZE,
    PAPER_INITIAL_LR,
    PAPER_MOMENTUM,
    PAPER_NUM_EPOCHS,
    paper_iterations_per_epoch,
)
from nnunet_filternet.training.step_lr import step_decay

#: The paper's folds: 30 training subjects, 2 legs (nnU-Net cases) each.
PAPER_TRAINING_CASES = 30 * 2


def trajectory(weight_decay: float) -> list[float]:
    """sigma at the end of epochs 10, 20, 30."""
    sigma = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
    optimizer = torch.optim.SGD([sigma], lr=PAPER_INITIAL_LR, momentum=PAPER_MOMENTUM, weight_decay=weight_decay)
    iterations = paper_iterations_per_epoch(PAPER_TRAINING_CASES, PAPER_BATCH_SIZE)
    out = []
    for epoch in range(PAPER_NUM_EPOCHS):
        for group in optimizer.param_groups:
            group["lr"] = step_decay(epoch, PAPER_NUM_EPOCHS, PAPER_INITIAL_LR)
        for _ in range(iterations):
            sigma.grad = torch.zeros_like(sigma)
            optimizer.step()
        if (epoch + 1) % 10 == 0:
            out.append(sigma.item())
    return out


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    print("| weight decay | epoch 10 | epoch 20 | epoch 30 |")
    print("|---|---|---|---|")
    for weight_decay in (1e-4, 5e-4, 1e-3):
        print(f"| {weight_decay:g} | " + " | ".join(f"{s:.4f}" for s in trajectory(weight_decay)) + " |")


if __name__ == "__main__":
    main()
