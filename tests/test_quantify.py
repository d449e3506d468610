"""``filternet quantify``: volumes, sides, T1 and Dixon fat fractions on a scan with known fat, colour tables."""

from __future__ import annotations

import csv
import gzip
import math
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.special import ndtr, ndtri

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.labels import COLOURS, COMPARTMENTS, LABELS
from nnunet_filternet.quantify.biomarkers import quantify_folder
from nnunet_filternet.quantify.colour_table import itksnap_label_description, slicer_colour_table
from tests.conftest import reuse_counts, run_cli

SHAPE = (4, 40, 72)  # z, y, x
SPACING_XYZ = (1.5, 1.5, 4.0)
MUSCLE, FAT = 300.0, 1000.0
#: true fat fraction per compartment (TA..PL) of the right and the left leg
TRUE_FF = {"R": (0.0, 0.1, 0.4, 0.6, 0.05), "L": (0.2, 0.0, 0.3, 0.8, 0.0)}


def scan(seed: int = 0, noise: float = 20.0):
    """Full two-leg scan: labels, T1 image, true fat fraction map. Right leg in the low-x half.

    Infiltration is patchy and partial like in DM1: voxel fat fraction Phi(2 g + b), g ~ N(0, 1) per voxel, with
    b set so that its expected value is the compartment's TRUE_FF.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[1], : SHAPE[2]]
    labels2d = np.zeros(SHAPE[1:], np.uint8)
    ff2d = np.zeros(SHAPE[1:])
    body = np.zeros(SHAPE[1:], bool)
    for side, cx in (("R", 18), ("L", 54)):
        body |= ((yy - 20) / 17) ** 2 + ((xx - cx) / 16) ** 2 <= 1  # subcutaneous fat around the muscles
        for k, (dy, dx) in enumerate(((-7, -5), (-7, 5), (1, 0), (8, 0), (0, 9))):
            inside = ((yy - 20 - dy) / 4) ** 2 + ((xx - cx - dx) / 4) ** 2 <= 1
            labels2d[inside & (labels2d == 0)] = k + 1
            ff2d[inside] = TRUE_FF[side][k]
    ff2d[body & (labels2d == 0)] = 1.0
    labels = np.repeat(labels2d[None], SHAPE[0], 0)
    ff = np.repeat(ff2d[None], SHAPE[0], 0)
    partial = (labels > 0) & (ff > 0)
    offset = ndtri(ff[partial]) * np.sqrt(1 + 2.0**2)
    ff[partial] = ndtr(2.0 * rng.standard_normal(offset.shape) + offset)
    image = np.where(np.repeat(body[None], SHAPE[0], 0), (1 - ff) * MUSCLE + ff * FAT, 10.0)
    image = image + rng.normal(0, noise, SHAPE)
    return labels, image.astype(np.float32), ff


def write(array, path, spacing=SPACING_XYZ, flip_x=False):
    if flip_x:  # same patient, stored with the x axis reversed
        array = array[:, :, ::-1]
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(spacing)
    if flip_x:
        image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
        image.SetOrigin(((SHAPE[2] - 1) * spacing[0], 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def folders(tmp_path):
    labels, image, ff = scan()
    for name, flip in (("s01", False), ("s02", True)):
        write(labels, tmp_path / "labels" / f"{name}.nii.gz", flip_x=flip)
        write(image, tmp_path / "images" / f"{name}_0000.nii.gz", flip_x=flip)
        write((ff * 1000).astype(np.float32), tmp_path / "fat" / f"{name}.nii.gz", flip_x=flip)
        write(((1 - ff) * 1000).astype(np.float32), tmp_path / "water" / f"{name}.nii.gz", flip_x=flip)
    return tmp_path, labels


def test_full_scans_sides_volumes_and_fat_fractions(folders):
    root, labels = folders
    _, _, ff = scan()
    out = quantify_folder(root / "images", root / "labels", root / "out" / "bio.csv", fat_dir=root / "fat",
                          water_dir=root / "water", jobs=1)  # fmt: skip
    rows = read_csv(out)
    assert len(rows) == 2 * 2 * 5
    voxel_ml = np.prod(SPACING_XYZ) / 1000
    for row in rows:
        k = COMPARTMENTS.index(row["compartment"])
        half = slice(0, 36) if row["side"] == "R" else slice(36, 72)
        mask = labels[:, :, half] == k + 1
        true_ff = ff[:, :, half][mask].mean()
        assert int(row["n_voxels"]) == int(mask.sum())
        assert float(row["volume_ml"]) == pytest.approx(int(row["n_voxels"]) * voxel_ml)
        assert float(row["fat_fraction_dixon"]) == pytest.approx(true_ff, abs=1e-6)
        assert float(row["fat_fraction_t1"]) == pytest.approx(true_ff, abs=0.03), row
        expected_norm = (1 - true_ff) + true_ff * FAT / MUSCLE
        assert float(row["mean_t1_normalised"]) == pytest.approx(expected_norm, rel=0.05)
        assert float(row["muscle_mode"]) == pytest.approx(MUSCLE, rel=0.05)
        assert float(row["fat_mode"]) == pytest.approx(FAT, rel=0.05)
    # the x-flipped copy (direction -1 along x) gives the same sides and numbers
    s1 = {(r["side"], r["compartment"]): r for r in rows if r["subject"] == "s01"}
    s2 = {(r["side"], r["compartment"]): r for r in rows if r["subject"] == "s02"}
    for key in s1:
        assert s1[key]["n_voxels"] == s2[key]["n_voxels"]
        assert float(s1[key]["fat_fraction_t1"]) == pytest.approx(float(s2[key]["fat_fraction_t1"]), abs=1e-6)
    assert (root / "out" / "filternet_labels.ctbl").is_file()


def write_leg_records(folder, subject: str, half_width: int = 36) -> None:
    """``folder/legs.json`` for the two halves of :func:`scan` as leg images ``<subject>_R`` (x < 36) and ``_L``."""
    from nnunet_filternet.dataset_conversion.records import LegRecord, save_records

    size = [SHAPE[2], SHAPE[1], SHAPE[0]]
    geometry = {"size": size, "spacing": list(SPACING_XYZ), "origin": [0.0] * 3, "direction": list(np.eye(3).ravel())}
    records = []
    for side, x0 in (("R", 0), ("L", half_width)):
        crop = [half_width, size[1], size[2]]
        records.append(LegRecord(
            case=f"{subject}_{side}", subject=subject, side=side, side_from="two legs", source="scan.nii.gz",
            label_source=None, leg_image=f"imagesTr/{subject}_{side}_0000.nii.gz", leg_label=None,
            crop_index=[x0, 0, 0], crop_size=crop, patient_axes=[0, 1, 2], axis_flips=[False] * 3,
            mirrored=side == "R", leg_size=crop, geometry=geometry, correction={},
        ))  # fmt: skip
    save_records(folder / "legs.json", records)


def test_leg_images_take_side_and_subject_from_legs_json(tmp_path):
    """Leg images named ``<subject>_<side>`` whose subject itself ends in ``_L``: the record decides, not the name."""
    labels, image, ff = scan(seed=1)
    for side, half in (("R", slice(0, 36)), ("L", slice(36, 72))):
        write(labels[:, :, half], tmp_path / "labelsTr" / f"P07_L_{side}.nii.gz")
        write(image[:, :, half], tmp_path / "imagesTr" / f"P07_L_{side}_0000.nii.gz")
    write_leg_records(tmp_path, "P07_L")
    (tmp_path / "subjects.csv").write_text("subject,group\nP07_L,DM1\ns99,healthy\n")
    out = quantify_folder(tmp_path / "imagesTr", tmp_path / "labelsTr", tmp_path / "b.csv",
                          subjects_csv=tmp_path / "subjects.csv", jobs=1)  # fmt: skip
    rows = read_csv(out)
    assert {(r["subject"], r["side"], r["group"]) for r in rows} == {("P07_L", "L", "DM1"), ("P07_L", "R", "DM1")}
    for side, half in (("R", slice(0, 36)), ("L", slice(36, 72))):
        for value, name in enumerate(COMPARTMENTS, start=1):
            row = next(r for r in rows if r["side"] == side and r["compartment"] == name)
            assert int(row["n_voxels"]) == int((labels[:, :, half] == value).sum())
    assert not any(r["note"] for r in rows)
    gas_l = next(r for r in rows if r["side"] == "L" and r["compartment"] == "Gas")
    true_ff = ff[:, :, 36:][labels[:, :, 36:] == LABELS["Gas"]].mean()
    assert float(gas_l["fat_fraction_t1"]) == pytest.approx(true_ff, abs=0.03)
    assert "fat_fraction_dixon" not in rows[0]


def test_absent_compartment_has_zero_volume_and_nan(tmp_path):
    labels, image, _ = scan()
    labels[labels == 5] = 0
    write(labels, tmp_path / "labels" / "s01.nii.gz")
    write(image, tmp_path / "images" / "s01.nii.gz")
    rows = read_csv(quantify_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "b.csv", jobs=1))
    pl = [r for r in rows if r["compartment"] == "PL"]
    assert all(r["n_voxels"] == "0" and math.isnan(float(r["fat_fraction_t1"])) for r in pl)


def test_leg_without_contrast_keeps_volumes_and_says_why(tmp_path, capsys):
    """A poor segmentation (labels on uniform signal, no fat around) must not abort the whole CSV."""
    labels, image, _ = scan()
    noise = np.random.default_rng(0).normal(0, 5, image.shape)
    image[:] = np.where(labels > 0, 1000.0, 500.0) + noise  # surroundings darker than "muscle": no fat mode
    write(labels, tmp_path / "labels" / "s01.nii.gz")
    write(image, tmp_path / "images" / "s01.nii.gz")
    rows = read_csv(quantify_folder(tmp_path / "images", tmp_path / "labels", tmp_path / "b.csv", jobs=1))
    assert len(rows) == 10 and all(int(r["n_voxels"]) > 0 and float(r["volume_ml"]) > 0 for r in rows)
    assert all(math.isnan(float(r["fat_fraction_t1"])) and "cannot estimate" in r["note"] for r in rows)
    assert "quantify: warning: s01 L: cannot estimate" in capsys.readouterr().out


def test_bad_input_is_listed(folders, tmp_path):
    root, labels = folders
    (root / "images" / "s02_0000.nii.gz").unlink()
    write(labels, root / "images" / "s03.nii.gz")
    with pytest.raises(FilterNetError) as e:
        quantify_folder(root / "images", root / "labels", tmp_path / "b.csv", jobs=1)
    assert "s02" in str(e.value) and "s03" in str(e.value)
    with pytest.raises(FilterNetError, match="both --fat and --water"):
        quantify_folder(root / "images", root / "labels", tmp_path / "b.csv", fat_dir=root / "fat")
    (root / "images" / "s03.nii.gz").unlink()
    write(labels[:, :, :60], root / "images" / "s02.nii.gz")
    bad = labels.copy()
    bad[0, 0, 0] = 9
    write(bad, root / "labels" / "s01.nii.gz")
    with pytest.raises(FilterNetError) as e:
        quantify_folder(root / "images", root / "labels", tmp_path / "b.csv", jobs=1)
    message = str(e.value)
    assert "2 subject(s)" in message and "value(s) 9" in message
    assert "s02.nii.gz: image does not cover the same voxels as s02.nii.gz: size (60, 40, 4) against" in message
    (tmp_path / "subjects.csv").write_text("subject,group\ns01,DM1\n")
    with pytest.raises(FilterNetError, match="missing 1 subject.*s02"):
        quantify_folder(root / "images", root / "labels", tmp_path / "b.csv", subjects_csv=tmp_path / "subjects.csv")


def test_rerun_reuses_unchanged_subjects(folders, capsys):
    root, _ = folders
    out = root / "b.csv"
    quantify_folder(root / "images", root / "labels", out, jobs=1)
    first = out.read_text()
    assert reuse_counts(capsys, "quantify") == (0, 2)
    quantify_folder(root / "images", root / "labels", out, jobs=1)
    assert reuse_counts(capsys, "quantify") == (2, 0) and out.read_text() == first
    (root / "labels" / "s02.nii.gz").touch()  # the same content: still reused (the key is the content)
    quantify_folder(root / "images", root / "labels", out, jobs=1)
    assert reuse_counts(capsys, "quantify") == (2, 0) and out.read_text() == first
    shutil.copy(root / "labels" / "s02.nii.gz", root / "s02_copy.nii.gz")
    (root / "labels" / "s02.nii.gz").write_bytes((root / "s02_copy.nii.gz").read_bytes() + b"")  # rewritten alike
    quantify_folder(root / "images", root / "labels", out, jobs=1)
    assert reuse_counts(capsys, "quantify") == (2, 0) and out.read_text() == first
    raw = gzip.decompress((root / "s02_copy.nii.gz").read_bytes())
    (root / "labels" / "s02.nii.gz").write_bytes(gzip.compress(raw, compresslevel=1, mtime=1))  # other bytes
    assert (root / "labels" / "s02.nii.gz").read_bytes() != (root / "s02_copy.nii.gz").read_bytes()
    quantify_folder(root / "images", root / "labels", out, jobs=1)
    assert reuse_counts(capsys, "quantify") == (1, 1) and out.read_text() == first


def test_colour_tables_list_every_label():
    slicer = [line.split() for line in slicer_colour_table().splitlines() if not line.startswith("#")]
    assert [(int(v), n) for v, n, *_ in slicer] == [(v, n) for n, v in LABELS.items()]
    for value, _name, r, g, b, a in slicer:
        if int(value):
            assert (int(r), int(g), int(b)) == COLOURS[int(value)] and a == "255"
    snap = [line for line in itksnap_label_description().splitlines() if not line.startswith("#")]
    assert snap[1].split()[:4] == ["1", *map(str, COLOURS[1])] and snap[1].endswith('"TA"')
    assert len(snap) == len(LABELS)


def test_cli_colour_table_only_and_missing_arguments(tmp_path):
    r = run_cli("quantify", "--colour-table", tmp_path / "ct")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ct" / "filternet_labels.ctbl").is_file()
    assert (tmp_path / "ct" / "filternet_labels_itksnap.txt").is_file()
    r = run_cli("quantify", "--images", tmp_path)
    assert r.returncode == 2 and "expected --images, --labels and --csv" in r.stderr


def test_validation_against_true_fat_fraction_maps(folders):
    from nnunet_filternet.quantify.validation import fat_fraction_errors

    root, _ = folders
    _, _, ff = scan()
    for name in ("s01", "s02"):  # true maps as the phantom writes them (same geometry as the labels)
        (root / "truth").mkdir(exist_ok=True)
        write(ff.astype(np.float32), root / "truth" / f"{name}.nii.gz", flip_x=name == "s02")
    out = quantify_folder(root / "images", root / "labels", root / "b.csv", fat_dir=root / "fat",
                          water_dir=root / "water", jobs=1)  # fmt: skip
    errors = fat_fraction_errors(out, root / "labels", root / "truth")
    assert errors["fat_fraction_dixon"]["n"] == 20 and errors["fat_fraction_dixon"]["max_abs_error"] < 1e-6
    assert 0 < errors["fat_fraction_t1"]["max_abs_error"] < 0.03
    (root / "truth" / "s02.nii.gz").unlink()
    with pytest.raises(FilterNetError, match="s02"):
        fat_fraction_errors(out, root / "labels", root / "truth")


def test_muscle_mode_is_the_darkest_peak_even_when_fat_dominates():
    from nnunet_filternet.quantify.fat_fraction import TissueModes, density_peaks, t1_fat_fraction, tissue_modes

    rng = np.random.default_rng(0)
    muscle = np.concatenate([rng.normal(300, 15, 2000), rng.normal(650, 40, 6000), rng.uniform(300, 1000, 3000)])
    fat = np.concatenate([rng.normal(1000, 20, 5000), rng.normal(500, 30, 500)])
    positions, heights = density_peaks(muscle)
    assert positions[0] == pytest.approx(300, abs=10) and heights[0] < heights.max()
    modes = tissue_modes(muscle, fat)
    assert modes.muscle == pytest.approx(300, abs=10) and modes.fat == pytest.approx(1000, abs=10)
    assert t1_fat_fraction(650.0, TissueModes(300.0, 1000.0)) == pytest.approx(0.5)
    assert t1_fat_fraction(200.0, TissueModes(300.0, 1000.0)) == 0.0
    with pytest.raises(ValueError, match="not brighter"):
        tissue_modes(fat, muscle[:2000])


def test_validate_on_phantom_layout(tmp_path):
    """A cohort folder as the phantom writes it; a constant bias of 2 scales both modes, so FF is unchanged."""
    from nnunet_filternet.quantify.validation import validate_on_phantom

    labels, image, ff = scan()
    cohort = tmp_path / "cohort"
    write(labels, cohort / "labels" / "sub-000.nii.gz")
    write(image * 2, cohort / "images" / "sub-000.nii.gz")
    write(np.full(SHAPE, 2.0, np.float32), cohort / "bias" / "sub-000.nii.gz")
    write(ff.astype(np.float32), cohort / "fatfraction" / "sub-000.nii.gz")
    result = validate_on_phantom(cohort, tmp_path / "out", jobs=1)
    corrected = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "bias_removed" / "sub-000.nii.gz")))
    assert np.allclose(corrected, image, rtol=1e-5)
    for name in ("as_acquired", "bias_removed"):
        assert result[name]["n"] == 10 and result[name]["max_abs_error"] < 0.03
