"""Small synthetic two-leg T1 scans for the conversion and restore tests.

The scans are drawn analytically in patient space (SimpleITK's LPS: +x is the patient's LEFT, +y
posterior, +z superior), so any voxel grid (matrix, spacing, direction cosines, origin) and any pose
of the patient (rotation about the S-I axis, shift) is one :class:`ScanSpec` away, and the labels and
the leg each labelled voxel belongs to are known exactly.

Each leg is an elliptic cylinder: a 10 mm ring of bright subcutaneous fat around darker muscle cut
into the five compartments (1 TA anterior, 5 PL antero-lateral, 2 TP deep, 3 Sol posterior, 4 Gas
most posterior) and a dark bone. The right leg is the mirror image of the left one. A smooth
multiplicative bias field and magnitude (Rician-like) noise are added.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

#: Semi-axes (mm) of a leg's outer (skin) ellipse and of its muscle ellipse, lateral x antero-posterior.
OUTER_MM = (50.0, 44.0)
MUSCLE_MM = (40.0, 34.0)

#: Signal per tissue (arbitrary units, like a scanner's integers).
FAT, MUSCLE, BONE = 1000.0, 420.0, 80.0


@dataclass(frozen=True)
class ScanSpec:
    """A synthetic scan: voxel grid, patient pose and image degradations.

    Attributes:
        size: Matrix (x, y, z) in voxels.
        spacing: Voxel size (x, y, z) in mm.
        direction: Direction cosines, row-major 3 x 3 (SimpleITK order); identity by default.
        half_distance_mm: Distance of each leg's axis from the patient's mid-sagittal plane, mm.
        legs: Which legs are in the scan ("L" patient left at +x, "R" patient right).
        rotation_deg: Rotation of the patient about the S-I axis, degrees.
        shift_mm: Position of the patient relative to the centre of the field of view, mm (LPS).
        bias: Strength of the multiplicative bias field (0: none; 0.4: exp(+-0.4) across the legs).
        noise: Noise standard deviation as a fraction of the fat signal.
        seed: Seed of the noise.
    """

    size: tuple[int, int, int] = (72, 40, 5)
    spacing: tuple[float, float, float] = (3.5, 3.5, 8.0)
    direction: tuple[float, ...] = (1, 0, 0, 0, 1, 0, 0, 0, 1)
    half_distance_mm: float = 62.0
    legs: tuple[str, ...] = ("L", "R")
    rotation_deg: float = 0.0
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bias: float = 0.3
    noise: float = 0.02
    seed: int = 0
    extra: dict = field(default_factory=dict, compare=False)

    def replace(self, **changes) -> ScanSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass
class Scan:
    """A drawn scan: the image, its label map and which leg each voxel belongs to (0 none, 1 L, 2 R)."""

    image: sitk.Image
    label: sitk.Image
    leg: sitk.Image


def rotation_z(deg: float) -> np.ndarray:
    """3 x 3 rotation about the z axis by ``deg`` degrees."""
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])


def voxel_points(size, spacing, direction) -> tuple[np.ndarray, np.ndarray]:
    """Physical points (mm) of every voxel of a grid centred on the patient origin.

    Returns:
        ``(points, origin)``: points of shape (x, y, z, 3) in index order, and the grid's origin (3,).
    """
    size, spacing = np.asarray(size), np.asarray(spacing, float)
    d = np.asarray(direction, float).reshape(3, 3)
    origin = -d @ (spacing * (size - 1) / 2.0)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in size], indexing="ij"), axis=-1).astype(float)
    return origin + (idx * spacing) @ d.T, origin


def _leg_labels(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tissue and label of points in one leg's frame (u lateral, v posterior, mm from the leg's axis).

    Returns:
        ``(inside_leg, label)``: bool mask of the leg (skin ellipse) and labels 0..5 (uint8).
    """
    inside = (u / OUTER_MM[0]) ** 2 + (v / OUTER_MM[1]) ** 2 < 1.0
    muscle = (u / MUSCLE_MM[0]) ** 2 + (v / MUSCLE_MM[1]) ** 2 < 1.0
    label = np.zeros(u.shape, np.uint8)
    label[muscle & (v < -2) & (u > 12)] = 5  # PL
    label[muscle & (v < -2) & (u <= 12)] = 1  # TA
    label[muscle & (v >= -2) & (v <= 16)] = 3  # Sol
    label[muscle & (v > 16)] = 4  # Gas
    label[u**2 + (v - 2) ** 2 < 10.0**2] = 2  # TP (deep)
    label[u**2 + (v + 12) ** 2 < 7.0**2] = 0  # tibia
    return inside, label


