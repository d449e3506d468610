"""Every reuse of earlier work is keyed on what produced it (issue 22, class 1).

Per verb: an input edited in place with its modification time restored is computed again; an input replaced
WHILE the run used it is not recorded with the result (the identity is taken when the file is read, not after
the work); ``filternet predict`` run again into the same ``--out`` never returns an earlier model's or an
earlier scan's label maps.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion import scan_worker
from nnunet_filternet.dataset_conversion.convert import inference_conversion
from nnunet_filternet.metrics import evaluate as evaluate_module
from nnunet_filternet.metrics.evaluate import evaluate_folders, read_rows
from nnunet_filternet.quantify import biomarkers
from nnunet_filternet.quantify.biomarkers import quantify_folder
from tests.predict_fixture import fake_nnunet, labels_in, make_model, predict
from tests.scan_fixtures import ScanSpec, draw, write_scans
from tests.test_evaluate import leg, write_map
from tests.test_quantify import scan as two_leg_scan
from tests.test_quantify import write


def rewrite_keeping_mtime(path: Path, source: Path) -> None:
    """Overwrite ``path`` in place (same inode) with ``source``'s bytes and put its old times back."""
    st = path.stat()
    data = source.read_bytes()
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns


# ---- evaluate ------------------------------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path):
    """ref/s01_L.nii and pred/s01_L.nii (uncompressed: same size whatever the labels), and a blank map."""
    for name, array in (("ref", leg(1)), ("pred", leg(1)), ("blank", np.zeros_like(leg(1)))):
        (tmp_path / name).mkdir()
        write_map(tmp_path / name / "s01_L.nii", array)
    return tmp_path


def dice(csv_path) -> list[float]:
    return [r["dice"] for r in read_rows(csv_path)]


def test_evaluate_recomputes_an_in_place_edit_with_the_old_mtime(pair):
    out = pair / "metrics.csv"
    evaluate_folders(pair / "pred", pair / "ref", out, jobs=1)
    assert dice(out) == [1.0] * 5
    rewrite_keeping_mtime(pair / "pred" / "s01_L.nii", pair / "blank" / "s01_L.nii")
    evaluate_folders(pair / "pred", pair / "ref", out, jobs=1)
    assert dice(out) == [0.0] * 5


def test_evaluate_does_not_record_a_file_replaced_while_it_was_evaluated(pair, monkeypatch, capsys):
    out = pair / "metrics.csv"
    original = evaluate_module._evaluate_or_error

    def replaced_during_the_run(p, postprocess):
        rows = original(p, postprocess)  # read the old content ...
        shutil.copy(pair / "blank" / "s01_L.nii", p.pred)  # ... then the file is replaced
        return rows

    monkeypatch.setattr(evaluate_module, "_evaluate_or_error", replaced_during_the_run)
    evaluate_folders(pair / "pred", pair / "ref", out, jobs=1)
    assert dice(out) == [1.0] * 5  # computed from what was read
    assert "changed while it was being used" in capsys.readouterr().err
    monkeypatch.setattr(evaluate_module, "_evaluate_or_error", original)
    evaluate_folders(pair / "pred", pair / "ref", out, jobs=1)
    assert dice(out) == [0.0] * 5  # not reused: the file now holds other content


# ---- quantify ------------------------------------------------------------------------------------------------


def test_quantify_does_not_record_a_label_map_replaced_while_it_was_quantified(tmp_path, monkeypatch):
    labels, image, _ = two_leg_scan()
    write(image, tmp_path / "images" / "s01_0000.nii.gz")
    write(labels, tmp_path / "labels" / "s01.nii.gz")
    write(np.where(labels == 4, 0, labels), tmp_path / "other.nii.gz")  # Gas removed
    out = tmp_path / "biomarkers.csv"
    original = biomarkers._quantify_or_error

    def replaced_during_the_run(item):
        rows = original(item)
        shutil.copy(tmp_path / "other.nii.gz", tmp_path / "labels" / "s01.nii.gz")
        return rows

    monkeypatch.setattr(biomarkers, "_quantify_or_error", replaced_during_the_run)
    quantify_folder(tmp_path / "images", tmp_path / "labels", out, jobs=1)
    calls = []
    monkeypatch.setattr(biomarkers, "_quantify_or_error", lambda item: calls.append(item[0]) or original(item))
    quantify_folder(tmp_path / "images", tmp_path / "labels", out, jobs=1)
    assert calls == ["s01"]  # computed again from the new content
    text = out.read_text()
    gas = [line for line in text.splitlines() if ",Gas," in line]
    assert gas and all(line.split(",")[3] == "0" for line in gas)  # n_voxels of Gas: 0 in the new label map


def test_quantify_recomputes_an_in_place_edit_with_the_old_mtime(tmp_path, monkeypatch):
    labels, image, _ = two_leg_scan()
    write(image, tmp_path / "images" / "s01_0000.nii")
    write(image * 2.0, tmp_path / "brighter.nii")
    write(labels, tmp_path / "labels" / "s01.nii.gz")
    out = tmp_path / "biomarkers.csv"
    quantify_folder(tmp_path / "images", tmp_path / "labels", out, jobs=1)
    before = out.read_text()
    rewrite_keeping_mtime(tmp_path / "images" / "s01_0000.nii", tmp_path / "brighter.nii")
    calls = []
    original = biomarkers._quantify_or_error
    monkeypatch.setattr(biomarkers, "_quantify_or_error", lambda item: calls.append(item[0]) or original(item))
    quantify_folder(tmp_path / "images", tmp_path / "labels", out, jobs=1)
    assert calls == ["s01"] and out.read_text() != before


# ---- convert -------------------------------------------------------------------------------------------------


