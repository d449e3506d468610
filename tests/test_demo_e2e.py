"""The main job end to end on a very small cohort, then its model used from a fresh shell and another machine.

This is the integration test of every stage through nnU-Net's own entry points: phantom -> convert ->
fingerprint/plan/preprocess -> nnUNetv2_train (FilterNet and stock nnU-Net) -> nnUNetv2_predict ->
restore -> evaluate/report/quantify; a rerun skips every stage. Then, in fresh processes without
``nnUNet_extTrainer``: ``nnUNetv2_find_best_configuration`` on the demo's results, and the FilterNet model
exported with ``nnUNetv2_export_model_to_zip``, installed into another results folder with
``nnUNetv2_install_pretrained_model_from_zip`` and used by ``filternet predict`` on new scans (NIfTI and DICOM).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.labels import LABELS
from nnunet_filternet.pipeline.demo import DATASET_ID, Demo, run_demo
from nnunet_filternet.pipeline.nnunet_runs import command
from nnunet_filternet.pipeline.presets import DemoPreset
from nnunet_filternet.training.budget import Budget

pytestmark = pytest.mark.e2e  # whole nnU-Net runs in subprocesses: `make test-fast` skips them

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
        # the Dice in metrics.csv is the one of the restored scan against its label, compartment by compartment
        p, g = sitk.GetArrayFromImage(pred), sitk.GetArrayFromImage(ref)
        for row in rows:
            k = LABELS[row["compartment"]]
            both = (p == k).sum() + (g == k).sum()
            expected = 2 * ((p == k) & (g == k)).sum() / both if both else float("nan")
            assert float(row["dice"] or "nan") == pytest.approx(expected, abs=1e-6, nan_ok=True), row
        assert (workdir / "outputs" / trainer / "biomarkers.csv").is_file()
    # Table II: every trainer the demo trains logs its peak memory, stock nnU-Net's budget variant included
    table2 = list(csv.DictReader(open(workdir / "outputs" / "report" / "table2.csv", encoding="utf-8")))
    assert [r["trainer"] for r in table2] == [
        "nnUNetTrainerFilterNet_2epochs_3iters_1val",
        "nnUNetTrainer_2epochs_3iters_1val",
    ]
    assert all(float(r["peak memory (MiB)"]) > 0 and r["memory measured as"] == "process max RSS" for r in table2)


def test_demo_rerun_skips_every_stage(demo, capsys):
    workdir, _ = demo
    run_demo(workdir, TINY, jobs=2)
    out = capsys.readouterr().out
    assert out.count("done in an earlier run, skipped") == 7


def _fresh_env(**folders) -> dict:
    """This process' environment without nnUNet_extTrainer (the package's start-up hook adds ours), + folders."""
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}
    env.update({k: str(v) for k, v in folders.items()})
    return env


def _run(script: str, args: list, env: dict) -> subprocess.CompletedProcess:
    argv = [*command(script), *map(str, args)]
    r = subprocess.run(argv, capture_output=True, text=True, encoding="utf-8", errors="replace", env=env, timeout=600)
    assert r.returncode == 0, f"{script}: " + r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _as_dicom_series(image: sitk.Image, series: os.PathLike) -> None:
    img = sitk.Cast(sitk.RescaleIntensity(image, 0, 4000), sitk.sitkInt16)
    os.makedirs(series)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(img.GetDepth()):
        sl = img[:, :, k]
        sl.SetMetaData("0020|0032", "\\".join(map(str, img.TransformIndexToPhysicalPoint((0, 0, k)))))
        sl.SetMetaData("0020|0037", "1\\0\\0\\0\\1\\0")
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0018|0050", str(img.GetSpacing()[2]))
        sl.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1")
        writer.SetFileName(os.path.join(series, f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def test_find_best_configuration_in_a_fresh_shell(demo):
    workdir, _ = demo
    folders = {k: workdir / k for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    names = [Demo(workdir, TINY).trained_name(t) for t in TINY.trainers]
    args = [DATASET_ID, "-c", "3d_fullres", "-p", "nnUNetPlans_tiny", "-f", 0, "-tr", *names, "-np", 1]
    args.append("--disable_ensembling")
    r = _run("nnUNetv2_find_best_configuration", args, _fresh_env(**folders))
    assert re.search(r"-tr nnUNetTrainer(FilterNet)?_2epochs_3iters_1val ", r.stdout), r.stdout[-2000:]


def test_exported_model_predicts_new_scans_on_another_machine(demo, tmp_path):
    """Export -> install into another results folder -> `filternet predict` with no variable set by hand."""
    from nnunet_filternet.phantom import make_cohort

    workdir, _ = demo
    trainer = Demo(workdir, TINY).trained_name("nnUNetTrainerFilterNet")
    zip_file = tmp_path / "model.zip"
    export = ["-d", DATASET_ID, "-o", zip_file, "-c", "3d_fullres", "-tr", trainer, "-p", "nnUNetPlans_tiny", "-f", 0]
    _run("nnUNetv2_export_model_to_zip", export, _fresh_env(nnUNet_results=workdir / "nnUNet_results"))
    other = tmp_path / "other_machine_results"
    other.mkdir()
    _run("nnUNetv2_install_pretrained_model_from_zip", [zip_file], _fresh_env(nnUNet_results=other))

    new = make_cohort(tmp_path / "new", 2, 1, seed=1, shape=TINY.shape, spacing=TINY.spacing, jobs=1)  # unseen
    images = tmp_path / "images"
    images.mkdir()
    src = sorted((new / "images").glob("*.nii.gz"))[0]
    shutil.copy(src, images / src.name)
    _as_dicom_series(sitk.ReadImage(str(src)), images / "dicom_subject")  # the same scan as a DICOM series
    out = tmp_path / "out"
    argv = ["-m", "nnunet_filternet", "predict", "--images", images, "--out", out, "--trainer", trainer]
    argv += ["--results", other / "Dataset501_FilterNetPhantom", "--device", "cpu", "--disable-tta"]
    r = subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, encoding="utf-8",
                       errors="replace", env=_fresh_env(), timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    size = sitk.ReadImage(str(src)).GetSize()
    for name in (src.name, "dicom_subject.nii.gz"):
        seg = sitk.ReadImage(str(out / name))
        assert seg.GetSize() == size
    assert (out / "biomarkers.csv").is_file()
    with (out / "qc.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {row["subject"] for row in rows} == {src.name[: -len(".nii.gz")], "dicom_subject"}
    assert {row["review"] for row in rows} <= {"yes", "no"} and len(rows) == 2 * 2 * 5
    assert all(row["fold_dice"] == "nan" for row in rows)  # one fold: nothing to compare it with
    assert any(float(row["entropy"]) >= 0 for row in rows if row["entropy"] != "nan")
    assert "no training statistics" in r.stdout and re.search(r"\d of 2 scans flagged for review", r.stdout)


def test_more_repeats_train_only_the_new_one_and_compare_over_both(demo, capsys):
    """`--repeats 2` on a finished one-repeat folder: repeat 1 is kept, repeat 2 trains into its own folders."""
    from dataclasses import replace

    workdir, _ = demo
    before = {p: p.stat().st_mtime_ns for p in (workdir / "nnUNet_results").rglob("checkpoint_final.pth")}
    report = run_demo(workdir, replace(TINY, repeats=2), jobs=2)
    out = capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (workdir / "nnUNet_results").rglob("checkpoint_final.pth")} == before
    assert len(list((workdir / "nnUNet_results_r2").rglob("checkpoint_final.pth"))) == len(TINY.trainers)
    assert out.count("done in an earlier run, skipped") == 6  # phantom, convert, plan; train, predict, restore of r1
    logs = {p.name for p in (workdir / "logs").glob("*.log")}
    for trainer in TINY.trainers:  # repeat 2 logs beside repeat 1's, not over them
        name = Demo(workdir, TINY).trained_name(trainer)
        assert f"train_{name}_0.log" in logs and f"train_{name}_0_r2.log" in logs, sorted(logs)
        legs = sorted((workdir / "outputs" / "r2" / trainer / "legs").glob("*.nii.gz"))
        validation = Demo(workdir, TINY).model_dir(trainer, 2) / "fold_0" / "validation"  # nnU-Net's held-out output
        assert legs and all(os.path.samefile(p, validation / p.name) for p in legs)
    for trainer in TINY.trainers:
        assert (workdir / "outputs" / "r2" / trainer / "metrics.csv").is_file()
    rows = list(csv.DictReader(open(workdir / "outputs" / "compare" / "nnUNetTrainerFilterNet_vs_nnUNetTrainer.csv")))
    assert rows and all(r["n_repeats_reference"] == "2" and r["n_repeats_candidate"] == "2" for r in rows)
    assert "Training repeats: 2" in report.read_text(encoding="utf-8")
    run_demo(workdir, replace(TINY, repeats=2), jobs=2)
    assert capsys.readouterr().out.count("done in an earlier run, skipped") == 10

    # docs/study.md's tables come from such a folder
    argv = [sys.executable, "-m", "nnunet_filternet.pipeline.study", str(workdir), "--out", str(workdir / "study")]
    r = subprocess.run(argv, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "2 repeat(s)" in r.stdout and re.search(r"^\| 2 \| \d+\.\d{3} \|$", r.stdout, re.M)  # repeat 2's sigma
    assert re.search(r"^\| nnUNetTrainer \| 2 \| \d+\.\d \| \d+\.\d \|$", r.stdout, re.M)  # its fold run
    assert (workdir / "study" / "comparison.csv").is_file() and (workdir / "study" / "comparison.png").is_file()