def draw(spec: ScanSpec) -> Scan:
    """Draw ``spec`` (see the module docstring). Image is float32, label and leg maps uint8."""
    points, origin = voxel_points(spec.size, spec.spacing, spec.direction)
    patient = (points - np.asarray(spec.shift_mm)) @ rotation_z(spec.rotation_deg)  # inverse rotation
    x, y, z = patient[..., 0], patient[..., 1], patient[..., 2]
    taper = 1.0 + 0.1 * z / 100.0  # calves get thicker towards the knee
    image = np.zeros(x.shape, np.float64)
    label = np.zeros(x.shape, np.uint8)
    leg = np.zeros(x.shape, np.uint8)
    for side in spec.legs:
        sign = 1.0 if side == "L" else -1.0
        u = sign * (x - sign * spec.half_distance_mm) / taper  # lateral is away from the midline
        inside, lab = _leg_labels(u, y / taper)
        image[inside] = FAT
        image[inside & (lab > 0)] = MUSCLE * (1.0 + 0.04 * lab[inside & (lab > 0)])
        bone = inside & (u**2 + (y / taper + 12) ** 2 < 7.0**2)
        image[bone] = BONE
        label[inside] = lab[inside]
        leg[inside] = 1 if side == "L" else 2
    field_ = np.exp(spec.bias * (0.8 * x / 150.0 - 0.6 * y / 100.0 + 0.5 * (x / 150.0) * (y / 100.0) + 0.2 * z / 100))
    rng = np.random.default_rng(spec.seed)
    sigma = spec.noise * FAT
    noisy = np.hypot(image * field_ + rng.normal(0, sigma, x.shape), rng.normal(0, sigma, x.shape))
    return Scan(
        image=_to_image(noisy.astype(np.float32), spec, origin),
        label=_to_image(label, spec, origin),
        leg=_to_image(leg, spec, origin),
    )


def _to_image(arr_xyz: np.ndarray, spec: ScanSpec, origin: np.ndarray) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr_xyz.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spec.spacing])
    img.SetDirection([float(d) for d in spec.direction])
    img.SetOrigin([float(o) for o in origin])
    return img


def write_scans(root: Path, specs: dict[str, ScanSpec], ext: str = ".nii.gz", pixel=sitk.sitkInt16) -> Path:
    """Write ``root/images/<name><ext>`` and ``root/labels/<name><ext>`` for each spec; return ``root``."""
    for name, spec in specs.items():
        scan = draw(spec)
        for folder, img in (("images", sitk.Cast(scan.image, pixel)), ("labels", scan.label)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(img, str(root / folder / f"{name}{ext}"), useCompression=ext.endswith("gz"))
    return root


def write_subjects_csv(path: Path, groups: dict[str, str]) -> Path:
    """Write a phantom-style subjects.csv (subject, group, severity)."""
    lines = ["subject,group,severity"] + [f"{s},{g},{0.0 if g == 'healthy' else 0.5}" for s, g in groups.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_dicom_series(image: sitk.Image, folder: Path, offsets_mm=None) -> list[Path]:
    """Write ``image`` (int16) as a DICOM series, one file per slice; return the files in slice order.

    Args:
        image: The scan.
        folder: Created; one ``slice<k>.dcm`` per slice.
        offsets_mm: Position of each slice along the slice normal from the first, mm (default: the image's own,
            ``k * spacing[2]``); e.g. ``[0, 7, 14, 21, 31]`` writes gaps 7, 7, 7, 10 mm.
    """
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = image.GetDirection()
    series_uid = "1.2.826.0.1.3680043.2.1125.1.4242"
    files = []
    for k in range(image.GetDepth()):
        s = image[:, :, k]
        origin = image.TransformIndexToPhysicalPoint((0, 0, k))
        if offsets_mm is not None:
            first = np.asarray(image.TransformIndexToPhysicalPoint((0, 0, 0)))
            origin = tuple(first + float(offsets_mm[k]) * np.asarray(direction[2::3]))
        tags = {
            "0008|0060": "MR",
            "0020|000e": series_uid,
            "0020|000d": series_uid + ".0",
            "0020|0032": "\\".join(f"{p:.6f}" for p in origin),
            "0020|0037": "\\".join(f"{d:.6f}" for d in (*direction[0:7:3], *direction[1:8:3])),
            "0020|0013": str(k + 1),
            "0018|0050": f"{image.GetSpacing()[2]:.6f}",
            "0008|0018": f"{series_uid}.{k + 1}",
        }
        for key, value in tags.items():
            s.SetMetaData(key, value)
        path = folder / f"slice{k:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(s)
        files.append(path)
    return files
