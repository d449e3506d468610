"""Units of the end-to-end pipeline: resumable stages, budget trainers, model folder lookup."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nnunet_filternet.errors import FilterNetError, InputError
from nnunet_filternet.pipeline.budget_trainers import Budget, budget_trainer_name, write_budget_trainers
from nnunet_filternet.pipeline.predict import find_folds, find_model_folder
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


def test_budget_trainers_are_found_by_nnunet(tmp_path):
    folder = write_budget_trainers(tmp_path, ["nnUNetTrainer"], Budget(epochs=3, iterations=7, val_iterations=2))
    code = (
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as f;"
        f"c = f({budget_trainer_name('nnUNetTrainer')!r});"
        "import inspect; print(c.__mro__[1].__name__, list(inspect.signature(c.__init__).parameters))"
    )
    env = {"nnUNet_extTrainer": str(folder), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", errors="replace", env=env
    )
    assert r.returncode == 0, r.stderr
    assert "nnUNetTrainer ['self', 'plans', 'configuration', 'fold', 'dataset_json', 'device']" in r.stdout


def test_budget_trainers_reject_unknown_trainer(tmp_path):
    with pytest.raises(FilterNetError, match="cannot find trainer"):
        write_budget_trainers(tmp_path, ["nnUNetTrainerDoesNotExist"], Budget(1, 1, 1))


def test_model_folder_and_folds_lookup(tmp_path):
    with pytest.raises(InputError, match="results folder"):
        find_model_folder(tmp_path / "missing", "T", None, "3d_fullres")
    model = tmp_path / "T__nnUNetPlans__3d_fullres"
    (model / "fold_0").mkdir(parents=True)
    (model / "fold_2").mkdir()
    (model / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    (model / "fold_2" / "checkpoint_final.pth").write_bytes(b"")
    assert find_model_folder(tmp_path, "T", None, "3d_fullres") == model
    assert find_folds(model, "checkpoint_final.pth", None) == [0, 2]
    with pytest.raises(InputError, match=r"folds \[1\]"):
        find_folds(model, "checkpoint_final.pth", [0, 1])
    (tmp_path / "T__other__3d_fullres").mkdir()
    with pytest.raises(InputError, match="exactly one model folder"):
        find_model_folder(tmp_path, "T", None, "3d_fullres")
