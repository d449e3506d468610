"""The label convention shared by every stage (phantom, conversion, trainers, metrics, reports)."""

from __future__ import annotations

#: nnU-Net ``dataset.json`` labels: name -> value.
LABELS: dict[str, int] = {"background": 0, "TA": 1, "TP": 2, "Sol": 3, "Gas": 4, "PL": 5}

#: Foreground compartments in label order (value = index + 1).
COMPARTMENTS: tuple[str, ...] = ("TA", "TP", "Sol", "Gas", "PL")

#: Edge-loss class weights W of the paper (background, TA, TP, Sol, Gas, PL).
PAPER_EDGE_WEIGHTS: tuple[float, ...] = (0.0, 0.2, 0.2, 0.15, 0.15, 0.3)

#: Key under which the conversion stores W in dataset.json, read by the trainers.
EDGE_WEIGHTS_KEY = "filternet_edge_weights"

#: RGB colours (0-255) for label maps, used by figures and the Slicer / ITK-SNAP colour tables.
COLOURS: dict[int, tuple[int, int, int]] = {
    1: (230, 25, 75),  # TA red
    2: (60, 180, 75),  # TP green
    3: (0, 130, 200),  # Sol blue
    4: (255, 225, 25),  # Gas yellow
    5: (145, 30, 180),  # PL purple
}
