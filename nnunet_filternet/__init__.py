"""nnunet-filternet: FilterNet for calf muscle compartment segmentation, inside nnU-Net v2.

Labels used throughout: 0 background, 1 TA, 2 TP, 3 Sol, 4 Gas, 5 PL.
"""

from __future__ import annotations

__version__ = "0.1.0"

from nnunet_filternet.labels import COMPARTMENTS, LABELS, PAPER_EDGE_WEIGHTS

__all__ = ["COMPARTMENTS", "LABELS", "PAPER_EDGE_WEIGHTS", "__version__"]
