"""Every argument validated up front; every user-caused failure one line, exit 2 (issue 22, classes 5 and 6).

Numbers that are NaN, infinite, negative or zero where that makes no sense are refused by argparse through the
shared option types of ``nnunet_filternet.cli`` (exit 2 before any work); files whose structure is wrong are
refused with one line naming them; phantom geometry that cannot hold a leg is refused before rendering.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.cli import main
from nnunet_filternet.errors import FilterNetError, InputError
from tests.scan_fixtures import ScanSpec, write_scans


def argparse_refuses(capsys, argv: list, message: str) -> None:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def one_line_error(capsys, argv: list, *fragments: str) -> str:
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])
    return lines[0]


# ---- numbers: every verb, through the shared types ------------------------------------------------------------

BAD_NUMBERS = [
    (["plans", "1", "--preset", "filternet", "--gpu-memory-gb", v], "--gpu-memory-gb")
    for v in ("nan", "inf", "-inf", "-4", "0", "1e309", "2000", "x")
] + [
    (["predict", "--images", "i", "--out", "o", "--results", "r", "--folds", "-1"], "--folds"),
    (["predict", "--images", "i", "--out", "o", "--results", "r", "--folds", "nan"], "--folds"),
    (["predict", "--images", "i", "--out", "o", "--results", "r", "--threads", "0"], "--threads"),
    (["predict", "--images", "i", "--out", "o", "--results", "r", "--threads", "nan"], "--threads"),
    (["convert", "--images", "i", "--labels", "l", "--name", "n", "--dataset-id", "0"], "--dataset-id"),
    (["convert", "--images", "i", "--labels", "l", "--name", "n", "--dataset-id", "1000"], "--dataset-id"),
    (["convert", "--images", "i", "--labels", "l", "--name", "n", "--dataset-id", "-3"], "--dataset-id"),
    (["convert", "--images", "i", "--out", "o", "--n-folds", "1"], "--n-folds"),
    (["demo", "--folds", "4"], "--folds"),
    (["demo", "--folds", "-1"], "--folds"),
    (["demo", "--setup", "study", "--folds", "8"], "--folds"),
    (["phantom", "--out", "o", "--subslices", "4"], "--subslices"),
    (["phantom", "--out", "o", "--subslices", "0"], "--subslices"),
    (["phantom", "--out", "o", "--spacing", "nan", "1", "1"], "--spacing"),
    (["phantom", "--out", "o", "--spacing", "1", "inf", "1"], "--spacing"),
    (["gpu-check", "--timeout", "nan"], "--timeout"),
    (["gpu-check", "--timeout", "inf"], "--timeout"),
    (["gpu-check", "--timeout", "-1"], "--timeout"),
    (["compare", "--baseline", "a", "--candidate", "b", "--csv", "c", "--alpha", "nan"], "--alpha"),
    (["compare", "--baseline", "a", "--candidate", "b", "--csv", "c", "--alpha", "inf"], "--alpha"),
    (["bench", "--rounds", "0"], "--rounds"),
    (["bench", "--threads", "-2"], "--threads"),
    (["evaluate", "--pred", "p", "--labels", "r", "--csv", "o", "-j", "0"], "--jobs"),
]


@pytest.mark.parametrize("argv, flag", BAD_NUMBERS, ids=[" ".join(a[-3:]) for a, _ in BAD_NUMBERS])
def test_bad_numbers_are_refused_up_front(capsys, argv, flag):
    argparse_refuses(capsys, argv, flag)


def test_a_planner_target_too_small_for_any_patch_is_refused_not_looped_on():
    """nnU-Net's planner shrinks the patch until its estimate fits: for a target below the smallest patch's need
    it shrank the patch to nothing and looped for ever (``--gpu-memory-gb -4`` hung)."""
    from nnunet_filternet.plans.planner import FilterNetPlanner

    with pytest.raises(FilterNetError, match="too small for any patch"):
        FilterNetPlanner.static_estimate_VRAM_usage((0, 8, 8), 1, 6, "x", {}, ())


# ---- plans files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plans, fragment",
    [
        ({"configurations": []}, "'configurations'"),
        ({"configurations": {"3d_fullres": []}}, "configuration '3d_fullres'"),
        ([{"configurations": {}}], "a JSON object"),
        ({"plans_name": "x"}, "'configurations'"),
        ({"configurations": {"3d_fullres": {"spacing": [1, 1, 1]}}}, "missing"),
    ],
)
def test_plans_file_of_another_structure_is_one_line(nnunet_env, capsys, plans, fragment):
    folder = nnunet_env["nnUNet_preprocessed"] / "Dataset993_Bad"
    folder.mkdir()
    (nnunet_env["nnUNet_raw"] / "Dataset993_Bad").mkdir()
    (folder / "nnUNetPlans.json").write_text(json.dumps(plans))
    for preset in ("tiny", "paper", "filternet"):
        one_line_error(capsys, ["plans", "993", "--preset", preset], folder / "nnUNetPlans.json", fragment)


# ---- restore: legs.json with an impossible direction -----------------------------------------------------------


@pytest.fixture(scope="module")
def legs(tmp_path_factory):
    root = tmp_path_factory.mktemp("legs")
    write_scans(root, {"a": ScanSpec(seed=1)})
    assert main(["convert", "--images", str(root / "images"), "--out", str(root / "legs"), "-j", "1"]) == 0
    pred = root / "pred"
    pred.mkdir()
    for image in (root / "legs").glob("*_0000.nii.gz"):
        leg = sitk.ReadImage(str(image))
        sitk.WriteImage(sitk.Cast(leg * 0, sitk.sitkUInt8), str(pred / image.name.replace("_0000", "")))
    return root


@pytest.mark.parametrize(
    "direction",
    [[0.0] * 9, [1, 0, 0, 1, 0, 0, 0, 0, 1], [2, 0, 0, 0, 2, 0, 0, 0, 2], [1, 0, 0, 0, 1, 0, 0, 0, 0]],
    ids=["zeros", "two equal rows", "scaled", "rank 2"],
)
def test_restore_refuses_a_legs_json_whose_direction_is_not_a_rotation(legs, tmp_path, capsys, direction):
    records = json.loads((legs / "legs" / "legs.json").read_text())
    for case in records["cases"]:
        case["geometry"]["direction"] = direction
    edited = tmp_path / "legs.json"
    edited.write_text(json.dumps(records))
    args = ["restore", "--pred", legs / "pred", "--records", edited, "--out", tmp_path / "out", "-j", "1"]
    one_line_error(capsys, args, edited, "direction")
    assert not (tmp_path / "out" / "a.nii.gz").exists()


def test_restore_accepts_legs_json_as_convert_wrote_it(legs, tmp_path):
    args = ["restore", "--pred", legs / "pred", "--records", legs / "legs" / "legs.json", "--out", tmp_path / "o"]
    assert main([str(a) for a in args]) == 0 and (tmp_path / "o" / "a.nii.gz").is_file()


# ---- predict with a checkpoint of another network ----------------------------------------------------------------


def _model_with_foreign_weights(results: Path, folds=(0, 1), foreign_fold: int = 0) -> Path:
    """A model folder whose plans build nnU-Net's U-Net, with the weights of a narrower U-Net in one fold."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from nnunet_filternet.bench.plans import DEFAULT_DATASET_JSON, SIZES, builtin_plans

    plans = builtin_plans(SIZES["quick"])
    model = results / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    model.mkdir(parents=True)
    (model / "plans.json").write_text(json.dumps(plans))
    (model / "dataset.json").write_text(json.dumps(DEFAULT_DATASET_JSON))
    for fold in folds:
        arch = copy.deepcopy(plans["configurations"]["3d_fullres"]["architecture"])
        if fold == foreign_fold:
            arch["arch_kwargs"]["features_per_stage"] = [f // 2 for f in arch["arch_kwargs"]["features_per_stage"]]
        net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                     1, len(DEFAULT_DATASET_JSON["labels"]), deep_supervision=False)  # fmt: skip
        (model / f"fold_{fold}").mkdir()
        torch.save({"trainer_name": "nnUNetTrainer", "init_args": {"configuration": "3d_fullres"},
                    "network_weights": net.state_dict()}, model / f"fold_{fold}" / "checkpoint_final.pth")  # fmt: skip
    return model


