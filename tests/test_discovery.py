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
    "nnUNetTrainerFilterNet_40epochs_40iters_4val",  # the demo's models (cpu preset), stock nnU-Net's too
    "nnUNetTrainer_40epochs_40iters_4val",
    "nnUNetTrainer_50epochs_250iters_50val",  # gpu preset
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


def _python(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    """``python ARGS`` in a subprocess with ``env`` (text, UTF-8)."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, encoding="utf-8", errors="replace", env=env, **kwargs
    )


def test_nnunet_finds_every_trainer_in_a_fresh_interpreter(tmp_path):
    # cwd: not the repository, the package must be found as installed
    result = _python(["-c", FIND_SCRIPT, *TRAINERS], _clean_env(), cwd=tmp_path, timeout=300)
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
    out = _python(["-S", "-c", script], env, timeout=120)
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


USER_TRAINER = """
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class MyTrainer(nnUNetTrainer):
    marker = "mine"
"""

FIND = """
import inspect, json, sys
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
cls = recursive_find_trainer_class_by_name(sys.argv[1])
print("RESULT " + json.dumps([cls.__module__, cls.__name__, [c.__name__ for c in cls.__mro__[1:5]], cls.marker,
                              list(inspect.signature(cls.__init__).parameters)]))
"""


def test_a_user_trainer_gets_a_variant_wherever_nnunet_finds_it(tmp_path):
    """A fresh interpreter with the user's own trainer folder set: nnU-Net finds its budget variant (ours)."""
    (tmp_path / "my_trainers.py").write_text(USER_TRAINER)
    env = {"nnUNet_extTrainer": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = _python(["-c", FIND, "MyTrainer_3epochs_7iters_2val"], env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    module, name, bases, marker, params = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert (module, name, marker) == ("nnunet_filternet.training.trainers", "MyTrainer_3epochs_7iters_2val", "mine")
    assert bases == ["ThrottledProgressPlotMixin", "TelemetryMixin", "KernelPolicyMixin", "MyTrainer"]
    assert params == ["self", "plans", "configuration", "fold", "dataset_json", "device"]
