"""Throughput of the stages around nnU-Net: scan conversion (scans per minute) and metrics (scans per second).

Both call the timing functions their owners wrote: ``nnunet_filternet.dataset_conversion.convert.time_conversion``
(read, N4 bias correction, leg split, write; SimpleITK may use every core) on a phantom scan written to a
temporary folder, and ``nnunet_filternet.metrics.benchmark.time_compartment_metrics`` (Dice and surface
distances of five compartments in two legs) on its synthetic scan pair. Neither touches the GPU.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ScanSize:
    """A scan matrix: ``shape_xyz`` voxels of ``spacing_xyz`` mm (SimpleITK order)."""

    shape_xyz: tuple[int, int, int]
    spacing_xyz: tuple[float, float, float]

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.shape_xyz[::-1]


#: The paper's scans (512 x 512 x 30 voxels of 0.7 x 0.7 x 7 mm) and the CPU demo's smaller ones.
PAPER_SCAN = ScanSize((512, 512, 30), (0.7, 0.7, 7.0))
QUICK_SCAN = ScanSize((256, 256, 16), (1.4, 1.4, 7.0))


def _phantom_scan(folder: Path, scan: ScanSize) -> Path:
    """Write one DM1 phantom subject's T1 image of size ``scan`` into ``folder``; return its path."""
    from nnunet_filternet.phantom import cohort_specs, generate_subject
    from nnunet_filternet.utils.atomic import write_image

    spec = cohort_specs(n_subjects=2, n_healthy=1)[-1]
    subject = generate_subject(spec, scan.shape_xyz, scan.spacing_xyz)
    path = folder / f"{spec.name}.nii.gz"
    write_image(subject.to_sitk()["image"], path)
    return path


def conversion_throughput(scan: ScanSize, repeats: int) -> dict:
    """Convert one phantom scan ``repeats`` times; scans per minute from the median time.

    Returns:
        ``{"scan_shape_xyz", "seconds", "n4_share", "scans_per_minute"}``.
    """
    from nnunet_filternet.dataset_conversion.convert import time_conversion

    with tempfile.TemporaryDirectory(prefix="filternet-bench-") as tmp:
        path = _phantom_scan(Path(tmp), scan)
        runs = [time_conversion(path) for _ in range(repeats)]
    seconds = [r["seconds_total"] for r in runs]
    return {
        "scan_shape_xyz": list(scan.shape_xyz),
        "seconds": seconds,
        "n4_share": statistics.median(r["n4_share"] for r in runs),
        "scans_per_minute": 60.0 / statistics.median(seconds),
    }


def metric_throughput(scan: ScanSize, repeats: int) -> dict:
    """Per-compartment metrics of one two-leg scan pair ``repeats`` times; scans per second from the median.

    Returns:
        ``{"scan_shape_zyx", "seconds", "scans_per_second"}``.
    """
    from nnunet_filternet.metrics.benchmark import time_compartment_metrics

    timing = time_compartment_metrics(repeats=repeats, shape_zyx=scan.shape_zyx)
    seconds = list(timing["seconds_all"])
    return {
        "scan_shape_zyx": list(scan.shape_zyx),
        "seconds": seconds,
        "scans_per_second": 1.0 / statistics.median(seconds),
    }