@pytest.mark.parametrize("foreign_fold", [0, 1])
def test_predict_with_a_checkpoint_of_another_network_is_one_line(tmp_path, capsys, foreign_fold):
    model = _model_with_foreign_weights(tmp_path / "results", foreign_fold=foreign_fold)
    write_scans(tmp_path, {"a": ScanSpec(seed=1)})
    args = ["predict", "--images", tmp_path / "images", "--out", tmp_path / "out", "--results", tmp_path / "results"]
    line = one_line_error(capsys, [*args, "--trainer", "nnUNetTrainer", "--device", "cpu"],
                          model / f"fold_{foreign_fold}" / "checkpoint_final.pth", "another network")  # fmt: skip
    assert "size mismatch" in line
    assert not (tmp_path / "out" / ".legs" / "images").exists()  # refused before converting anything


def test_load_predictor_accepts_matching_weights(tmp_path):
    from nnunet_filternet.pipeline.leg_predictions import load_predictor

    model = _model_with_foreign_weights(tmp_path / "results", foreign_fold=-1)
    predictor = load_predictor(model, [0, 1], "checkpoint_final.pth", "cpu", disable_tta=True)
    assert len(predictor.list_of_parameters) == 2
    with pytest.raises(InputError, match="fold_1"):
        bad = _model_with_foreign_weights(tmp_path / "other", foreign_fold=1)
        load_predictor(bad, [0, 1], "checkpoint_final.pth", "cpu", disable_tta=True)


