"""``filternet convert`` end to end: nnU-Net dataset, folds, integrity, resume, bad inputs, inference mode."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.convert import convert_training, training_conversion
from nnunet_filternet.dataset_conversion.scan_worker import LEDGER
from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.labels import EDGE_WEIGHTS_KEY, PAPER_EDGE_WEIGHTS
from tests.conftest import run_cli
from tests.scan_fixtures import ScanSpec, draw, write_dicom_series, write_scans, write_subjects_csv

SUBJECTS = {f"sub-{i:03d}": ScanSpec(seed=i, rotation_deg=4.0 * i - 12) for i in range(8)}
GROUPS = {s: ("healthy" if i % 2 else "DM1") for i, s in enumerate(SUBJECTS)}


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def voxels(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_training_conversion_makes_a_valid_nnunet_dataset_and_reruns_skip(tmp_path, nnunet_env):
    scans = write_scans(tmp_path / "cohort", SUBJECTS)
    write_subjects_csv(scans / "subjects.csv", GROUPS)
    before = checksums(scans)
    r = run_cli("convert", "--images", scans / "images", "--labels", scans / "labels", "--dataset-id", "5",
                "--name", "Calf", "-j", "2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "8 scan(s) -> 16 leg case(s)" in r.stdout
    dataset = nnunet_env["nnUNet_raw"] / "Dataset005_Calf"
    cases = sorted(f"{s}_{side}" for s in SUBJECTS for side in "LR")
    assert sorted(p.name for p in (dataset / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in cases]
    assert sorted(p.name for p in (dataset / "labelsTr").iterdir()) == [f"{c}.nii.gz" for c in cases]

    meta = json.loads((dataset / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1"} and meta["numTraining"] == 16 and meta["file_ending"] == ".nii.gz"
    assert meta["labels"] == {"background": 0, "TA": 1, "TP": 2, "Sol": 3, "Gas": 4, "PL": 5}
    assert meta[EDGE_WEIGHTS_KEY] == list(PAPER_EDGE_WEIGHTS)

    records = json.loads((dataset / "legs.json").read_text())["cases"]
    assert [r["case"] for r in records] == cases
    right = next(r for r in records if r["case"] == "sub-003_R")
    assert right["mirrored"] and right["side"] == "R" and right["source"].endswith("images/sub-003.nii.gz")
    assert right["geometry"]["size"] == list(SUBJECTS["sub-003"].size)
    assert right["geometry"]["pixel_type"] == "16-bit signed integer"
    assert right["correction"]["n4"]["shrink_factors"][2] == 1
    assert right["correction"]["zscore"]["std"] > 0

    splits = json.loads((nnunet_env["nnUNet_preprocessed"] / "Dataset005_Calf" / "splits_final.json").read_text())
    assert len(splits) == 4
    for fold in splits:
        val_subjects = sorted({c.rsplit("_", 1)[0] for c in fold["val"]})
        assert sorted(fold["val"]) == sorted(f"{s}_{side}" for s in val_subjects for side in "LR")
        assert sorted(GROUPS[s] for s in val_subjects) == ["DM1", "healthy"]  # 4 + 4 subjects over 4 folds
        assert sorted(fold["train"] + fold["val"]) == cases

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(dataset), 1)  # raises on any problem

    # A rerun skips every scan and leaves every file untouched.
    first = mtimes(dataset)
    stale = dataset / "imagesTr" / ".sub-000_L_0000.nii.gz.x1y2.tmp.nii.gz"  # left by an interrupted write
    stale.write_bytes(b"")
    again = training_conversion(scans / "images", scans / "labels", 5, "Calf", jobs=2)
    assert again.skipped == 8 and not again.failed
    assert not stale.exists()
    assert mtimes(dataset) == first

    # An interrupted run (one scan's outputs and ledger gone) resumes and reproduces the same files.
    old_image, old_label = (
        voxels(dataset / "imagesTr" / "sub-002_L_0000.nii.gz"),
        voxels(dataset / "labelsTr/sub-002_L.nii.gz"),
    )
    for rel in ("imagesTr/sub-002_L_0000.nii.gz", "labelsTr/sub-002_L.nii.gz", str(LEDGER / "sub-002.json")):
        (dataset / rel).unlink()
    again = training_conversion(scans / "images", scans / "labels", 5, "Calf", jobs=2)
    assert again.skipped == 7
    np.testing.assert_array_equal(voxels(dataset / "imagesTr" / "sub-002_L_0000.nii.gz"), old_image)
    np.testing.assert_array_equal(voxels(dataset / "labelsTr" / "sub-002_L.nii.gz"), old_label)
    assert json.loads((dataset / "legs.json").read_text())["cases"] == records
    assert checksums(scans) == before  # inputs never modified


def _bad_cohort(root: Path) -> Path:
    """Two good scans and one scan for each kind of bad input."""
    spec = ScanSpec(size=(48, 28, 4), spacing=(5.0, 5.0, 8.0))
    write_scans(root, {"good1": spec, "good2": spec.replace(seed=2), "nan": spec, "badlabel": spec, "geom": spec})
    scan = draw(spec)
    arr = sitk.GetArrayFromImage(scan.image)
    arr[2, 10, 10] = np.nan
    nan = sitk.GetImageFromArray(arr)
    nan.CopyInformation(scan.image)
    sitk.WriteImage(nan, str(root / "images" / "nan.nii.gz"))
    lab = sitk.GetArrayFromImage(scan.label)
    lab[0, 0, 0] = 7
    bad = sitk.GetImageFromArray(lab)
    bad.CopyInformation(scan.label)
    sitk.WriteImage(bad, str(root / "labels" / "badlabel.nii.gz"))
    moved = sitk.Image(scan.label)
    moved.SetSpacing((5.0, 5.0, 9.0))
    sitk.WriteImage(moved, str(root / "labels" / "geom.nii.gz"))
    sitk.WriteImage(sitk.Cast(scan.image, sitk.sitkInt16), str(root / "images" / "nolabel.nrrd"))
    files = write_dicom_series(scan.image, root / "images" / "dicom")
    files[1].unlink()
    sitk.WriteImage(scan.label, str(root / "labels" / "dicom.nii.gz"))
    return root


def test_bad_inputs_stop_the_run_or_are_listed_with_keep_going(tmp_path, nnunet_env):
    root = _bad_cohort(tmp_path / "scans")
    before = checksums(root)
    args = ["convert", "--images", root / "images", "--labels", root / "labels", "--dataset-id", "6", "--name", "Bad"]
    r = run_cli(*args)
    assert r.returncode == 2
    assert r.stderr.startswith("filternet convert: error:") and "nolabel.nrrd: no label map named nolabel" in r.stderr
    assert "Traceback" not in r.stderr

    r = run_cli(*args, "--keep-going", "--n-folds", "2", "-j", "2")
    assert r.returncode == 1, r.stderr
    assert "5 input(s) failed" in r.stderr and "Traceback" not in r.stderr
    expected = {
        "nan.nii.gz": "expected finite intensities, found 1 NaN",
        "badlabel.nii.gz": "expected label values [0, 1, 2, 3, 4, 5]",
        "geom.nii.gz": "label map does not cover the same voxels as geom.nii.gz: spacing (5, 5, 9) mm",
        "nolabel.nrrd": "no label map named nolabel",
        "dicom": "DICOM series has missing slices",
    }
    for name, problem in expected.items():
        line = next((x for x in r.stderr.splitlines() if problem in x), "")
        assert name in line, f"{name}: {problem!r} not reported:\n{r.stderr}"
    dataset = nnunet_env["nnUNet_raw"] / "Dataset006_Bad"
    assert json.loads((dataset / "dataset.json").read_text())["numTraining"] == 4
    assert sorted(p.name for p in (dataset / "labelsTr").iterdir()) == [
        "good1_L.nii.gz", "good1_R.nii.gz", "good2_L.nii.gz", "good2_R.nii.gz",
    ]  # fmt: skip
    assert checksums(root) == before


def test_a_bad_scan_found_while_converting_is_an_error_naming_it(tmp_path, nnunet_env):
    root = _bad_cohort(tmp_path / "scans")
    for name in ("badlabel", "geom", "dicom", "good2"):
        (root / "labels" / f"{name}.nii.gz").unlink()
    images = tmp_path / "two"
    images.mkdir()
    for name in ("good1.nii.gz", "nan.nii.gz"):
        (images / name).symlink_to(root / "images" / name)
    with pytest.raises(FilterNetError, match=r"nan\.nii\.gz: expected finite intensities"):
        convert_training(images, root / "labels", 7, "Nan", folds=2, jobs=1)


def test_misuse_is_reported_in_one_line(tmp_path, nnunet_env):
    r = run_cli("convert", "--images", tmp_path, "--labels", tmp_path)
    assert r.returncode == 2 and "training mode needs --dataset-id, --name" in r.stderr
    r = run_cli("convert", "--images", tmp_path, "--out", tmp_path / "o", "--name", "X")
    assert r.returncode == 2 and "--out (inference) cannot be combined with --name" in r.stderr
    (tmp_path / "Dataset008_Other").mkdir(parents=True)
    with pytest.raises(FilterNetError, match="--dataset-id 1000"):
        convert_training(tmp_path, tmp_path, 1000, "X")
    (nnunet_env["nnUNet_raw"] / "Dataset008_Other").mkdir()
    with pytest.raises(FilterNetError, match="dataset id 008 is already used by Dataset008_Other"):
        convert_training(tmp_path, tmp_path, 8, "Mine")


def test_inference_mode_writes_legs_for_nnunet_predict_and_restore_puts_them_back(tmp_path):
    specs = {"two": ScanSpec(seed=3), "left": ScanSpec(legs=("L",), seed=4), "right": ScanSpec(legs=("R",), seed=5)}
    scans = write_scans(tmp_path / "scans", specs)
    out = tmp_path / "legs"
    r = run_cli("convert", "--images", scans / "images", "--out", out, "-j", "2")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [
        "left_L_0000.nii.gz", "right_R_0000.nii.gz", "two_L_0000.nii.gz", "two_R_0000.nii.gz",
    ]  # fmt: skip
    assert "note: left: one leg in the field of view, taken as L (position vs image centre)" in r.stderr
    assert "note: right: one leg in the field of view, taken as R" in r.stderr
    records = json.loads((out / "legs.json").read_text())["cases"]
    assert all(r["label_source"] is None and r["leg_label"] is None for r in records)

    # A stand-in for nnU-Net's predictions: the bright fat of each leg image, as label 1.
    pred = tmp_path / "pred"
    pred.mkdir()
    for rec in records:
        leg = sitk.ReadImage(str(out / rec["leg_image"]))
        sitk.WriteImage(sitk.Cast(leg > 1.0, sitk.sitkUInt8), str(pred / f"{rec['case']}.nii.gz"))
    r = run_cli("restore", "--pred", pred, "--records", out / "legs.json", "--out", tmp_path / "maps")
    assert r.returncode == 0, r.stderr
    for name in specs:
        restored = sitk.ReadImage(str(tmp_path / "maps" / f"{name}.nii.gz"))
        source = sitk.ReadImage(str(scans / "images" / f"{name}.nii.gz"))
        assert (restored.GetSize(), restored.GetSpacing()) == (source.GetSize(), source.GetSpacing())
        assert (restored.GetOrigin(), restored.GetDirection()) == (source.GetOrigin(), source.GetDirection())
        fat = sitk.GetArrayFromImage(restored) == 1
        scan = sitk.GetArrayFromImage(source)
        assert fat.sum() > 100 and scan[fat].mean() > 2 * scan[~fat].mean()  # the bright voxels, back in place


def test_a_rerun_after_the_inputs_changed_drops_outdated_legs(tmp_path):
    from nnunet_filternet.dataset_conversion.convert import inference_conversion

    images = write_scans(tmp_path / "scans", {"a": ScanSpec(seed=1), "b": ScanSpec(seed=2)}) / "images"
    out = tmp_path / "legs"
    inference_conversion(images, out, jobs=1)
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [
        "a_L_0000.nii.gz",
        "a_R_0000.nii.gz",
        "b_L_0000.nii.gz",
        "b_R_0000.nii.gz",
    ]
    (images / "b.nii.gz").unlink()  # the user removes one scan and replaces the other by a one-leg scan
    sitk.WriteImage(draw(ScanSpec(legs=("L",), seed=3)).image, str(images / "a.nii.gz"))
    result = inference_conversion(images, out, jobs=1)
    assert result.skipped == 0 and [r.case for r in result.records] == ["a_L"]
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["a_L_0000.nii.gz"]
    assert [r["case"] for r in json.loads((out / "legs.json").read_text())["cases"]] == ["a_L"]
