"""nnU-Net finds our trainers in a fresh interpreter with no environment variable set by hand."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from nnunet_filternet.nnunet_ext import TRAINER_DIR

TRAINERS = (
    "nnUNetTrainerFilterNet",
    "nnUNetTrainerBUNet",
    "nnUNetTrainerUNetF",
    "nnUNetTrainerBoundaryAwareFCN",
    "nnUNetTrainerUNet",
    "nnUNetTrainerFilterNetPaper",
    "nnUNetTrainerBoundaryAwareFCNPaper",
    "nnUNetTrainerFilterNet_1epoch",
    "nnUNetTrainerUNetFPaper_50epochs",
)

FIND_SCRIPT = """
import json, os, sys
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
found = {}
for name in sys.argv[1:]:
    cls = recursive_find_trainer_class_by_name(name)
    found[name] = [cls.__module__, cls.__qualname__]
print("RESULT " + json.dumps({"found": found, "ext": os.environ.get("nnUNet_extTrainer")}))
"""


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "nnUNet_extTrainer"}


def test_nnunet_finds_every_trainer_in_a_fresh_interpreter(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", FIND_SCRIPT, *TRAINERS],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=_clean_env(),
        cwd=tmp_path,  # not the repository: the package must be found as installed
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert report["ext"].split(os.pathsep) == [TRAINER_DIR]
    for name in TRAINERS:
        assert report["found"][name] == ["nnunet_filternet.training.trainers", name]


def test_start_up_hook_appends_to_a_user_setting(tmp_path):
    """What the installed .pth runs at start-up, run by ``site`` in a clean interpreter (any Python version)."""
    pth = next(Path(p) / "nnunet_filternet.pth" for p in sys.path if (Path(p) / "nnunet_filternet.pth").is_file())
    assert pth.read_text().strip() == "import nnunet_filternet.nnunet_ext.register"
    script = f"import os, site; site.addsitedir({str(pth.parent)!r}); print(os.environ['nnUNet_extTrainer'])"
    env = _clean_env()
    env["nnUNet_extTrainer"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().split(os.pathsep) == [str(tmp_path), TRAINER_DIR]


def test_shim_folder_holds_only_side_effect_free_uniquely_named_shims():
    """nnU-Net imports every module there as a top-level module: only imports, no name clashes."""
    import importlib.util
    import pkgutil

    modules = list(pkgutil.iter_modules([TRAINER_DIR]))
    assert [m.name for m in modules] == ["nnunet_filternet_trainers"] and not modules[0].ispkg
    for module in modules:
        assert importlib.util.find_spec(module.name) is None  # shadows nothing importable
        tree = ast.parse(Path(TRAINER_DIR, module.name + ".py").read_text())
        body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        assert all(isinstance(node, ast.ImportFrom) and node.module.startswith("nnunet_filternet.") for node in body)


def test_add_to_environment_keeps_the_user_folders_and_adds_ours_once(tmp_path):
    from nnunet_filternet.nnunet_ext import add_to_environment

    env = {"nnUNet_extTrainer": os.pathsep.join([str(tmp_path), ""])}
    add_to_environment(env)
    add_to_environment(env)
    assert env["nnUNet_extTrainer"].split(os.pathsep) == [str(tmp_path), TRAINER_DIR]
    empty: dict = {}
    add_to_environment(empty)
    assert empty == {"nnUNet_extTrainer": TRAINER_DIR}
