"""``legs.json``: one record per leg case, enough to undo every step of the conversion.

File layout::

    {"schema": "filternet-legs/1", "cases": [record, ...]}

A record (all index quantities in the SOURCE scan's index order x, y, z)::

    case            nnU-Net case id "<subject>_<side>"
    subject         scan name (file name without extension)
    side            "L" or "R" (patient's left / right leg)
    side_from       "two legs" or "position vs image centre" (a scan with one leg)
    source          the scan file or DICOM folder
    label_source    the label map (training mode) or null
    leg_image       the leg image, relative to legs.json's folder
    leg_label       the leg label map (training mode), relative to legs.json's folder, or null
    crop_index      first voxel of the crop box in the source scan
    crop_size       voxels of the crop box
    patient_axes    source index axis that became the leg image's axis 0 (left), 1 (posterior), 2 (superior)
    axis_flips      whether that source axis runs to the right / anterior / inferior (so was flipped)
    mirrored        right legs: flipped left-right after alignment, to look like left legs
    leg_size        size of the leg image (x, y, z) = crop_size permuted by patient_axes
    geometry        source grid: size, spacing (mm), origin (mm), direction (row-major), pixel_type
    correction      {"n4": N4 settings and shrink factors, "zscore": {"mean", "std", "mask"}}
    labelled        training mode: whether the leg label map holds a compartment (optional; null in inference)

:func:`load_records` checks every record (types, ranges, and that the crop box fits the source grid), so a
hand-edited ``legs.json`` is refused with the record and field named instead of failing deep inside restore.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from nnunet_filternet.dataset_conversion.orientation import PatientAxes
from nnunet_filternet.dataset_conversion.unchanged import write_json_if_changed
from nnunet_filternet.errors import InputError

SCHEMA = "filternet-legs/1"


@dataclass
class LegRecord:
    """One leg case; see the module docstring for the fields."""

    case: str
    subject: str
    side: str
    side_from: str
    source: str
    label_source: str | None
    leg_image: str
    leg_label: str | None
    crop_index: list[int]
    crop_size: list[int]
    patient_axes: list[int]
    axis_flips: list[bool]
    mirrored: bool
    leg_size: list[int]
    geometry: dict
    correction: dict
    labelled: bool | None = None

    @classmethod
    def from_dict(cls, item: dict) -> LegRecord:
        """A record from its JSON form (unknown keys ignored, optional ones defaulted)."""
        return cls(**{k: item[k] for k in ALL_FIELDS if k in item})

    @property
    def axes(self) -> PatientAxes:
        """The source -> patient-aligned permutation and flips."""
        return PatientAxes(tuple(self.patient_axes), tuple(self.axis_flips))  # type: ignore[arg-type]

    def crop_slices(self) -> tuple[slice, slice, slice]:
        """Numpy slices of the crop box in a source array indexed (x, y, z)."""
        return tuple(slice(i, i + n) for i, n in zip(self.crop_index, self.crop_size))  # type: ignore[return-value]

    def as_dict(self) -> dict:
        return asdict(self)


ALL_FIELDS = tuple(f.name for f in fields(LegRecord))
REQUIRED = tuple(f.name for f in fields(LegRecord) if f.default is MISSING)


def save_records(path: Path, records: list[LegRecord]) -> None:
    """Write ``legs.json`` atomically (unless unchanged), records sorted by case id."""
    cases = [r.as_dict() for r in sorted(records, key=lambda r: r.case)]
    write_json_if_changed(path, {"schema": SCHEMA, "cases": cases})


def load_records(path: Path) -> list[LegRecord]:
    """Read ``legs.json`` (or a bare list of records).

    Raises:
        InputError: missing, not JSON, another schema, or records lacking fields.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "legs.json not found (written by `filternet convert` beside the leg images)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(path, f"expected JSON, found a syntax error at line {e.lineno}") from None
    except UnicodeDecodeError:
        raise InputError(path, "expected a UTF-8 JSON file, found other bytes") from None
    if isinstance(data, dict):
        if data.get("schema", SCHEMA) != SCHEMA:
            raise InputError(path, f"expected schema {SCHEMA!r}, found {data.get('schema')!r}")
        data = data.get("cases")
    if not isinstance(data, list):
        raise InputError(path, 'expected {"schema": ..., "cases": [...]} or a list of records')
    records = []
    for i, item in enumerate(data):
        missing = [k for k in REQUIRED if not isinstance(item, dict) or k not in item]
        if missing:
            raise InputError(path, f"record {i} lacks {missing}")
        problem = record_problem(item)
        if problem:
            raise InputError(path, f"record {i} ({item.get('case')!r}): {problem}")
        records.append(LegRecord.from_dict(item))
    return records


