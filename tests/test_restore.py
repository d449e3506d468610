"""``filternet restore``: converting ground-truth labels and restoring them gives back the label maps exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.convert import convert_training
from nnunet_filternet.dataset_conversion.readers import read_scan
from nnunet_filternet.dataset_conversion.restore import restoration, restore_predictions
from nnunet_filternet.errors import FilterNetError
from tests.conftest import run_cli
from tests.scan_fixtures import ScanSpec, draw, rotation_z, write_dicom_series, write_scans

TILTED = rotation_z(20) @ np.array([[1, 0, 0], [0, np.cos(0.2), -np.sin(0.2)], [0, np.sin(0.2), np.cos(0.2)]])

#: Scans whose labels must survive convert -> restore voxel for voxel.
VARIANTS = {
    "plain": ScanSpec(),
    "rotated-shifted": ScanSpec(rotation_deg=-15.0, shift_mm=(12.0, 6.0, 3.0), seed=1),
    "resampled-a": ScanSpec(size=(56, 36, 7), spacing=(4.3, 4.1, 6.5), seed=2),
    "resampled-b": ScanSpec(size=(100, 50, 4), spacing=(2.6, 2.6, 9.0), half_distance_mm=53.0, seed=3),
    "ras": ScanSpec(direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1), seed=4),
    "oblique": ScanSpec(size=(72, 44, 6), direction=tuple(TILTED.ravel()), seed=5),
    "permuted-det-1": ScanSpec(size=(40, 72, 5), direction=(0, 1, 0, -1, 0, 0, 0, 0, -1), seed=6),
    "one-leg": ScanSpec(legs=("R",), seed=7),
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The variants (and a DICOM copy of one) converted as a training dataset."""
    root = tmp_path_factory.mktemp("restore")
    scans = write_scans(root / "scans", VARIANTS)
    write_dicom_series(draw(VARIANTS["plain"].replace(seed=9)).image, scans / "images" / "dicom")
    dicom_grid = read_scan(scans / "images" / "dicom")
    label = draw(VARIANTS["plain"].replace(seed=9)).label
    label.CopyInformation(dicom_grid)
    sitk.WriteImage(label, str(scans / "labels" / "dicom.nii.gz"))
    with pytest.MonkeyPatch.context() as mp:
        for name in ("nnUNet_raw", "nnUNet_preprocessed"):
            mp.setenv(name, str(root / name))
        dataset = convert_training(scans / "images", scans / "labels", 11, "Restore", jobs=2)
    return scans, dataset


def test_convert_then_restore_gives_back_every_label_map_exactly(converted, tmp_path):
    scans, dataset = converted
    written = restore_predictions(dataset / "labelsTr", dataset / "legs.json", tmp_path, jobs=2)
    assert sorted(p.name for p in written) == sorted(f"{n}.nii.gz" for n in [*VARIANTS, "dicom"])
    for name in [*VARIANTS, "dicom"]:
        restored = sitk.ReadImage(str(tmp_path / f"{name}.nii.gz"))
        source = read_scan(scans / "images" / ("dicom" if name == "dicom" else f"{name}.nii.gz"))
        truth = sitk.ReadImage(str(scans / "labels" / f"{name}.nii.gz"))
        assert restored.GetPixelID() == sitk.sitkUInt8
        np.testing.assert_array_equal(sitk.GetArrayFromImage(restored), sitk.GetArrayFromImage(truth), err_msg=name)
        assert restored.GetSize() == source.GetSize(), name
        np.testing.assert_allclose(restored.GetSpacing(), source.GetSpacing(), rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(restored.GetOrigin(), source.GetOrigin(), rtol=0, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(restored.GetDirection(), source.GetDirection(), rtol=0, atol=1e-6, err_msg=name)
        assert np.any(sitk.GetArrayFromImage(truth) > 0)


def test_a_scan_missing_one_leg_is_an_error_unless_keep_going(converted, tmp_path):
    _, dataset = converted
    pred = tmp_path / "pred"
    shutil.copytree(dataset / "labelsTr", pred)
    (pred / "ras_L.nii.gz").unlink()
    for side in "LR":
        (pred / f"plain_{side}.nii.gz").unlink()  # no leg predicted: skipped (another fold's subject)
    with pytest.raises(FilterNetError, match=r"ras: missing .*pred/ras_L\.nii\.gz"):
        restore_predictions(pred, dataset / "legs.json", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    result = restoration(pred, dataset / "legs.json", tmp_path / "out", jobs=1, keep_going=True)
    assert result.incomplete == {"ras": [f"missing {pred / 'ras_L.nii.gz'}"]}
    assert result.not_predicted == ["plain"]
    assert sorted(p.stem.split(".")[0] for p in result.written) == sorted(
        n for n in [*VARIANTS, "dicom"] if n not in ("ras", "plain")
    )
    r = run_cli("restore", "--pred", pred, "--records", dataset / "legs.json", "--out", tmp_path / "cli")
    assert r.returncode == 2 and r.stderr.startswith("filternet restore: error:") and "ras_L.nii.gz" in r.stderr
    r = run_cli(
        "restore", "--pred", pred, "--records", dataset / "legs.json", "--out", tmp_path / "cli", "--keep-going"
    )
    assert r.returncode == 1 and "error: ras: missing" in r.stderr and "7 label map(s)" in r.stdout


def test_a_prediction_of_the_wrong_size_or_labels_is_an_error(converted, tmp_path):
    _, dataset = converted
    pred = tmp_path / "pred"
    pred.mkdir()
    for side in "LR":
        shutil.copy(dataset / "labelsTr" / f"plain_{side}.nii.gz", pred)
    full = sitk.ReadImage(str(pred / "plain_L.nii.gz"))
    sitk.WriteImage(full[:-1], str(pred / "plain_L.nii.gz"))
    x, y, z = full.GetSize()
    expected = rf"plain_L\.nii\.gz: expected a leg of size \({x}, {y}, {z}\).*found \({x - 1}, {y}, {z}\)"
    with pytest.raises(FilterNetError, match=expected):
        restore_predictions(pred, dataset / "legs.json", tmp_path / "out", jobs=1)
    bad = sitk.ReadImage(str(dataset / "labelsTr" / "plain_L.nii.gz")) * 2
    sitk.WriteImage(bad, str(pred / "plain_L.nii.gz"))
    with pytest.raises(FilterNetError, match=r"plain_L\.nii\.gz: expected label values .*found \[6, 8, 10\]"):
        restore_predictions(pred, dataset / "legs.json", tmp_path / "out", jobs=1)


def test_bad_records_file_is_an_error(tmp_path):
    (tmp_path / "legs.json").write_text("{not json")
    with pytest.raises(FilterNetError, match=r"legs\.json: expected JSON"):
        restore_predictions(tmp_path, tmp_path / "legs.json", tmp_path / "out")
    (tmp_path / "legs.json").write_text('{"schema": "filternet-legs/1", "cases": [{"case": "a_L"}]}')
    with pytest.raises(FilterNetError, match=r"record 0 lacks \['subject'"):
        restore_predictions(tmp_path, tmp_path / "legs.json", tmp_path / "out")
    with pytest.raises(FilterNetError, match="legs.json not found"):
        restore_predictions(tmp_path, Path(tmp_path / "nope.json"), tmp_path / "out")
