"""One bad scan does not stop ``filternet predict`` (issue 22, class 3's last point).

The other scans are segmented; the failed one is named on stderr and in ``<out>/failed.csv`` (scan, step,
reason); the exit code is 1. A rerun never keeps an earlier result of a scan that fails now, and never touches
the user's own files in ``--out``. nnU-Net is replaced by :func:`tests.predict_fixture.fake_nnunet`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.pipeline import leg_predictions
from nnunet_filternet.quantify import biomarkers
from tests.predict_fixture import fake_nnunet, make_model, predict
from tests.scan_fixtures import ScanSpec, draw


def write_scan(path: Path, spec: ScanSpec, shrink_right_leg_mm: float | None = None) -> None:
    """A two-leg scan; with ``shrink_right_leg_mm`` the right leg keeps only a disc of that radius (a doubtful split:
    legs of very different size)."""
    scan = draw(spec)
    image = sitk.GetArrayFromImage(scan.image)
    if shrink_right_leg_mm is not None:
        leg = sitk.GetArrayFromImage(scan.leg)
        z, y, x = np.indices(image.shape)
        points = np.stack([x, y, z], -1).reshape(-1, 3).astype(float)
        mm = np.array([scan.image.TransformContinuousIndexToPhysicalPoint(p) for p in points]).reshape(*image.shape, 3)
        right = leg == 2
        centre = mm[right].mean(axis=0)
        far = np.hypot(mm[..., 0] - centre[0], mm[..., 1] - centre[1]) > shrink_right_leg_mm
        image[right & far] = 0.0
    out = sitk.GetImageFromArray(image)
    out.CopyInformation(scan.image)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.Cast(out, sitk.sitkInt16), str(path))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def failed_rows(out: Path) -> dict[str, tuple[str, str]]:
    with open(out / "failed.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {r["scan"]: (r["step"], r["reason"]) for r in rows}


def biomarker_subjects(out: Path) -> set[str]:
    with open(out / "biomarkers.csv", newline="", encoding="utf-8") as f:
        return {r["subject"] for r in csv.DictReader(f)}


@pytest.fixture
def cohort(tmp_path, monkeypatch):
    images = tmp_path / "images"
    for name, seed in (("a", 1), ("b", 2), ("c", 3)):
        write_scan(images / f"{name}.nii.gz", ScanSpec(seed=seed))
    make_model(tmp_path / "results", label=1)
    predicted = fake_nnunet(monkeypatch)
    return tmp_path, predicted


def test_scans_named_as_nnunet_names_its_inputs_are_predicted_under_their_subject(cohort, capsys):
    """``a_0000.nii.gz`` (nnU-Net's naming) is subject ``a``: its label map is ``a.nii.gz``, as for ``b.nii.gz``."""
    root, _ = cohort
    (root / "images" / "a.nii.gz").rename(root / "images" / "a_0000.nii.gz")
    assert predict(root) == 0, capsys.readouterr().err
    out = root / "out"
    assert all((out / f"{s}.nii.gz").is_file() for s in "abc") and not list(out.glob("*_0000*"))
    assert biomarker_subjects(out) == {"a", "b", "c"}


def test_one_doubtful_scan_does_not_stop_the_others(cohort, capsys):
    root, _ = cohort
    write_scan(root / "images" / "b.nii.gz", ScanSpec(seed=2), shrink_right_leg_mm=18.0)
    assert predict(root) == 1
    err = capsys.readouterr().err
    assert "1 scan(s) failed" in err and "  b: convert: " in err
    out = root / "out"
    assert (out / "a.nii.gz").is_file() and (out / "c.nii.gz").is_file() and not (out / "b.nii.gz").exists()
    rows = failed_rows(out)
    assert list(rows) == ["b"] and rows["b"][0] == "convert" and "b.nii.gz" in rows["b"][1]
    assert biomarker_subjects(out) == {"a", "c"}


def test_a_rerun_keeps_no_earlier_result_of_a_scan_that_fails_now(cohort, capsys):
    root, predicted = cohort
    out = root / "out"
    assert predict(root) == 0
    assert failed_rows(out) == {} and biomarker_subjects(out) == {"a", "b", "c"}
    (out / "my_notes.txt").write_text("the user's own file")
    truncate(root / "images" / "c.nii.gz")
    write_scan(root / "images" / "b.nii.gz", ScanSpec(seed=2), shrink_right_leg_mm=18.0)
    predicted.clear()
    assert predict(root) == 1
    assert predicted == []  # a's legs reused; b and c not converted
    assert not (out / "b.nii.gz").exists() and not (out / "c.nii.gz").exists()  # the earlier ones are gone
    assert sorted(failed_rows(out)) == ["b", "c"] and biomarker_subjects(out) == {"a"}
    (root / "images" / "a.nii.gz").unlink()
    (root / "images" / "b.nii.gz").unlink()
    assert predict(root) == 1  # every scan fails: nothing of an earlier run stays
    assert not (out / "a.nii.gz").exists() and not (out / "biomarkers.csv").exists()
    assert sorted(failed_rows(out)) == ["c"]
    assert (out / "my_notes.txt").read_text() == "the user's own file"
    capsys.readouterr()
    write_scan(root / "images" / "c.nii.gz", ScanSpec(seed=3))
    assert predict(root) == 0 and failed_rows(out) == {} and biomarker_subjects(out) == {"c"}


def test_a_scan_whose_legs_were_not_all_predicted_fails_alone(cohort, monkeypatch, capsys):
    root, _ = cohort
    run = leg_predictions.run_nnunet

    def misses_one_leg(predictor, legs_in, legs_pred, device):
        run(predictor, legs_in, legs_pred, device)
        (Path(legs_pred) / "b_R.nii.gz").unlink()

    monkeypatch.setattr(leg_predictions, "run_nnunet", misses_one_leg)
    assert predict(root) == 1
    assert failed_rows(root / "out")["b"][0] == "restore" and "b_R" in failed_rows(root / "out")["b"][1]
    assert sorted(p.name for p in (root / "out").glob("*.nii.gz")) == ["a.nii.gz", "c.nii.gz"]


def test_a_scan_that_cannot_be_quantified_keeps_its_label_map_and_is_listed(cohort, monkeypatch, capsys):
    root, _ = cohort
    original = biomarkers.quantify_subject

    def fails_for_c(subject, cases):
        if subject == "c":
            raise FilterNetError(f"{cases[0].labels}: no two legs found in the label map")
        return original(subject, cases)

    monkeypatch.setattr(biomarkers, "quantify_subject", fails_for_c)
    assert predict(root) == 1
    # the reason names the label map in --out, not the work folder's copy the biomarkers were computed from
    assert failed_rows(root / "out") == {"c": ("quantify", f"{root}/out/c.nii.gz: no two legs found in the label map")}
    assert (root / "out" / "c.nii.gz").is_file() and biomarker_subjects(root / "out") == {"a", "b"}