def _ints(value, n: int, low: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value)
    )


def _numbers(value, n: int, positive: bool = False) -> bool:
    ok = isinstance(value, list) and len(value) == n
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    return ok and (not positive or all(v > 0 for v in value))


#: How far a direction matrix may be from orthonormal (|D D^T - I|, largest entry): float32 headers and DICOM
#: orientation strings round at about 1e-6.
DIRECTION_TOLERANCE = 1e-3


def _rotation(direction: list) -> bool:
    """Whether nine numbers (row-major) are an orthonormal 3 x 3 matrix (a rotation, possibly with a flip)."""
    import numpy as np

    d = np.asarray(direction, dtype=float).reshape(3, 3)
    return bool(np.abs(d @ d.T - np.eye(3)).max() <= DIRECTION_TOLERANCE)


def record_problem(item: dict) -> str | None:
    """What is wrong with one ``legs.json`` record (types, ranges, crop box inside the source grid), or None."""
    for key in ("case", "subject", "source", "leg_image", "side_from"):
        if not isinstance(item[key], str) or not item[key]:
            return f"{key} {item[key]!r}: expected a non-empty string"
    for key in ("label_source", "leg_label"):
        if item[key] is not None and not isinstance(item[key], str):
            return f"{key} {item[key]!r}: expected a string or null"
    if item["side"] not in ("L", "R") or item["case"] != f"{item['subject']}_{item['side']}":
        return f"side {item['side']!r} / case {item['case']!r}: expected side L or R and case <subject>_<side>"
    if not isinstance(item["mirrored"], bool) or item["mirrored"] != (item["side"] == "R"):
        return f"mirrored {item['mirrored']!r}: expected {item['side'] == 'R'} for side {item['side']}"
    if not _ints(item["patient_axes"], 3, 0) or sorted(item["patient_axes"]) != [0, 1, 2]:
        return f"patient_axes {item['patient_axes']!r}: expected a permutation of [0, 1, 2]"
    flips = item["axis_flips"]
    if not (isinstance(flips, list) and len(flips) == 3 and all(isinstance(f, bool) for f in flips)):
        return f"axis_flips {flips!r}: expected three true/false values"
    geometry = item["geometry"]
    if not isinstance(geometry, dict):
        return f"geometry {geometry!r}: expected an object with size, spacing, origin, direction"
    checks = (
        ("size", _ints(geometry.get("size"), 3, 1), "three integers >= 1"),
        ("spacing", _numbers(geometry.get("spacing"), 3, positive=True), "three positive numbers (mm)"),
        ("origin", _numbers(geometry.get("origin"), 3), "three numbers (mm)"),
        ("direction", _numbers(geometry.get("direction"), 9), "nine numbers (row-major 3 x 3)"),
    )
    for key, ok, expected in checks:
        if not ok:
            return f"geometry.{key} {geometry.get(key)!r}: expected {expected}"
    if not _rotation(geometry["direction"]):
        return (
            f"geometry.direction {geometry['direction']!r}: expected the direction cosines of a scan (an orthonormal "
            "3 x 3 matrix, row-major); this one is singular or not orthonormal"
        )
    if not _ints(item["crop_index"], 3, 0):
        return f"crop_index {item['crop_index']!r}: expected three integers >= 0"
    if not _ints(item["crop_size"], 3, 1):
        return f"crop_size {item['crop_size']!r}: expected three integers >= 1"
    size = geometry["size"]
    if any(i + n > s for i, n, s in zip(item["crop_index"], item["crop_size"], size)):
        return (
            f"crop box {item['crop_index']} + {item['crop_size']} does not fit the source grid of size {size}; "
            "legs.json was edited or belongs to another scan"
        )
    expected_leg = [item["crop_size"][a] for a in item["patient_axes"]]
    if item["leg_size"] != expected_leg:
        return f"leg_size {item['leg_size']!r}: expected {expected_leg} (crop_size in patient axis order)"
    if item.get("labelled") is not None and not isinstance(item.get("labelled"), bool):
        return f"labelled {item.get('labelled')!r}: expected true, false or null"
    return None


def by_subject(records: list[LegRecord]) -> dict[str, list[LegRecord]]:
    """Records grouped by subject (subjects sorted, legs R before L)."""
    out: dict[str, list[LegRecord]] = {}
    for r in sorted(records, key=lambda r: (r.subject, r.side != "R")):
        out.setdefault(r.subject, []).append(r)
    return out
