"""``filternet evaluate`` / evaluate_folders: case matching, per-subject averaging, bad input, resume."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.cli import main
from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.metrics.evaluate import CASE_COLUMNS, evaluate_folders, per_subject, read_rows
from nnunet_filternet.metrics.surface import compartment_metrics
from tests.conftest import reuse_counts, run_cli

SPACING_XYZ = (0.8, 0.8, 5.0)


def write_map(path, array, spacing_xyz=SPACING_XYZ):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    sitk.WriteImage(image, str(path))


def leg(seed: int, shift: int = 0) -> np.ndarray:
    """A (6, 20, 24) leg with the five compartments as boxes; ``shift`` moves TA and Gas along x."""
    rng = np.random.default_rng(seed)
    a = np.zeros((6, 20, 24), np.uint8)
    a[1:5, 2:8, 2 + shift : 9 + shift] = 1
    a[1:5, 2:8, 12:20] = 2
    a[1:5, 10:14, 3:21] = 3
    a[1:5, 15:19, 4 + shift : 20 + shift] = 4
    a[2:4, 8:10, 20:23] = 5
    a[rng.random(a.shape) < 0.02] = 0  # holes make each case different
    return a


@pytest.fixture
def folders(tmp_path):
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    for i, subject in enumerate(("s01", "s02")):
        for j, side in enumerate("LR"):
            write_map(ref_dir / f"{subject}_{side}.nii.gz", leg(10 * i + j))
            write_map(pred_dir / f"{subject}_{side}.nii.gz", leg(10 * i + j + 5, shift=i + j))
    (pred_dir / "summary.json").write_text("{}")  # nnU-Net's extra files are ignored
    return pred_dir, ref_dir


def test_rows_and_per_subject_mean_of_legs(folders, tmp_path):
    pred_dir, ref_dir = folders
    case_csv, subject_csv = evaluate_folders(pred_dir, ref_dir, tmp_path / "out" / "metrics.csv", jobs=1)
    assert subject_csv.name == "metrics_per_subject.csv"
    with open(case_csv) as f:
        assert tuple(next(csv.reader(f))) == CASE_COLUMNS
    rows = read_rows(case_csv)
    assert len(rows) == 4 * 5
    expected = {}
    for side in "LR":
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(pred_dir / f"s02_{side}.nii.gz")))
        ref_image = sitk.ReadImage(str(ref_dir / f"s02_{side}.nii.gz"))  # spacing as stored (float32 in NIfTI)
        ref = sitk.GetArrayFromImage(ref_image)
        rows = compartment_metrics(pred, ref, ref_image.GetSpacing()[::-1])
        expected[side] = {r["compartment"]: r for r in rows}
    subjects = {(r["subject"], r["compartment"]): r for r in read_rows(subject_csv)}
    for compartment in ("TA", "Gas"):
        got = subjects[("s02", compartment)]
        assert got["n_cases"] == 2
        for column in ("dice", "assd_mm", "asd_pred_to_ref_mm", "volume_ref_ml"):
            want = (expected["L"][compartment][column] + expected["R"][compartment][column]) / 2
            assert got[column] == pytest.approx(want, rel=1e-12)
    assert subjects[("s02", "TA")]["dice"] < 1.0  # shifted compartments are not perfect


def test_per_subject_nan_is_left_out_and_inf_kept():
    def row(case, dice, assd):
        return {"case": case, "subject": case[:-2], "compartment": "PL", "dice": dice, "assd_mm": assd,
                "hd95_mm": assd, "asd_pred_to_ref_mm": assd, "asd_ref_to_pred_mm": assd,
                "volume_ref_ml": 1.0, "volume_pred_ml": 2.0}  # fmt: skip

    rows = [row("a_L", 0.8, 2.0), row("a_R", math.nan, math.nan), row("b_L", 0.9, 1.0), row("b_R", 0.0, math.inf)]
    rows += [row("c_L", math.nan, math.nan), row("c_R", math.nan, math.nan)]
    out = {r["subject"]: r for r in per_subject(rows)}
    assert out["a"]["dice"] == 0.8 and out["a"]["assd_mm"] == 2.0
    assert out["b"]["dice"] == pytest.approx(0.45) and out["b"]["assd_mm"] == math.inf
    assert math.isnan(out["c"]["dice"]) and out["c"]["volume_pred_ml"] == 2.0


def test_missing_cases_on_either_side_are_listed(folders, tmp_path):
    pred_dir, ref_dir = folders
    os.remove(pred_dir / "s01_R.nii.gz")
    write_map(pred_dir / "s03_L.nii.gz", leg(3))
    with pytest.raises(FilterNetError) as e:
        evaluate_folders(pred_dir, ref_dir, tmp_path / "m.csv", jobs=1)
    assert "s01_R" in str(e.value) and "s03_L" in str(e.value)
    assert not (tmp_path / "m.csv").exists()


def test_shape_spacing_and_label_errors_list_every_case(folders, tmp_path):
    pred_dir, ref_dir = folders
    write_map(pred_dir / "s01_L.nii.gz", leg(0)[:, :, :20])
    write_map(pred_dir / "s01_R.nii.gz", leg(1), spacing_xyz=(0.8, 0.8, 6.0))
    bad = leg(2)
    bad[0, 0, 0] = 7
    write_map(pred_dir / "s02_L.nii.gz", bad)
    with pytest.raises(FilterNetError) as e:
        evaluate_folders(pred_dir, ref_dir, tmp_path / "m.csv", jobs=1)
    message = str(e.value)
    assert "3 case(s)" in message
    assert "s01_L.nii.gz" in message and "shape" in message
    assert "s01_R.nii.gz" in message and "spacing" in message
    assert "s02_L.nii.gz" in message and "value(s) 7" in message


def test_rerun_reuses_rows_of_unchanged_cases(folders, tmp_path, capsys):
    pred_dir, ref_dir = folders
    out = tmp_path / "m.csv"
    evaluate_folders(pred_dir, ref_dir, out, jobs=1)
    assert reuse_counts(capsys, "evaluate") == (0, 4)
    first = read_rows(out)
    evaluate_folders(pred_dir, ref_dir, out, jobs=1)
    assert reuse_counts(capsys, "evaluate") == (4, 0)
    assert read_rows(out) == first  # no NaN here: every leg has all five compartments
    write_map(pred_dir / "s02_R.nii.gz", leg(0))  # changed after the CSV: evaluated again
    evaluate_folders(pred_dir, ref_dir, out, jobs=1)
    assert reuse_counts(capsys, "evaluate") == (3, 1)
    changed = [(a, b) for a, b in zip(first, read_rows(out)) if a != b]
    assert changed and {b["case"] for _, b in changed} == {"s02_R"}  # only the rewritten case has new rows


def test_cli_writes_both_tables_and_reports_bad_input(folders, tmp_path):
    pred_dir, ref_dir = folders
    r = run_cli("evaluate", "--pred", pred_dir, "--labels", ref_dir, "--csv", tmp_path / "m.csv", "-j", "2")
    assert r.returncode == 0, r.stderr
    assert "| TA | 2 |" in r.stdout
    assert (tmp_path / "m_per_subject.csv").is_file()
    os.remove(ref_dir / "s02_L.nii.gz")
    r = run_cli("evaluate", "--pred", pred_dir, "--labels", ref_dir, "--csv", tmp_path / "m2.csv")
    assert r.returncode == 2
    assert r.stderr.startswith("filternet evaluate: error:") and "s02_L" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def _splits(path, folds):
    path.write_text(json.dumps([{"train": [], "val": val} for val in folds]))
    return path


def test_splits_give_every_row_its_fold_leg_cases_and_full_scans(folders, tmp_path, capsys):
    """A leg case and a restored full scan both take the fold whose val holds the subject's cases."""
    pred_dir, ref_dir = folders
    splits = _splits(tmp_path / "splits_final.json", [["s02_L", "s02_R", "x_L"], ["s01_L", "s01_R"]])
    out = tmp_path / "legs" / "m.csv"
    case_csv, subject_csv = evaluate_folders(pred_dir, ref_dir, out, jobs=1, splits=splits)
    with open(case_csv) as f:
        assert next(csv.reader(f))[:4] == ["case", "subject", "fold", "compartment"]
    assert {(r["case"], r["fold"]) for r in read_rows(case_csv)} == {
        ("s01_L", "1"),
        ("s01_R", "1"),
        ("s02_L", "0"),
        ("s02_R", "0"),
    }
    assert {(r["subject"], r["fold"]) for r in read_rows(subject_csv)} == {("s01", "1"), ("s02", "0")}
    # a rerun with the folds reuses every row (the CSV with its fold column is what the sidecar recorded)
    capsys.readouterr()
    evaluate_folders(pred_dir, ref_dir, out, jobs=1, splits=splits)
    assert reuse_counts(capsys, "evaluate") == (4, 0)
    # restored full scans: named by subject
    scans_pred, scans_ref = tmp_path / "scans_pred", tmp_path / "scans_ref"
    scans_pred.mkdir(), scans_ref.mkdir()
    for i, subject in enumerate(("s01", "s02")):
        write_map(scans_ref / f"{subject}.nii.gz", leg(i))
        write_map(scans_pred / f"{subject}.nii.gz", leg(i + 5))
    _, subject_csv = evaluate_folders(scans_pred, scans_ref, tmp_path / "scans.csv", jobs=1, splits=splits)
    assert {(r["subject"], r["fold"]) for r in read_rows(subject_csv)} == {("s01", "1"), ("s02", "0")}