@pytest.fixture
def scans(tmp_path):
    """Two uncompressed scans (same file size whatever the noise) and a same-sized other version of scan a."""
    root = write_scans(tmp_path, {"a": ScanSpec(seed=1), "b": ScanSpec(seed=2)}, ext=".nii")
    sitk.WriteImage(sitk.Cast(draw(ScanSpec(seed=9, bias=0.0)).image, sitk.sitkInt16), str(tmp_path / "a_new.nii"))
    assert (tmp_path / "a_new.nii").stat().st_size == (root / "images" / "a.nii").stat().st_size
    return root


def leg_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*_0000.nii.gz"))}


def test_convert_converts_again_a_scan_edited_in_place_with_the_old_mtime(scans):
    out = scans / "legs"
    first = inference_conversion(scans / "images", out, jobs=1)
    before = leg_bytes(out)
    rewrite_keeping_mtime(scans / "images" / "a.nii", scans / "a_new.nii")
    again = inference_conversion(scans / "images", out, jobs=1)
    assert (first.skipped, again.skipped) == (0, 1)  # b reused, a converted again
    after = leg_bytes(out)
    assert after["a_L_0000.nii.gz"] != before["a_L_0000.nii.gz"]
    assert after["b_L_0000.nii.gz"] == before["b_L_0000.nii.gz"]


def test_convert_does_not_record_a_scan_replaced_while_it_was_converted(scans, monkeypatch):
    out = scans / "legs"
    from nnunet_filternet.dataset_conversion import legs_of_scan

    original = legs_of_scan.legs_of_scan

    def replaced_during_the_run(image, label, settings):
        result = original(image, label, settings)
        if not (scans / "replaced").exists():
            (scans / "replaced").touch()
            shutil.copy(scans / "a_new.nii", scans / "images" / "a.nii")
        return result

    monkeypatch.setattr(legs_of_scan, "legs_of_scan", replaced_during_the_run)
    inference_conversion(scans / "images", out, jobs=1)
    assert not (out / scan_worker.LEDGER / "a.json").exists()
    again = inference_conversion(scans / "images", out, jobs=1)
    assert again.skipped == 1  # only b; a is converted again from its new content


# ---- predict -------------------------------------------------------------------------------------------------


@pytest.fixture
def cohort(tmp_path, monkeypatch):
    """Two scans, a fake model predicting label 1, nnU-Net replaced by :func:`fake_nnunet`."""
    root = write_scans(tmp_path, {"a": ScanSpec(seed=1), "b": ScanSpec(seed=2)})
    make_model(tmp_path / "results", label=1)
    predicted = fake_nnunet(monkeypatch)
    return root, predicted


def test_predict_again_with_another_checkpoint_predicts_everything_again(cohort):
    root, predicted = cohort
    assert predict(root) == 0
    assert labels_in(root / "out" / "a.nii.gz") == {1}
    predicted.clear()
    assert predict(root) == 0
    assert predicted == []  # same model, same scans: every leg prediction reused
    make_model(root / "results", label=3)  # retrained: another checkpoint in the same place
    assert predict(root) == 0
    assert sorted(predicted) == ["a_L", "a_R", "b_L", "b_R"]
    assert labels_in(root / "out" / "a.nii.gz") == labels_in(root / "out" / "b.nii.gz") == {3}


def test_predict_again_after_a_scan_was_replaced_predicts_that_scan_again(cohort):
    root, predicted = cohort
    assert predict(root) == 0
    predicted.clear()
    same_grid = draw(ScanSpec(seed=7, bias=0.5))  # same matrix and legs: the same leg crops
    sitk.WriteImage(sitk.Cast(same_grid.image, sitk.sitkInt16), str(root / "images" / "a.nii.gz"))
    assert predict(root) == 0
    assert sorted(predicted) == ["a_L", "a_R"]


def test_predict_in_place_edit_with_the_old_mtime_is_predicted_again(cohort):
    root, predicted = cohort
    assert predict(root) == 0
    predicted.clear()
    other = root / "a_other.nii.gz"
    sitk.WriteImage(sitk.Cast(draw(ScanSpec(seed=8)).image, sitk.sitkInt16), str(other))
    rewrite_keeping_mtime(root / "images" / "a.nii.gz", other)
    assert predict(root) == 0
    assert sorted(predicted) == ["a_L", "a_R"]


def test_predict_with_another_model_of_the_same_trainer_and_plans_predicts_again(cohort):
    """Another --results folder (another dataset's model) with identical files but a changed checkpoint."""
    root, predicted = cohort
    assert predict(root) == 0
    predicted.clear()
    shutil.move(root / "results", root / "old_results")
    make_model(root / "results", label=2)
    assert predict(root) == 0
    assert len(predicted) == 4 and labels_in(root / "out" / "b.nii.gz") == {2}


def test_predict_does_not_reuse_predictions_when_the_model_changes_during_the_run(cohort, monkeypatch, capsys):
    root, predicted = cohort
    from nnunet_filternet.pipeline import leg_predictions

    run = leg_predictions.run_nnunet

    def retrained_meanwhile(predictor, legs_in, legs_pred, device):
        run(predictor, legs_in, legs_pred, device)
        make_model(root / "results", label=4)

    monkeypatch.setattr(leg_predictions, "run_nnunet", retrained_meanwhile)
    assert predict(root) == 2
    assert "the model changed while it was predicting" in capsys.readouterr().err
    assert not (root / "out" / "a.nii.gz").exists()
    monkeypatch.setattr(leg_predictions, "run_nnunet", run)
    predicted.clear()
    assert predict(root) == 0
    assert len(predicted) == 4 and labels_in(root / "out" / "a.nii.gz") == {4}
