"""Colour tables so that label maps open with compartment names and colours in 3D Slicer and ITK-SNAP.

- 3D Slicer colour table (``.ctbl``): ``#`` comment lines, then one line ``value name R G B A`` per label
  (0-255, names without spaces). Load it in Slicer's Colors module, or with the label map.
- ITK-SNAP label description file (``Segmentation > Import Label Descriptions``): one line
  ``IDX R G B A VIS MSH "LABEL"`` per label, A (opacity) in 0-1.
"""

from __future__ import annotations

import os
from pathlib import Path

from nnunet_filternet.labels import COLOURS, LABELS
from nnunet_filternet.utils.atomic import write_text

SLICER_FILE = "filternet_labels.ctbl"
ITKSNAP_FILE = "filternet_labels_itksnap.txt"


def slicer_colour_table() -> str:
    """Text of the 3D Slicer colour table (background transparent)."""
    lines = ["# Color table file for nnunet-filternet calf compartment labels", f"# {len(LABELS)} values"]
    for name, value in LABELS.items():
        r, g, b = COLOURS.get(value, (0, 0, 0))
        alpha = 0 if value == 0 else 255
        lines.append(f"{value} {name} {r} {g} {b} {alpha}")
    return "\n".join(lines) + "\n"


def itksnap_label_description() -> str:
    """Text of the ITK-SNAP label description file (background: ITK-SNAP's "Clear Label")."""
    lines = [
        "################################################",
        "# ITK-SnAP Label Description File",
        "# File format:",
        "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL",
        "################################################",
    ]
    for name, value in LABELS.items():
        r, g, b = COLOURS.get(value, (0, 0, 0))
        visible = 0 if value == 0 else 1
        label = "Clear Label" if value == 0 else name
        lines.append(f'{value:5d} {r:5d} {g:4d} {b:4d} {visible:8d} {visible:2d} {visible:2d}    "{label}"')
    return "\n".join(lines) + "\n"


def write_colour_tables(out_dir: str | os.PathLike) -> list[Path]:
    """Write both tables into ``out_dir`` (created); return their paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / SLICER_FILE, out_dir / ITKSNAP_FILE]
    write_text(paths[0], slicer_colour_table())
    write_text(paths[1], itksnap_label_description())
    return paths
