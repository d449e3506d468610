"""The quality check of predictions (nnunet_filternet/qc): signals, rules, the files it writes, the training statistics.

Small synthetic two-leg scans (tests/scan_fixtures.py) are converted as a training set; their leg label maps
serve as "predictions" (restored onto the scans), so a clean prediction is known to be right and each failure
is made on purpose.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.convert import convert_training
from nnunet_filternet.dataset_conversion.restore import restore_predictions
from nnunet_filternet.qc.agreement import fold_signals
from nnunet_filternet.qc.check import check_predictions
from nnunet_filternet.qc.measures import measure_leg
from nnunet_filternet.qc.reference import FILE_NAME, reference_for_model
from nnunet_filternet.qc.report import COLUMNS, summary
from nnunet_filternet.qc.rules import Thresholds, judge_scan
from nnunet_filternet.qc.signals import LegSignals, ScanSignals, anatomy_ok, noise_snr
from tests.scan_fixtures import ScanSpec, write_scans

SCANS = {
    "s1": ScanSpec(),
    "s2": ScanSpec(rotation_deg=8.0, seed=1),
    "s3": ScanSpec(shift_mm=(4.0, 3.0, 0.0), seed=2),
    "one": ScanSpec(legs=("R",), seed=3),
    "cut": ScanSpec(shift_mm=(35.0, 0.0, 0.0), seed=4),  # the left leg's lateral muscle runs out of the image
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The scans converted as a training set, and an (empty) model folder of that dataset."""
    root = tmp_path_factory.mktemp("qc")
    scans = write_scans(root / "scans", SCANS)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("nnUNet_raw", "nnUNet_preprocessed"):
            mp.setenv(name, str(root / name))
        dataset = convert_training(scans / "images", scans / "labels", 12, "QC", jobs=1)
    model = root / "nnUNet_results" / dataset.name / "T__P__3d_fullres"
    model.mkdir(parents=True)
    return root, scans, dataset, model


def _predict(trained, tmp_path: Path, edit=None) -> Path:
    """Leg "predictions" = the training labels (``edit(case, array)`` may change them), restored into tmp_path/out."""
    _, _, dataset, _ = trained
    pred = tmp_path / "pred"
    shutil.copytree(dataset / "labelsTr", pred)
    if edit is not None:
        for path in sorted(pred.glob("*.nii.gz")):
            image = sitk.ReadImage(str(path))
            array = sitk.GetArrayFromImage(image)
            changed = edit(path.name[: -len(".nii.gz")], array)
            if changed is not None:
                out = sitk.GetImageFromArray(changed.astype(np.uint8))
                out.CopyInformation(image)
                sitk.WriteImage(out, str(path))
    restore_predictions(pred, dataset / "legs.json", tmp_path / "out", jobs=1)
    return pred


def _check(trained, tmp_path: Path, pred: Path, **kwargs):
    _, scans, dataset, model = trained
    return check_predictions(
        dataset / "legs.json", pred, scans / "images", tmp_path / "out", tmp_path / "out" / "qc.csv",
        model_folder=model, jobs=1, **kwargs,
    )  # fmt: skip


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# ---- the whole check on converted scans ------------------------------------------------------------------


def test_right_predictions_are_not_flagged_but_a_one_leg_scan_and_a_cut_leg_are(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(trained[0] / "nnUNet_raw"))
    result = _check(trained, tmp_path, _predict(trained, tmp_path))
    rows = _rows(result.csv)
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 4 * 2 * 5 + 1 * 5  # scans x legs x compartments
    flagged = {v.subject: v.reasons for v in result.verdicts if v.review}
    assert sorted(flagged) == ["cut", "one"]
    assert flagged["one"][0].startswith("one leg found (taken as right")
    assert "left leg cut by the field of view (labels on the image edge in 100 % of its slices)" in flagged["cut"]
    assert not any("field of view" in r for r in flagged["one"])
    assert all(r["review"] == "no" for r in rows if r["subject"] not in flagged)
    assert all(float(r["scan_score"]) <= 1 for r in rows if r["subject"] not in flagged)
    assert result.summary.splitlines()[0] == "2 of 5 scans flagged for review:"
    assert sorted(p.name for p in result.figures) == ["cut_qc.png", "one_qc.png"]
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    snr = {r["subject"]: float(r["snr"]) for r in rows}
    assert 10 < snr["s1"] < 40  # muscle 420 over noise sigma 20 (ScanSpec: 2 % of fat 1000)


