"""nnU-Net's largest-connected-component post-processing, applied per label in memory.

This is the per-class step of :func:`nnunetv2.postprocessing.remove_connected_components.determine_postprocessing`
(each foreground label keeps only its largest component; removed voxels become background), applied to
every label unconditionally so that its effect can be reported. nnU-Net's own function does the work;
we do not call ``determine_postprocessing`` because it writes into the results folder, which the report
must not modify. nnU-Net is imported at module level so that worker processes forked for evaluation
inherit it instead of importing torch each.
"""

from __future__ import annotations

import numpy as np
from nnunetv2.postprocessing.remove_connected_components import remove_all_but_largest_component_from_segmentation

from nnunet_filternet.labels import COMPARTMENTS


def keep_largest_component_per_label(segmentation: np.ndarray) -> np.ndarray:
    """Largest connected component of each compartment label (1-5) of a (z, y, x) label map; a new array."""
    for label in range(1, len(COMPARTMENTS) + 1):
        if np.any(segmentation == label):
            segmentation = remove_all_but_largest_component_from_segmentation(segmentation, label)
    return segmentation