def test_splits_that_do_not_give_one_fold_per_subject_exit_2(folders, tmp_path, capsys):
    pred_dir, ref_dir = folders
    not_grouped = _splits(tmp_path / "not_grouped.json", [["s01_L", "s02_L", "s02_R"], ["s01_R"]])
    partial = _splits(tmp_path / "partial.json", [["s01_L", "s01_R"]])
    twice = _splits(tmp_path / "twice.json", [["s01_L", "s01_R"], ["s01_L", "s02_L", "s02_R"]])
    not_json = tmp_path / "not_json.json"
    not_json.write_text("{folds")
    no_val = tmp_path / "no_val.json"
    no_val.write_text(json.dumps([{"train": ["a"]}]))
    cases = {
        not_grouped: "subject s01 has cases in the val of fold 0 and of fold 1; expected a subject-grouped split",
        partial: "no fold's val holds 2 evaluated case(s): s02_L, s02_R",
        twice: "case s01_L is in the val of fold 0 and of fold 1",
        not_json: "expected nnU-Net's splits_final.json",
        no_val: 'fold 0: expected a "val" list of case names',
        tmp_path / "missing.json": "expected nnU-Net's splits_final.json",
    }
    for splits, message in cases.items():
        out = tmp_path / "m.csv"
        code = main(["evaluate", "--pred", str(pred_dir), "--labels", str(ref_dir), "--csv", str(out), "--splits",
                     str(splits), "-j", "1"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"filternet evaluate: error: {splits}: ") and message in err, err
        assert err.count("\n") == 1 and not out.exists()
