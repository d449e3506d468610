"""Units of the end-to-end pipeline: resumable stages, the demo's trainers, model folder lookup."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.pipeline.demo import Demo
from nnunet_filternet.pipeline.predict import find_folds, find_model_folder
from nnunet_filternet.pipeline.presets import CPU, GPU
from nnunet_filternet.pipeline.stages import StageRunner


def test_stage_runner_skips_finished_and_repeats_interrupted(tmp_path, capsys):
    calls = []
    r = StageRunner(tmp_path / "state.json", {"a": 1})
    r.run(1, 2, "one", "first", lambda: calls.append("one"))
    with pytest.raises(KeyboardInterrupt):
        r.run(2, 2, "two", "second", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    r2 = StageRunner(tmp_path / "state.json", {"a": 1})
    r2.run(1, 2, "one", "first", lambda: calls.append("one again"))
    r2.run(2, 2, "two", "second", lambda: calls.append("two"))
    assert calls == ["one", "two"]
    assert "skipped" in capsys.readouterr().out
    assert set(json.loads((tmp_path / "state.json").read_text())["done"]) == {"one", "two"}


def test_stage_runner_refuses_other_settings(tmp_path):
    r = StageRunner(tmp_path / "state.json", {"subjects": 8})
    r.run(1, 1, "one", "first", lambda: None)
    with pytest.raises(FilterNetError, match="subjects: 8 -> 12"):
        StageRunner(tmp_path / "state.json", {"subjects": 12})


def test_demo_trains_budget_variants_named_after_the_preset_budget(tmp_path):
    assert Demo(tmp_path / "a", CPU).trained_name("nnUNetTrainer") == "nnUNetTrainer_40epochs_40iters_4val"
    gpu = Demo(tmp_path / "b", GPU)
    assert gpu.model_dir("nnUNetTrainerFilterNet").name == (
        "nnUNetTrainerFilterNet_50epochs_250iters_50val__nnUNetPlans__3d_fullres"
    )


def test_demo_refuses_unknown_trainers_before_any_stage(tmp_path, monkeypatch):
    def no_stage(self):
        raise AssertionError("a stage ran before the checks")

    monkeypatch.setattr(Demo, "make_cohort", no_stage)
    demo = Demo(tmp_path, replace(CPU, trainers=("nnUNetTrainerFilterNet", "nnUNetTrainerDoesNotExist")))
    with pytest.raises(FilterNetError, match=r"--trainers: nnU-Net cannot find nnUNetTrainerDoesNotExist \(looked"):
        demo.run()
    assert not (tmp_path / "scans").exists() and not (tmp_path / "demo_state.json").exists()


def test_model_folder_and_folds_lookup(tmp_path):
    with pytest.raises(InputError, match="results folder"):
        find_model_folder(tmp_path / "missing", "T", None, "3d_fullres")
    model = tmp_path / "T__nnUNetPlans__3d_fullres"
    (model / "fold_0").mkdir(parents=True)
    (model / "fold_2").mkdir()
    (model / "fold_3").mkdir()
    (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    (model / "fold_2" / "checkpoint_final.pth").write_bytes(b"")
    (model / "fold_3" / "checkpoint_latest.pth").write_bytes(b"")
    assert find_model_folder(tmp_path, "T", None, "3d_fullres") == model
    assert find_folds(model, "checkpoint_final.pth", None) == [0, 2]
    with pytest.raises(InputError, match=r"checkpoint_final.pth in folds \[1, 3\], found none; present: fold_0 \("):
        find_folds(model, "checkpoint_final.pth", [0, 1, 3])
    with pytest.raises(InputError, match=r"checkpoint_best.pth in any fold.*fold_3 \(checkpoint_latest.pth\)"):
        find_folds(model, "checkpoint_best.pth", None)
    (tmp_path / "T__other__3d_fullres").mkdir()
    with pytest.raises(InputError, match="expected one model folder T__\\*__3d_fullres, found 2.*pass --plans"):
        find_model_folder(tmp_path, "T", None, "3d_fullres")
    with pytest.raises(InputError, match=r"trained model U__\*__3d_fullres, found none; present: T__nnUNetPlans__"):
        find_model_folder(tmp_path, "U", None, "3d_fullres")


def test_nnunet_environment_caps_nnunets_worker_processes_at_the_cpus_unless_the_user_set_them(tmp_path, monkeypatch):
    import os

    from nnunet_filternet.pipeline import nnunet_runs

    monkeypatch.delenv("nnUNet_def_n_proc", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    env = nnunet_runs.environment(nnunet_runs.nnunet_folders(tmp_path))
    assert env["nnUNet_def_n_proc"] == "2" and env["nnUNet_results"] == str(tmp_path / "nnUNet_results")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("nnUNet_def_n_proc", "5")
    assert nnunet_runs.environment(nnunet_runs.nnunet_folders(tmp_path))["nnUNet_def_n_proc"] == "5"
