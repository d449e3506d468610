"""The main job end to end on a very small cohort, then `filternet predict` on its model.

This is the integration test of every stage through nnU-Net's own entry points: phantom -> convert ->
fingerprint/plan/preprocess -> nnUNetv2_train (FilterNet and stock nnU-Net) -> nnUNetv2_predict ->
restore -> evaluate/report/quantify; a rerun skips every stage; predict works on NIfTI and DICOM.
"""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.pipeline.budget_trainers import Budget
from nnunet_filternet.pipeline.demo import run_demo
from nnunet_filternet.pipeline.presets import DemoPreset
from tests.conftest import run_cli

TINY = DemoPreset(
    name="test",
    subjects=4,
    healthy=1,
    shape=(128, 128, 12),
    spacing=(2.8, 2.8, 7.0),
    plans_preset="tiny",
    folds=(0,),
    budget=Budget(epochs=2, iterations=3, val_iterations=1),
    device="cpu",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    report = run_demo(workdir, TINY, jobs=2)
    return workdir, report


def test_demo_writes_report_predictions_metrics_and_biomarkers(demo):
    workdir, report = demo
    assert report.is_file() and "Table I" in report.read_text()
    for trainer in TINY.trainers:
        scans = sorted((workdir / "outputs" / trainer / "scans").glob("*.nii.gz"))
        assert len(scans) == 1  # fold 0 of 4 holds one of the 4 subjects
        pred = sitk.ReadImage(str(scans[0]))
        ref = sitk.ReadImage(str(workdir / "scans" / "labels" / scans[0].name))
        assert pred.GetSize() == ref.GetSize() and pred.GetSpacing() == ref.GetSpacing()
        assert set(np.unique(sitk.GetArrayViewFromImage(pred))) <= set(range(6))
        rows = list(csv.DictReader(open(workdir / "outputs" / trainer / "metrics.csv")))
        assert {r["compartment"] for r in rows} == {"TA", "TP", "Sol", "Gas", "PL"}
        assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows if r["dice"] not in ("", "nan"))
        assert (workdir / "outputs" / trainer / "biomarkers.csv").is_file()


def test_demo_rerun_skips_every_stage(demo, capsys):
    workdir, _ = demo
    run_demo(workdir, TINY, jobs=2)
    out = capsys.readouterr().out
    assert out.count("done in an earlier run, skipped") == 7


def test_predict_on_nifti_and_dicom(demo, tmp_path):
    workdir, _ = demo
    images = tmp_path / "images"
    images.mkdir()
    src = sorted((workdir / "scans" / "images").glob("*.nii.gz"))[0]
    shutil.copy(src, images / src.name)
    # the same scan as a DICOM series folder
    img = sitk.Cast(sitk.RescaleIntensity(sitk.ReadImage(str(src)), 0, 4000), sitk.sitkInt16)
    series = images / "dicom_subject"
    series.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetDepth()):
        sl = img[:, :, k]
        sl.SetMetaData("0020|0032", "\\".join(map(str, img.TransformIndexToPhysicalPoint((0, 0, k)))))
        sl.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0018|0050", str(img.GetSpacing()[2]))
        sl.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1")
        writer.SetFileName(str(series / f"slice{k:03d}.dcm"))
        writer.Execute(sl)
    model = workdir / "nnUNet_results" / "Dataset501_FilterNetPhantom"
    out = tmp_path / "out"
    r = run_cli(
        "predict", "--images", images, "--out", out, "--results", model, "--trainer",
        "nnUNetTrainerFilterNet_demo", "--device", "cpu", "--disable-tta",
        env={"nnUNet_extTrainer": workdir / "trainers"},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in (src.name, "dicom_subject.nii.gz"):
        seg = sitk.ReadImage(str(out / name))
        assert seg.GetSize() == img.GetSize()
    assert (out / "biomarkers.csv").is_file()


def test_predict_bad_results_folder_exits_2(tmp_path):
    r = run_cli("predict", "--images", tmp_path, "--out", tmp_path / "o", "--results", tmp_path / "nope")
    assert r.returncode == 2
    assert "nnU-Net results folder" in r.stderr
