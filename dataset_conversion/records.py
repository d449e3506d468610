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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dataset_conversion.orientation import PatientAxes
from dataset_conversion.unchanged import write_json_if_changed
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

    @property
    def axes(self) -> PatientAxes:
        """The source -> patient-aligned permutation and flips."""
        return PatientAxes(tuple(self.patient_axes), tuple(self.axis_flips))  # type: ignore[arg-type]

    def crop_slices(self) -> tuple[slice, slice, slice]:
        """Numpy slices of the crop box in a source array indexed (x, y, z)."""
        return tuple(slice(i, i + n) for i, n in zip(self.crop_index, self.crop_size))  # type: ignore[return-value]

    def as_dict(self) -> dict:
        return asdict(self)


REQUIRED = tuple(f.name for f in fields(LegRecord))


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
        records.append(LegRecord(**{k: item[k] for k in REQUIRED}))
    return records


def by_subject(records: list[LegRecord]) -> dict[str, list[LegRecord]]:
    """Records grouped by subject (subjects sorted, legs R before L)."""
    out: dict[str, list[LegRecord]] = {}
    for r in sorted(records, key=lambda r: (r.subject, r.side != "R")):
        out.setdefault(r.subject, []).append(r)
    return out