def test_a_missing_compartment_and_a_shrunken_one_are_flagged_and_ranked_first(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(trained[0] / "nnUNet_raw"))

    def edit(case, array):
        if case == "s1_L":
            return np.where(array == 4, 3, array)  # left Gas labelled as Sol
        if case == "s2_R":
            out = array.copy()
            ta = np.argwhere(array == 1)
            keep = ta[: len(ta) // 3]  # two thirds of TA lost to the background
            out[array == 1] = 0
            out[tuple(keep.T)] = 1
            return out
        return None

    result = _check(trained, tmp_path, _predict(trained, tmp_path, edit))
    verdicts = {v.subject: v for v in result.verdicts}
    assert "left Gas missing" in verdicts["s1"].reasons
    assert any(r.startswith("left Sol area") and "SD above training" in r for r in verdicts["s1"].reasons)
    assert any(r.startswith("right TA area") and "SD below training" in r for r in verdicts["s2"].reasons)
    assert verdicts["s1"].suspect == ("L", "Sol")  # Sol swallowed Gas: the largest deviation
    assert not verdicts["s3"].review
    ranked = [v.subject for v in sorted(result.verdicts, key=lambda v: -v.score)]
    assert ranked[:2] == ["s2", "s1"]  # the failed segmentations first; the one-leg scan is a data finding:
    assert verdicts["one"].data_score == 1.5 and verdicts["one"].score < verdicts["s1"].score
    rows = {(r["subject"], r["side"], r["compartment"]): r for r in _rows(result.csv)}
    assert rows[("s1", "L", "Gas")]["review"] == "yes" and float(rows[("s1", "L", "Gas")]["compartment_score"]) == 2
    assert rows[("s3", "L", "Gas")]["review"] == "no"
    lines = result.summary.splitlines()
    assert lines[0] == "4 of 5 scans flagged for review:" and lines[1].startswith("  s2 (score")
    assert lines[2].startswith("  s1 (score")


def test_folds_disagreement_and_lost_contrast_are_reasons(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(trained[0] / "nnUNet_raw"))
    pred = _predict(trained, tmp_path)
    folds = tmp_path / "folds"
    folds.mkdir()
    compartments = {n: {"fold_dice": 0.97, "entropy": 0.05, "voxels": 10} for n in ("TA", "TP", "Sol", "Gas", "PL")}
    compartments["Gas"] = {"fold_dice": 0.61, "entropy": 0.42, "voxels": 10}
    (folds / "s2_R.json").write_text(json.dumps({"case": "s2_R", "folds": 2, "compartments": compartments}))
    biomarkers = tmp_path / "biomarkers.csv"
    biomarkers.write_text(
        "subject,side,compartment,muscle_mode,fat_mode\ns3,L,TA,nan,nan\ns3,R,TA,400.0,1000.0\ns1,L,TA,900.0,1000.0\n"
    )
    result = _check(trained, tmp_path, pred, fold_folder=folds, biomarkers_csv=biomarkers)
    verdicts = {v.subject: v for v in result.verdicts}
    assert "folds disagree on right Gas (Dice 0.61)" in verdicts["s2"].reasons
    assert "right Gas uncertain (entropy 0.42)" in verdicts["s2"].reasons
    assert "left leg: no muscle/fat contrast found" in verdicts["s3"].reasons
    assert "left leg: muscle/fat contrast 0.10" in verdicts["s1"].reasons
    assert not any("contrast" in r for r in verdicts["s2"].reasons)  # no biomarker row: not judged
    rows = {(r["subject"], r["side"], r["compartment"]): r for r in _rows(result.csv)}
    assert float(rows[("s2", "R", "Gas")]["fold_dice"]) == 0.61 and rows[("s2", "R", "TA")]["review"] == "no"


# ---- the training statistics --------------------------------------------------------------------------


def test_the_reference_is_written_beside_the_model_and_used_without_the_training_labels(trained, tmp_path, monkeypatch):
    root, _, dataset, _ = trained
    monkeypatch.setenv("nnUNet_raw", str(root / "nnUNet_raw"))
    model = tmp_path / "results" / dataset.name / "T__P__3d_fullres"
    model.mkdir(parents=True)
    reference, note = reference_for_model(model)
    assert (model / FILE_NAME).is_file() and "written to" in note
    assert reference["legs"] == 9 and reference["subjects"] == 5 and reference["slices"] == {"min": 5, "max": 5}
    gas = reference["compartments"]["Gas"]
    assert gas["area_cm2"]["n"] == 9 and gas["log_lr"]["n"] == 4 and gas["missing"] == 0
    assert gas["area_cm2"]["sd"] >= 0.05 * gas["area_cm2"]["mean"] and gas["log_lr"]["sd"] >= 0.05

    again, note = reference_for_model(model)
    assert again == json.loads(json.dumps(reference)) and note.startswith("training statistics from")

    label = dataset / "labelsTr" / "s1_L.nii.gz"
    st = label.stat()
    os.utime(label, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched only: the same content, reused
    _, note = reference_for_model(model)
    assert note.startswith("training statistics from")
    image = sitk.ReadImage(str(label))
    array = sitk.GetArrayFromImage(image)
    array.flat[0] = 1 - min(array.flat[0], 1)  # the training labels changed
    edited = sitk.GetImageFromArray(array)
    edited.CopyInformation(image)
    sitk.WriteImage(edited, str(label), useCompression=True)
    _, note = reference_for_model(model)
    assert "written to" in note

    monkeypatch.delenv("nnUNet_raw")  # the labels are not at hand: the stored statistics serve
    stored, note = reference_for_model(model)
    assert stored["legs"] == 9 and note == f"training statistics from {model / FILE_NAME}"
    (model / FILE_NAME).unlink()
    missing, note = reference_for_model(model)
    assert missing is None and "not judged" in note


# ---- units ---------------------------------------------------------------------------------------------


def test_measure_leg_sizes_fragments_and_position():
    labels = np.zeros((4, 20, 10), np.uint8)
    labels[:, 2:6, 2:8] = 1  # TA anterior, 4 slices x 4 x 6 voxels
    labels[:, 12:16, 2:8] = 3  # Sol posterior
    labels[:2, 17:19, 2:4] = 4  # Gas in two pieces: 2 x 2 x 2 and 1 voxel far away
    labels[3, 18, 9] = 4
    m = measure_leg(labels, (7.0, 1.0, 1.0))
    assert m.image_slices == 4 and m.slices == 4 and m.length_cm == pytest.approx(2.8)
    ta = m.compartments["TA"]
    assert ta.voxels == 96 and ta.volume_ml == pytest.approx(96 * 7e-3) and ta.area_cm2 == pytest.approx(0.672 / 2.8)
    assert ta.share == pytest.approx(96 / (96 + 96 + 9)) and ta.components == 1 and ta.fragments == 0
    assert m.compartments["Gas"].components == 2 and m.compartments["Gas"].fragments == pytest.approx(1 / 9)
    assert ta.posterior_mm == pytest.approx(3.5) and m.compartments["Sol"].posterior_mm == pytest.approx(13.5)
    assert m.compartments["TP"].voxels == 0 and math.isnan(m.compartments["TP"].fragments)
    assert anatomy_ok(m) is True
    assert anatomy_ok(measure_leg(labels[:, ::-1], (7.0, 1.0, 1.0))) is False  # read upside down: TA behind Gas
    assert anatomy_ok(measure_leg(np.where(labels == 4, 0, labels), (7.0, 1.0, 1.0))) is None  # no Gas to compare


def test_fold_signals_dice_against_the_ensemble_and_entropy():
    ensemble = np.zeros((6, 1, 2, 2), np.float32)
    ensemble[4] = 10.0  # every voxel confidently Gas
    ensemble[4, 0, 0, 0], ensemble[:, 0, 0, 0] = 0.0, 0.0  # one voxel: all classes equal (entropy 1)
    ensemble[4, 0, 0, 0] = 1e-3
    agree = np.full((1, 2, 2), 4)
    disagree = agree.copy()
    disagree[0, 1, :] = 3  # half the Gas voxels called Sol
    out = fold_signals([agree, disagree], ensemble)
    assert out["Gas"]["fold_dice"] == pytest.approx((1.0 + 2 * 2 / (2 + 4)) / 2)
    assert out["Gas"]["voxels"] == 4
    assert out["Gas"]["entropy"] == pytest.approx(0.25, abs=0.01)  # 1 voxel of entropy ~1, 3 of ~0
    assert out["Sol"]["fold_dice"] == pytest.approx(0.5) and math.isnan(out["Sol"]["entropy"])  # 1.0 and 0.0
    assert math.isnan(fold_signals([agree], ensemble)["Gas"]["fold_dice"])  # one fold: nothing to compare


def test_noise_snr_reads_the_noise_of_the_air():
    rng = np.random.default_rng(0)
    sigma = 10.0
    air = np.hypot(rng.normal(0, sigma, (6, 80, 80)), rng.normal(0, sigma, (6, 80, 80)))
    scan = air.copy()
    scan[:, 30:50, 30:50] += 300.0
    labels = np.zeros(scan.shape, np.uint8)
    labels[:, 33:47, 33:47] = 1
    outside = np.ones(scan.shape, bool)
    outside[:, 20:60, 20:60] = False  # the leg's box
    assert noise_snr(scan, labels, outside) == pytest.approx(30.0, rel=0.05)
    ghost = scan.copy()
    ghost[:, 2:18, 10:70] += 60.0  # a motion ghost in the air
    assert noise_snr(ghost, labels, outside) < 20
    assert math.isnan(noise_snr(scan, labels, np.zeros(scan.shape, bool)))  # no air: not judged


def _scan(area_l: float, area_r: float) -> ScanSignals:
    legs = []
    for side, gas in (("R", area_r), ("L", area_l)):
        m = measure_leg(np.zeros((2, 4, 4), np.uint8), (1.0, 1.0, 1.0))
        compartments = dict(m.compartments)
        for name in compartments:
            compartments[name] = compartments[name].__class__(10, 1.0, gas if name == "Gas" else 2.0, 0.2, 1, 0.0, 1.0)
        legs.append(LegSignals(side, "two legs", m.__class__(2, 2, 1.0, compartments), contrast=0.6, anatomy_ok=True))
    return ScanSignals("sub-007", snr=20.0, bias_gain=1.5, slices=16, slice_axis_ok=True, legs=legs)


def test_rules_word_the_reasons_and_only_flag_past_the_thresholds():
    stats = {"mean": 2.0, "sd": 0.1, "n": 10}
    each = {"area_cm2": stats, "share": {"mean": 0.2, "sd": 0.02}, "log_lr": {"mean": 0.0, "sd": 0.05}, "missing": 0}
    reference = {"slices": {"min": 16}, "compartments": dict.fromkeys(("TA", "TP", "Sol", "Gas", "PL"), each)}
    clean = judge_scan(_scan(2.0, 2.05), reference)
    assert not clean.review and clean.score < 1
    bad = judge_scan(_scan(1.66, 2.0), reference)
    assert bad.review and bad.reasons[0] == "Gas left/right 0.83 (3.7 SD from training)"
    assert "left Gas area 3.4 SD below training" in bad.reasons and bad.suspect == ("L", "Gas")
    assert bad.score == 0 and bad.data_score < 1  # a left/right ratio alone is no sign of a failed segmentation
    assert judge_scan(_scan(1.66, 2.0), reference, Thresholds(z=4.0)).reasons == []
    few = _scan(2.0, 2.0)
    few.slices, few.snr, few.bias_gain, few.slice_axis_ok = 8, 3.1, 12.0, False
    few.legs[1].anatomy_ok = False
    reasons = judge_scan(few, reference).reasons
    assert "8 slices, fewer than any training scan (16)" in reasons and "SNR 3.1" in reasons
    assert not any("bias" in r for r in reasons)  # recorded, not judged (docs/qc.md)
    assert "left leg: TA behind Sol/Gas (orientation in the header?)" in reasons
    assert "slices not axial in the header (the thickest axis is not superior-inferior)" in reasons
    assert summary([clean, bad]).startswith(
        "1 of 2 scans flagged for review:\n  sub-007 (score 0.00, data 0.5): Gas left/right"
    )


def test_the_scan_score_is_the_mean_segmentation_severity_and_data_signals_score_apart():
    """scan_score: mean over the scan's rows of their largest share/fragments/folds/entropy severity; size and
    left/right deviations and the data signals (here SNR) stay out of it and go to data_score / the reasons."""
    reference = {"compartments": dict.fromkeys(("TA", "TP", "Sol", "Gas", "PL"), {
        "area_cm2": {"mean": 2.0, "sd": 0.1}, "share": {"mean": 0.2, "sd": 0.02}, "log_lr": {"mean": 0.0, "sd": 0.05},
    })}  # fmt: skip
    scan = _scan(2.0, 2.0)
    scan.snr = 2.5  # severity 2: data
    scan.legs[0].folds = {"compartments": {"Gas": {"entropy": 0.6, "fold_dice": 0.97}}}  # severity 2 (entropy)
    scan.legs[1].folds = {"compartments": {"TA": {"entropy": 0.03, "fold_dice": 0.4}}}  # severity 4 (folds)
    verdict = judge_scan(scan, reference)
    rows = {(r["side"], r["compartment"]): r for r in verdict.rows}
    assert rows[("R", "Gas")]["segmentation_score"] == pytest.approx(2.0)
    assert rows[("L", "TA")]["segmentation_score"] == pytest.approx(4.0)
    assert verdict.score == pytest.approx((2.0 + 4.0) / 10) and verdict.data_score == pytest.approx(2.0)
    assert all(r["scan_score"] == verdict.score and r["data_score"] == 2.0 for r in verdict.rows)
    shrunk = judge_scan(_scan(1.0, 2.0), reference)  # left Gas half the size: area and ratio, not segmentation
    assert shrunk.review and shrunk.score == pytest.approx(0.0)
    earlier = summary([verdict, shrunk]).splitlines()
    assert earlier[1].startswith("  sub-007 (score 0.60, data 2.0): folds disagree on left TA (Dice 0.40)")
