"""Which configuration learns most per CPU-minute: the study's ``3d_fullres`` (tiny plans) or a 2d analogue?

Usage: ``python docs/study/configuration_choice.py WORKDIR`` on a finished ``filternet demo --preset study``
work folder. Prints a Markdown table. Writes the 2d plans and their preprocessed data beside the study's in
``WORKDIR/nnUNet_preprocessed`` and its trainings into ``WORKDIR/configuration_choice/``; a rerun reuses them.

The 2d analogue is the tiny plans' network made 2d, fed the same voxels per step: in-plane spacing of the
tiny plans (2.33 mm), patch 48 x 48 (the tiny 3d patch is 8 x 48 x 48), batch 16 (= 2 patches x 8 slices),
features 8-16-32-64, 3 x 3 kernels, nnU-Net's 2d strides. It is written as a separate plans file
(``nnUNetPlans_tiny2d.json``, configuration ``2d``); the study's own plans are not touched. Stock nnU-Net
(``nnUNetTrainer``) is trained on fold 0 twice, into ``WORKDIR/configuration_choice/nnUNet_results``:

* ``same budget``: the study's 40 epochs x 40 iterations;
* ``same time``: as many 40-iteration epochs as fit in the study's 3d training time of fold 0.

Scored as nnU-Net scores its folds: mean foreground Dice of fold 0's validation cases
(``fold_0/validation/summary.json``, leg crops at the plans' spacing), against the study's stock
``3d_fullres`` fold 0 of every repeat. Time = first to last line of nnU-Net's training log.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import re
import subprocess
from pathlib import Path

from nnunet_filternet.pipeline import nnunet_runs

DATASET = "Dataset501_FilterNetPhantom"
BUDGET = "40epochs_40iters_4val"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+):")


def tiny_2d_plans(tiny: dict) -> dict:
    """``nnUNetPlans_tiny`` (3d_fullres only) -> ``nnUNetPlans_tiny2d`` with one ``2d`` configuration."""
    src = tiny["configurations"]["3d_fullres"]
    arch = copy.deepcopy(src["architecture"])
    kw = arch["arch_kwargs"]
    n = kw["n_stages"]
    kw.update(
        conv_op="torch.nn.modules.conv.Conv2d",
        norm_op="torch.nn.modules.instancenorm.InstanceNorm2d",
        kernel_sizes=[[3, 3]] * n,
        strides=[[1, 1]] + [[2, 2]] * (n - 1),
    )
    config = copy.deepcopy(src)
    config.update(
        data_identifier="nnUNetPlans_tiny2d_2d",
        batch_size=src["batch_size"] * src["patch_size"][0],
        patch_size=src["patch_size"][1:],
        median_image_size_in_voxels=src["median_image_size_in_voxels"][1:],
        spacing=src["spacing"][1:],
        architecture=arch,
    )
    plans = copy.deepcopy(tiny)
    plans["plans_name"] = "nnUNetPlans_tiny2d"
    plans["configurations"] = {"2d": config}
    return plans


def log_seconds(fold_dir: Path) -> float:
    """Seconds from the first to the last time stamp of the fold's (newest) training log."""
    log = sorted(fold_dir.glob("training_log_*.txt"))[-1]
    stamps = [STAMP.match(line) for line in log.read_text(encoding="utf-8").splitlines()]
    times = [dt.datetime.fromisoformat(m.group(1)) for m in stamps if m]
    return (times[-1] - times[0]).total_seconds()


def fold_dice(fold_dir: Path) -> float:
    """Mean foreground Dice (%) of nnU-Net's own validation of the fold."""
    summary = json.loads((fold_dir / "validation" / "summary.json").read_text(encoding="utf-8"))
    return 100.0 * summary["foreground_mean"]["Dice"]


def train_2d(env: dict, epochs: int) -> Path:
    trainer = f"nnUNetTrainer_{epochs}epochs_40iters_4val"
    fold = Path(env["nnUNet_results"]) / DATASET / f"{trainer}__nnUNetPlans_tiny2d__2d" / "fold_0"
    if not (fold / "validation" / "summary.json").exists():
        cmd = [*nnunet_runs.command("nnUNetv2_train"), "501", "2d", "0", "-tr", trainer]
        subprocess.run([*cmd, "-p", "nnUNetPlans_tiny2d", "-device", "cpu"], env=env, check=True)
    return fold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    work = parser.parse_args().workdir
    pre = work / "nnUNet_preprocessed" / DATASET
    out = work / "configuration_choice"
    plans_file = pre / "nnUNetPlans_tiny2d.json"
    if not plans_file.exists():
        tiny = json.loads((pre / "nnUNetPlans_tiny.json").read_text(encoding="utf-8"))
        tmp = plans_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(tiny_2d_plans(tiny), indent=2), encoding="utf-8")
        tmp.replace(plans_file)
    folders = nnunet_runs.nnunet_folders(work)
    folders["nnUNet_results"] = out / "nnUNet_results"
    folders["nnUNet_results"].mkdir(parents=True, exist_ok=True)
    env = nnunet_runs.environment(folders)
    if not (pre / "nnUNetPlans_tiny2d_2d").exists():
        cmd = [*nnunet_runs.command("nnUNetv2_preprocess"), "-d", "501", "-plans_name", "nnUNetPlans_tiny2d"]
        subprocess.run([*cmd, "-c", "2d", "-np", "2"], env=env, check=True)

    rows = []
    for k, root in enumerate([work / "nnUNet_results", *sorted(work.glob("nnUNet_results_r*"))], start=1):
        fold = root / DATASET / f"nnUNetTrainer_{BUDGET}__nnUNetPlans_tiny__3d_fullres" / "fold_0"
        rows.append((f"3d_fullres (tiny), repeat {k}", 40 * 40, log_seconds(fold), fold_dice(fold)))
    t3d = sum(r[2] for r in rows) / len(rows)
    same_budget = train_2d(env, 40)
    rows.append(("2d (tiny2d), same budget", 40 * 40, log_seconds(same_budget), fold_dice(same_budget)))
    epochs = max(1, round(40 * t3d / rows[-1][2]))
    same_time = train_2d(env, epochs)
    rows.append(("2d (tiny2d), same time", epochs * 40, log_seconds(same_time), fold_dice(same_time)))

    print("| stock nnU-Net, fold 0 | training iterations | training time (s) | fold-0 validation Dice (%) |")
    print("|---|---|---|---|")
    for name, iters, seconds, dice in rows:
        print(f"| {name} | {iters} | {seconds:.0f} | {dice:.1f} |")


if __name__ == "__main__":
    main()
