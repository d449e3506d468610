"""``filternet convert`` on hostile inputs (issue 12): labels that do not fit the legs, strong bias, doubtful
splits, late checks and half-written datasets, folders that are not scans, unwritable outputs, messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.convert import convert_training, inference_conversion, training_conversion
from nnunet_filternet.errors import FilterNetError
from tests.conftest import run_cli
from tests.scan_fixtures import ScanSpec, draw, rotation_z, write_scans, write_subjects_csv

SMALL = ScanSpec(size=(48, 28, 4), spacing=(5.0, 5.0, 8.0))


def _seed(name: str) -> int:
    return sum(map(ord, name)) % 97


def _set_labels(root: Path, name: str, edit) -> None:
    """Rewrite ``root/labels/<name>.nii.gz`` through ``edit(label array (z, y, x), leg array) -> array``."""
    scan = draw(SMALL.replace(seed=_seed(name)))
    path = root / "labels" / f"{name}.nii.gz"
    label = sitk.ReadImage(str(path))
    out = sitk.GetImageFromArray(edit(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(scan.leg)))
    out.CopyInformation(label)
    sitk.WriteImage(out, str(path))


def _cohort(root: Path, names) -> Path:
    return write_scans(root, {n: SMALL.replace(seed=_seed(n)) for n in names})


def _convert(root: Path, *extra: str, dataset_id: int = 20, name: str = "Calf"):
    return run_cli("convert", "--images", root / "images", "--labels", root / "labels", "--dataset-id",
                   str(dataset_id), "--name", name, "--n-folds", "2", "-j", "1", *extra)  # fmt: skip


# ---- class 4: labels on one leg only, empty label maps -----------------------------------------------------


def test_a_leg_without_labels_is_an_error_naming_scan_and_side(tmp_path, nnunet_env):
    root = _cohort(tmp_path / "scans", ["a", "b", "oneleg"])
    _set_labels(root, "oneleg", lambda lab, leg: np.where(leg == 2, 0, lab))  # the right leg unlabelled
    r = _convert(root)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "oneleg.nii.gz" in r.stderr and "the R leg has no labelled compartment" in r.stderr
    assert not (nnunet_env["nnUNet_raw"] / "Dataset020_Calf").exists()

    r = _convert(root, "--allow-unlabelled-legs")
    assert r.returncode == 0, r.stderr
    assert "oneleg: the R leg has no labelled compartment; kept as oneleg_R" in r.stderr
    dataset = json.loads((nnunet_env["nnUNet_raw"] / "Dataset020_Calf" / "dataset.json").read_text())
    assert dataset["filternet_unlabelled_legs"] == ["oneleg_R"] and dataset["numTraining"] == 6


def test_an_empty_label_map_is_an_error_even_when_unlabelled_legs_are_allowed(tmp_path, nnunet_env):
    root = _cohort(tmp_path / "scans", ["a", "b", "empty"])
    _set_labels(root, "empty", lambda lab, leg: np.zeros_like(lab))
    r = _convert(root, "--allow-unlabelled-legs", "--keep-going")
    assert r.returncode == 1, r.stderr
    assert "empty.nii.gz: the label map is empty" in r.stderr
    records = json.loads((nnunet_env["nnUNet_raw"] / "Dataset020_Calf" / "legs.json").read_text())["cases"]
    assert sorted(r["subject"] for r in records) == ["a", "a", "b", "b"]


# ---- class 11: a stray label voxel, folders that are not scans, one name under two ids ------------------------


def test_a_stray_label_voxel_is_reported_not_a_grown_crop(tmp_path, nnunet_env):
    root = _cohort(tmp_path / "scans", ["a", "b", "stray"])

    def stray(lab, leg):
        lab = lab.copy()
        lab[0, 1, SMALL.size[0] // 2] = 3  # in the air between the legs, far from both
        assert leg[0, 1, SMALL.size[0] // 2] == 0
        return lab

    _set_labels(root, "stray", stray)
    r = _convert(root)
    assert r.returncode == 2
    assert "stray.nii.gz: 1 labelled voxel(s) lie outside the legs found in the image" in r.stderr
    assert f"at voxel index ({SMALL.size[0] // 2}, 1, 0)" in r.stderr


def test_sub_folders_without_a_dicom_series_are_named_and_skipped(tmp_path, nnunet_env):
    root = _cohort(tmp_path / "scans", ["a", "b"])
    (root / "images" / "nnUNet_raw" / "Dataset001_X").mkdir(parents=True)
    (root / "images" / "notes").mkdir()
    (root / "images" / "notes" / "readme.txt").write_text("not a scan")
    out = tmp_path / "legs"
    result = inference_conversion(root / "images", out, jobs=1)
    assert sorted({r.subject for r in result.records}) == ["a", "b"]
    assert any("skipped 2 sub-folder(s)" in n and "nnUNet_raw, notes" in n for n in result.notes)
    r = run_cli("convert", "--images", root / "images", "--out", tmp_path / "legs2", "-j", "1")
    assert r.returncode == 0 and "without a DICOM series: nnUNet_raw, notes" in r.stderr


def test_one_dataset_name_under_two_ids_is_refused(tmp_path, nnunet_env):
    (nnunet_env["nnUNet_raw"] / "Dataset004_Calf").mkdir()
    with pytest.raises(FilterNetError, match="dataset name 'Calf' is already used by Dataset004_Calf"):
        convert_training(tmp_path, tmp_path, 21, "Calf")
    (nnunet_env["nnUNet_preprocessed"] / "Dataset007_Legs").mkdir()
    with pytest.raises(FilterNetError, match="name 'Legs' is already used by Dataset007_Legs"):
        convert_training(tmp_path, tmp_path, 22, "Legs")


# ---- class 5: strong bias field, doubtful splits -------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from nnunet_filternet.phantom import make_cohort

    out = tmp_path_factory.mktemp("bias") / "cohort"
    return make_cohort(out, n_subjects=3, n_healthy=1, seed=7, shape=(192, 128, 6), spacing=(1.8, 1.8, 7.0), jobs=2)


def test_legs_are_found_under_a_20_fold_bias_field(phantom, tmp_path, nnunet_env):
    from nnunet_filternet.dataset_conversion.quality import gap_planes, physical_x, with_gain
    from nnunet_filternet.dataset_conversion.records import load_records

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for subject, (a, b) in zip(gap_planes(phantom), [(1.5, 0.5), (-1.5, 0.5), (1.5, -0.5)]):
        scan = sitk.ReadImage(str(phantom / "images" / f"{subject}.nii.gz"))
        sitk.WriteImage(with_gain(scan, a, b), str(images / f"{subject}.nii.gz"))
        (labels / f"{subject}.nii.gz").symlink_to(phantom / "labels" / f"{subject}.nii.gz")
    result = inference_conversion(images, tmp_path / "legs", jobs=2)
    planes = gap_planes(phantom)
    for record in load_records(tmp_path / "legs" / "legs.json"):
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(labels / f"{record.subject}.nii.gz"))).transpose(2, 1, 0)
        x = physical_x(sitk.ReadImage(str(images / f"{record.subject}.nii.gz")))
        own = (label > 0) & ((x > planes[record.subject]) if record.side == "L" else (x < planes[record.subject]))
        inside = np.zeros(label.shape, bool)
        inside[record.crop_slices()] = True
        assert inside[own].all(), f"{record.case}: crop misses part of its leg"
        assert not inside[(label > 0) & ~own].any(), f"{record.case}: crop holds the other leg"
    assert sorted(r.case for r in result.records) == sorted(f"{s}_{side}" for s in planes for side in "LR")
    assert not result.notes
    training = training_conversion(images, labels, 23, "Bias", folds=2, jobs=2)
    assert len(training.records) == 6 and not training.notes


def test_a_doubtful_split_is_reported_not_written(tmp_path):
    merged = draw(ScanSpec(size=(60, 28, 4), spacing=(5.0, 5.0, 8.0), half_distance_mm=40.0))  # legs overlap
    half = draw(SMALL.replace(seed=3))
    arr = sitk.GetArrayFromImage(half.image)
    arr[:, :, :13] = 0  # the outer 60 % of the right leg cut off the image
    cut = sitk.GetImageFromArray(arr)
    cut.CopyInformation(half.image)
    images = tmp_path / "images"
    images.mkdir()
    sitk.WriteImage(merged.image, str(images / "merged.nii.gz"))
    sitk.WriteImage(cut, str(images / "halfleg.nii.gz"))
    sitk.WriteImage(draw(SMALL).image, str(images / "good.nii.gz"))
    r = run_cli("convert", "--images", images, "--out", tmp_path / "legs", "--keep-going", "-j", "1")
    assert r.returncode == 1, r.stderr
    assert "merged.nii.gz: doubtful leg split" in r.stderr and "two legs taken for one" in r.stderr
    assert "halfleg.nii.gz: doubtful leg split" in r.stderr and "differ too much in size" in r.stderr
    assert sorted(p.name for p in (tmp_path / "legs").glob("*.nii.gz")) == ["good_L_0000.nii.gz", "good_R_0000.nii.gz"]


# ---- class 7: cheap checks first, nothing half-written --------------------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n-folds", "5"], "4 subject(s) with scan and label map cannot be split into 5 folds"),
        (["--n-folds", "1"], "expected an integer >= 2"),
        (["--seed", "-1"], "expected an integer >= 0"),
        (["--subjects-csv", "SUBJECTS"], "expected a row for every subject to convert, missing ['d']"),
        (["-j", "0"], "expected a positive number of worker processes"),
    ],
)
def test_bad_arguments_and_tables_are_refused_before_any_work(tmp_path, nnunet_env, extra, message):
    root = _cohort(tmp_path / "scans", ["a", "b", "c", "d"])
    csv = write_subjects_csv(tmp_path / "subjects.csv", {"a": "healthy", "b": "DM1", "c": "DM1"})
    r = _convert(root, *[str(csv) if e == "SUBJECTS" else e for e in extra])
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert not list(nnunet_env["nnUNet_raw"].iterdir()), "nothing may be written (not even a work folder)"
    assert not list(nnunet_env["nnUNet_preprocessed"].iterdir())


def test_a_failed_run_leaves_no_dataset_and_the_next_run_completes_it(tmp_path, nnunet_env):
    import nnunet_filternet.dataset_conversion.convert as convert_module
    from nnunet_filternet.dataset_conversion import scan_worker

    root = _cohort(tmp_path / "scans", ["a", "b", "c"])
    calls = []

    def dying(job):
        if calls:
            raise KeyboardInterrupt
        calls.append(job.subject)
        return scan_worker.convert_scan(job)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(convert_module, "convert_scan", dying)
        convert_training(root / "images", root / "labels", 24, "Half", folds=2, jobs=1)
    raw = nnunet_env["nnUNet_raw"]
    assert not (raw / "Dataset024_Half").exists()
    assert not (nnunet_env["nnUNet_preprocessed"] / "Dataset024_Half" / "splits_final.json").exists()
    assert not list(raw.glob("Dataset024*"))  # what nnU-Net's lookup by id lists: nothing
    result = training_conversion(root / "images", root / "labels", 24, "Half", folds=2, jobs=1)
    assert result.skipped == 1 and len(result.records) == 6  # the first scan was kept for the resume
    assert (raw / "Dataset024_Half" / "dataset.json").is_file()
    assert (nnunet_env["nnUNet_preprocessed"] / "Dataset024_Half" / "splits_final.json").is_file()
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]


def test_a_bad_scan_without_keep_going_leaves_the_previous_dataset_as_it_was(tmp_path, nnunet_env):
    root = _cohort(tmp_path / "scans", ["a", "b"])
    dataset = convert_training(root / "images", root / "labels", 25, "Keep", folds=2, jobs=1)
    before = {p.relative_to(dataset): p.read_bytes() for p in dataset.rglob("*") if p.is_file()}
    _set_labels(root, "b", lambda lab, leg: np.where(leg == 1, 0, lab))  # now a leg without labels
    with pytest.raises(FilterNetError, match=r"b\.nii\.gz: the L leg has no labelled compartment"):
        convert_training(root / "images", root / "labels", 25, "Keep", folds=2, jobs=1)
    after = {p.relative_to(dataset): p.read_bytes() for p in dataset.rglob("*") if p.is_file()}
    assert after == before


# ---- class 8 (convert): unwritable outputs -------------------------------------------------------------------


def test_unwritable_output_folders_are_refused_before_any_work(tmp_path, nnunet_env):
    root = _cohort(tmp_path / "scans", ["a", "b"])
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    r = run_cli("convert", "--images", root / "images", "--out", blocker / "legs")
    assert r.returncode == 2 and "a_file is a file, not a folder" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("convert", "--images", root / "images", "--labels", root / "labels", "--dataset-id", "26",
                "--name", "X", env={"nnUNet_raw": blocker / "raw"})  # fmt: skip
    assert r.returncode == 2 and "nnUNet_raw folder" in r.stderr and "Traceback" not in r.stderr
    assert blocker.read_text() == "in the way"


# ---- class 12: plain numbers in messages ---------------------------------------------------------------------


def test_an_oblique_45_degree_scan_is_refused_with_plain_numbers(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    sitk.WriteImage(draw(SMALL.replace(direction=tuple(rotation_z(45).ravel()))).image, str(images / "obl.nii.gz"))
    r = run_cli("convert", "--images", images, "--out", tmp_path / "legs", "-j", "1")
    assert r.returncode == 2 and "obl.nii.gz" in r.stderr and "do not define three patient axes" in r.stderr
    assert "np." not in r.stderr and "0.7071" in r.stderr
