"""sigma per epoch of finished edge-gate trainings, read from their final checkpoints (docs/training.md, "Sigma").

Run: ``python -m nnunet_filternet.training.sigma_study.trajectories FOLD_FOLDER [FOLD_FOLDER ...]`` with nnU-Net's
fold folders (``$nnUNet_results/DatasetXXX/<trainer>__<plans>__<configuration>/fold_N``). The training log prints
sigma to 3 decimals; nnU-Net's logger in ``checkpoint_final.pth`` keeps every epoch's value in full (key
``edge_sigma``).
Prints sigma after every epoch (runs of up to 10 epochs) or after epochs 1, 5, 10, ..., and the change over the
run, one row per folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nnunet_filternet.training.progress_logger import EDGE_GATE_KEYS

#: nnU-Net's logging key of the gate's sigma per epoch (written by the edge gate's owner).
SIGMA_KEY = EDGE_GATE_KEYS[1]


def shown_epochs(n_epochs: int) -> list[int]:
    """1-based epochs to print: all of up to 10, else 1, 5, 10, 15, ... and the last."""
    if n_epochs <= 10:
        return list(range(1, n_epochs + 1))
    return sorted({1, *range(5, n_epochs + 1, 5), n_epochs})


def sigma_per_epoch(fold_folder: Path) -> list[float]:
    """sigma at the end of every epoch of the training in ``fold_folder``."""
    checkpoint = fold_folder / "checkpoint_final.pth"
    if not checkpoint.is_file():
        raise SystemExit(f"{checkpoint}: expected nnU-Net's final checkpoint of a finished training, found none")
    logging = torch.load(checkpoint, map_location="cpu", weights_only=False)["logging"]
    if SIGMA_KEY not in logging:
        raise SystemExit(f"{checkpoint}: expected the edge gate's sigma in its logging (an edge-gate trainer)")
    return [float(s) for s in logging[SIGMA_KEY]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, metavar="FOLD_FOLDER", help="nnU-Net fold folders")
    runs = {f: sigma_per_epoch(f) for f in parser.parse_args(argv).folders}
    epochs = shown_epochs(max(len(s) for s in runs.values()))
    print("| training | " + " | ".join(f"epoch {e}" for e in epochs) + " | change |")
    print("|---|" + "---|" * (len(epochs) + 1))
    for folder, sigma in runs.items():
        cells = [f"{sigma[e - 1]:.6f}" if e <= len(sigma) else "-" for e in epochs]
        print(f"| {folder.parent.name.split('__')[0]} | " + " | ".join(cells) + f" | {sigma[-1] - 1:+.6f} |")


if __name__ == "__main__":
    main()
