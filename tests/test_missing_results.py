"""`filternet predict` and `filternet report` on results that lack something: one line, what was found, exit 2."""

from __future__ import annotations

import json

import pytest
import torch

from nnunet_filternet.cli import main


def _model(results, trainer="T", plans="nnUNetPlans", folds=(0,), checkpoint="checkpoint_final.pth", name=None):
    """A model folder as nnU-Net leaves it, with checkpoints naming the trainer ``name`` (default: ``trainer``)."""
    folder = results / f"{trainer}__{plans}__3d_fullres"
    for fold in folds:
        (folder / f"fold_{fold}").mkdir(parents=True)
        torch.save({"trainer_name": name or trainer}, folder / f"fold_{fold}" / checkpoint)
    for file in ("plans.json", "dataset.json"):
        (folder / file).write_text(json.dumps({}))
    return folder


def _error_line(capsys, argv) -> str:
    """Run the CLI in-process; assert exit 2 and a single stderr line; return it."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def predict(tmp_path, capsys):
    results = tmp_path / "Dataset001_X"
    results.mkdir()

    def run(*args) -> str:
        argv = ["predict", "--images", str(tmp_path), "--out", str(tmp_path / "out"), "--results", str(results)]
        return _error_line(capsys, [*argv, "--device", "cpu", *args])

    return results, run


def test_predict_names_what_is_missing_and_what_is_there(predict):
    results, run = predict
    _model(results, "nnUNetTrainerFilterNet_40epochs_40iters_4val", "nnUNetPlans_tiny", folds=(0, 2))
    line = run("--trainer", "nnUNetTrainerFilterNet")  # the trainer the demo did not train
    assert line.startswith(f"filternet predict: error: {results}: expected a trained model nnUNetTrainerFilterNet__*")
    assert "present: nnUNetTrainerFilterNet_40epochs_40iters_4val__nnUNetPlans_tiny__3d_fullres (folds 0, 2)" in line
    trainer = ["--trainer", "nnUNetTrainerFilterNet_40epochs_40iters_4val"]
    line = run(*trainer, "--plans", "nnUNetPlans")  # other plans
    assert "expected a trained model nnUNetTrainerFilterNet_40epochs_40iters_4val__nnUNetPlans__3d_fullres" in line
    line = run(*trainer, "--folds", "0", "1")
    assert "checkpoint_final.pth in folds [1], found none; present: fold_0 (checkpoint_final.pth), fold_2" in line
    line = run(*trainer, "--checkpoint", "checkpoint_best.pth")
    assert "checkpoint_best.pth in any fold, found none; present: fold_0 (checkpoint_final.pth)" in line


def test_predict_names_a_trainer_nnunet_cannot_find(predict):
    results, run = predict
    model = _model(results, "T", name="nnUNetTrainerGoneMissing")
    line = run("--trainer", "T")
    assert line.startswith(f"filternet predict: error: {model / 'fold_0' / 'checkpoint_final.pth'}: trained by ")
    assert "nnUNetTrainerGoneMissing, which nnU-Net cannot find (looked in nnunetv2 and in nnUNet_extTrainer=" in line
    (model / "dataset.json").unlink()
    line = run("--trainer", "T")
    assert line.endswith(f"{model / 'dataset.json'}: expected nnU-Net's copy of the model's dataset.json, not found")


def test_predict_without_results_folder(tmp_path, capsys):
    argv = ["predict", "--images", str(tmp_path), "--out", str(tmp_path / "o"), "--results", str(tmp_path / "nope")]
    assert "nope: expected an nnU-Net results folder" in _error_line(capsys, argv)


def test_report_names_what_is_missing_and_what_is_there(tmp_path, capsys):
    results = tmp_path / "Dataset001_X"
    _model(results, "A_2epochs", "nnUNetPlans_tiny", folds=(0, 1))
    (results / "B__nnUNetPlans__3d_fullres").mkdir()

    def run(*trainers, plans="nnUNetPlans_tiny") -> str:
        argv = ["report", "--results", str(results), "--trainers", *trainers, "--baseline", trainers[0]]
        return _error_line(capsys, [*argv, "--out", str(tmp_path / "out"), "--plans", plans])

    line = run("A_2epochs", "C")
    assert "2 trainer(s) without usable results" in line
    assert "expected results of trainer C (plans nnUNetPlans_tiny, configuration 3d_fullres) in C__nnUNetPlans" in line
    assert "present: A_2epochs__nnUNetPlans_tiny__3d_fullres (folds 0, 1), B__nnUNetPlans__3d_fullres (no fold" in line
    assert "fold_0/validation, fold_1/validation, found none (is training finished?" in line  # A: no predictions
    assert "B__nnUNetPlans__3d_fullres: expected fold_<k> folders" in run("B", plans="nnUNetPlans")
    assert f"{tmp_path / 'nope'}: expected an nnU-Net results folder" in _error_line(
        capsys, ["report", "--results", str(tmp_path / "nope"), "--trainers", "A", "--baseline", "A", "--out", "o"]
    )