# ---- phantom geometry that cannot hold a leg -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "geometry, needed",
    [
        (["--shape", "2", "2", "2"], "need a field of view of at least"),
        (["--spacing", "1e30", "1e30", "1e30"], "at most 1000 mm per axis"),
        (["--spacing", "1e300", "1e300", "1e300"], "at most 1000 mm per axis"),
        (["--spacing", "0.7", "0.7", "1e300"], "at most 1000 mm per axis"),
        (["--shape", "2", "2", "2", "--spacing", "300", "300", "7"], "get no voxel"),
        (["--shape", "12", "8", "4", "--spacing", "40", "40", "7"], "get no voxel"),
        (["--shape", "6", "4", "4", "--spacing", "150", "150", "7"], "get no voxel"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_phantom_geometry_that_cannot_hold_a_leg_is_refused(tmp_path, capsys, geometry, needed):
    out = tmp_path / "cohort"
    one_line_error(capsys, ["phantom", "--out", out, "--subjects", "1", "-j", "1", *geometry], needed)
    assert not out.exists()


def test_phantom_label_maps_hold_every_compartment_of_both_legs_at_the_coarsest_accepted_spacing(tmp_path):
    """The check passes a coarse grid only when every compartment of each leg gets voxels: the written label map's
    middle slice then holds all five labels in both halves."""
    from nnunet_filternet.phantom import make_cohort

    out = make_cohort(tmp_path / "c", n_subjects=1, n_healthy=0, shape=(40, 24, 3), spacing=(8.0, 8.0, 7.0), jobs=1)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "labels" / "sub-000.nii.gz")))[1]
    half = label.shape[1] // 2
    for side in (label[:, :half], label[:, half:]):
        assert set(np.unique(side)) == {0, 1, 2, 3, 4, 5}


@pytest.mark.parametrize(
    "plans, fragment",
    [
        ({"configurations": ["3d_fullres"]}, "'configurations'"),
        ({"configurations": {"3d_fullres": []}}, "expected an object"),
        ({"configurations": {"3d_fullres": {"spacing": [1, 1, 1]}}}, "missing"),
    ],
)
def test_predict_with_plans_of_another_structure_is_one_line(tmp_path, capsys, plans, fragment):
    from tests.predict_fixture import make_model

    model = make_model(tmp_path / "results")
    (model / "plans.json").write_text(json.dumps(plans))
    write_scans(tmp_path, {"a": ScanSpec(seed=1)})
    args = ["predict", "--images", tmp_path / "images", "--out", tmp_path / "out", "--results", tmp_path / "results"]
    one_line_error(capsys, [*args, "--trainer", "nnUNetTrainer", "--device", "cpu"], model / "plans.json", fragment)


def test_predict_with_a_checkpoint_of_a_configuration_the_plans_lack_is_one_line(tmp_path, capsys):
    import torch

    from tests.predict_fixture import make_model

    model = make_model(tmp_path / "results")
    saved = torch.load(model / "fold_0" / "checkpoint_final.pth", weights_only=False)
    saved["init_args"]["configuration"] = "3d_lowres"
    torch.save(saved, model / "fold_0" / "checkpoint_final.pth")
    write_scans(tmp_path, {"a": ScanSpec(seed=1)})
    args = ["predict", "--images", tmp_path / "images", "--out", tmp_path / "out", "--results", tmp_path / "results"]
    one_line_error(capsys, [*args, "--trainer", "nnUNetTrainer", "--device", "cpu"], "3d_lowres", "does not have")
