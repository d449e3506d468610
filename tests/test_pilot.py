"""The pilot's scoring of nnU-Net's validation summaries and its run-SD interval."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from nnunet_filternet.pipeline.pilot import PilotRun, fold_mean_dice, run_sd_interval, summarise


def _case(name: str, dice: dict[str, float]) -> dict:
    return {
        "reference_file": f"/x/gt_segmentations/{name}.nii.gz",
        "metrics": {k: {"Dice": v} for k, v in dice.items()},
    }


def test_fold_mean_dice_averages_legs_per_subject_then_subjects(tmp_path):
    cases = [
        _case("sub-001_L", {"0": 0.99, "1": 0.8, "2": 0.6}),  # background ignored: leg mean 0.7
        _case("sub-001_R", {"0": 0.99, "1": 0.9, "2": float("nan")}),  # absent compartment left out: 0.9
        _case("sub-002_L", {"0": 0.99, "1": 0.5, "2": 0.5}),  # one leg only: 0.5
    ]
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"metric_per_case": cases}))
    assert fold_mean_dice(summary) == pytest.approx(100 * (0.8 + 0.5) / 2)  # subjects 0.8 and 0.5


def test_run_sd_interval_is_the_chi_square_interval():
    values = [70.0, 74.0, 79.0]
    sd, lo, hi = run_sd_interval(values)
    assert sd == pytest.approx(np.std(values, ddof=1))
    assert lo == pytest.approx(sd * np.sqrt(2 / stats.chi2.ppf(0.975, 2)))
    assert hi == pytest.approx(sd * np.sqrt(2 / stats.chi2.ppf(0.025, 2)))
    assert lo < sd < hi


def test_summary_table_has_one_row_per_configuration_and_length():
    runs = [PilotRun("2d", e, 40, k, 70.0 + k + e / 40, 60.0) for e in (40, 80) for k in (1, 2, 3)]
    table = summarise(runs).splitlines()
    assert len(table) == 4 and table[2].startswith("| nnUNetTrainer | 2d | 40 x 40 | 72.0, 73.0, 74.0 | 73.0 | 1.00 [")


def test_finished_collects_every_training_of_the_folder_with_its_trainer_and_budget(tmp_path):
    from nnunet_filternet.pipeline.pilot import Pilot
    from nnunet_filternet.pipeline.presets import STUDY

    pilot = Pilot(tmp_path, STUDY, "nnUNetTrainer", fold=0)
    for repeat, name, config, dice in [
        (1, "nnUNetTrainer_40epochs_40iters_4val", "2d", 0.8),
        (2, "nnUNetTrainer_40epochs_40iters_4val", "2d", 0.7),
        (1, "nnUNetTrainerFilterNet_80epochs_40iters_4val", "3d_fullres", 0.6),
        (1, "nnUNetTrainer_5epochs", "2d", 0.5),  # no iterations in the name: not a pilot training
    ]:
        fold = (
            pilot.root
            / f"nnUNet_results_r{repeat}"
            / pilot.demo.dataset
            / f"{name}__nnUNetPlans_tiny__{config}"
            / "fold_0"
        )
        (fold / "validation").mkdir(parents=True)
        case = _case("sub-001_L", {"1": dice})
        (fold / "validation" / "summary.json").write_text(json.dumps({"metric_per_case": [case]}))
        (fold / "training_log_1.txt").write_text("2026-12-07 10:00:00.000000: a\n2026-12-07 10:01:30.000000: b\n")
    runs = sorted(pilot.finished(), key=lambda r: (r.trainer, r.repeat))
    assert [(r.trainer, r.configuration, r.epochs, r.iterations, r.repeat) for r in runs] == [
        ("nnUNetTrainer", "2d", 40, 40, 1),
        ("nnUNetTrainer", "2d", 40, 40, 2),
        ("nnUNetTrainerFilterNet", "3d_fullres", 80, 40, 1),
    ]
    assert [r.fold_dice for r in runs] == pytest.approx([80.0, 70.0, 60.0]) and runs[0].seconds == 90.0
