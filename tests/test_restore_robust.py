"""``filternet restore`` on hostile inputs (issue 12, classes 8 and 10): all or nothing, ambiguous predictions,
incomplete or hand-edited ``legs.json``, unwritable output, and which legs were restored."""

from __future__ import annotations

import json
import shutil

import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.convert import inference_conversion
from nnunet_filternet.dataset_conversion.restore import restoration
from nnunet_filternet.errors import FilterNetError
from tests.conftest import run_cli
from tests.scan_fixtures import ScanSpec, write_scans

SPEC = ScanSpec(size=(48, 28, 4), spacing=(5.0, 5.0, 8.0))


@pytest.fixture(scope="module")
def legs(tmp_path_factory):
    """Three scans (one with a single leg) converted for inference, and a stand-in prediction of every leg."""
    root = tmp_path_factory.mktemp("restore_robust")
    specs = {"a": SPEC, "b": SPEC.replace(seed=1), "c": SPEC.replace(seed=2, legs=("L",))}
    scans = write_scans(root / "scans", specs)
    inference_conversion(scans / "images", root / "legs", jobs=2)
    pred = root / "pred"
    pred.mkdir()
    for rec in json.loads((root / "legs" / "legs.json").read_text())["cases"]:
        leg = sitk.ReadImage(str(root / "legs" / rec["leg_image"]))
        sitk.WriteImage(sitk.Cast(leg > 1.0, sitk.sitkUInt8), str(pred / f"{rec['case']}.nii.gz"))
    return root


def _copy(legs, tmp_path):
    pred = tmp_path / "pred"
    shutil.copytree(legs / "pred", pred)
    records = tmp_path / "legs.json"
    shutil.copy(legs / "legs" / "legs.json", records)
    return pred, records


def test_a_bad_prediction_means_nothing_is_written(legs, tmp_path):
    pred, records = _copy(legs, tmp_path)
    bad = sitk.ReadImage(str(pred / "b_R.nii.gz")) * 9  # label values 0 and 9
    sitk.WriteImage(bad, str(pred / "b_R.nii.gz"))
    out = tmp_path / "out"
    r = run_cli("restore", "--pred", pred, "--records", records, "--out", out, "-j", "2")
    assert r.returncode == 2 and "b_R.nii.gz: expected label values" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() or not list(out.iterdir())
    r = run_cli("restore", "--pred", pred, "--records", records, "--out", out, "--keep-going")
    assert r.returncode == 1 and "error: b: " in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "c.nii.gz"]  # no staging folder left
    assert "a (R+L), c (L)" in r.stdout
    assert "note: c: one leg in the field of view, restored as L" in r.stderr


def test_a_case_predicted_under_two_file_names_is_refused(legs, tmp_path):
    pred, records = _copy(legs, tmp_path)
    sitk.WriteImage(sitk.ReadImage(str(pred / "a_L.nii.gz")), str(pred / "a_L.nii"))
    with pytest.raises(FilterNetError, match=r"two files for case 'a_L': a_L\.nii and a_L\.nii\.gz"):
        restoration(pred, records, tmp_path / "out", jobs=1)
    assert not (tmp_path / "out").exists()


def test_a_leg_removed_from_legs_json_is_refused(legs, tmp_path):
    pred, records = _copy(legs, tmp_path)
    data = json.loads(records.read_text())
    data["cases"] = [c for c in data["cases"] if c["case"] != "b_L"]
    records.write_text(json.dumps(data))
    with pytest.raises(FilterNetError, match=r"legs\.json: b: the scan has two legs .* only the R leg is listed"):
        restoration(pred, records, tmp_path / "out", jobs=1)
    result = restoration(pred, records, tmp_path / "out", jobs=1, keep_going=True)
    assert sorted(result.legs) == ["a", "c"] and "b" in result.incomplete


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("crop_index", [-3, 0, 0], "crop_index [-3, 0, 0]: expected three integers >= 0"),
        ("crop_index", [40, 0, 0], "does not fit the source grid"),
        ("crop_size", ["20", 28, 4], "crop_size ['20', 28, 4]: expected three integers >= 1"),
        ("geometry.size", [10, 10], "geometry.size [10, 10]: expected three integers >= 1"),
        ("geometry.spacing", [5.0, "x", 8.0], "geometry.spacing [5.0, 'x', 8.0]: expected three positive numbers"),
        ("leg_size", [1, 2, 3], "leg_size [1, 2, 3]: expected"),
        ("patient_axes", [0, 0, 2], "expected a permutation of [0, 1, 2]"),
        ("mirrored", "yes", "mirrored 'yes'"),
    ],
)
def test_a_hand_edited_legs_json_is_refused_naming_the_field(legs, tmp_path, field, value, message):
    pred, records = _copy(legs, tmp_path)
    data = json.loads(records.read_text())
    case = data["cases"][0]
    target, key = (case["geometry"], field.split(".")[1]) if "." in field else (case, field)
    target[key] = value
    records.write_text(json.dumps(data))
    r = run_cli("restore", "--pred", pred, "--records", records, "--out", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"record 0 ('{case['case']}'): " in r.stderr and message in r.stderr
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_folder_is_refused(legs, tmp_path):
    pred, records = _copy(legs, tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    r = run_cli("restore", "--pred", pred, "--records", records, "--out", blocker / "maps")
    assert r.returncode == 2 and "a_file is a file, not a folder" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("restore", "--pred", pred, "--records", records, "--out", blocker)
    assert r.returncode == 2 and "expected a folder, found a file" in r.stderr
    assert blocker.read_text() == "in the way"


@pytest.mark.parametrize("kind", ["source", "label_source"])
def test_an_output_folder_holding_the_scans_named_in_legs_json_is_refused(legs, tmp_path, kind):
    """The scans (and label maps) legs.json names are inputs too: restoring into their folder would replace them."""
    pred, records = _copy(legs, tmp_path)
    scans = tmp_path / "scans"
    shutil.copytree(legs / "scans" / "images", scans)
    data = json.loads(records.read_text())
    for case in data["cases"]:
        case[kind] = str(scans / f"{case['subject']}.nii.gz")
    records.write_text(json.dumps(data))
    before = {p.name: p.read_bytes() for p in scans.iterdir()}
    r = run_cli("restore", "--pred", pred, "--records", records, "--out", scans, "-j", "1")
    role = "scan" if kind == "source" else "label map"
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"({role} of " in r.stderr and "named in legs.json" in r.stderr and "a.nii.gz" in r.stderr
    assert {p.name: p.read_bytes() for p in scans.iterdir()} == before
