"""The run-to-run spread of one fold against training length and configuration: the pilot behind a study's design.

A comparison over folds can resolve a difference only as small as the spread of its fold means allows, and on
the CPU most of that spread is training noise: two identical trainings of one fold differ by several Dice
points (docs/study.md). This pilot measures that noise directly: one trainer, one fold, ``repeats`` identical
(unseeded, nnU-Net's way) trainings at each training length and configuration, scored as nnU-Net scores its
folds (mean foreground Dice of the fold's validation cases, i.e. the held-out subjects' leg crops at the plans'
spacing, averaged per subject over its legs and then over the fold's subjects). The run SD of a length is
the sample SD of those fold means over the repeats; its 95 % interval is the chi-square one (n - 1 df).
``--epochs 0`` trains nothing and only tabulates what the folder holds.

Usage::

    python -m nnunet_filternet.pipeline.pilot WORKDIR [--setup study] [--configurations 2d 3d_fullres]
        [--epochs 40 80 160] [--repeats 3] [--fold 0] [--trainer nnUNetTrainer]

The cohort, conversion (with the preset's folds) and plans are the preset's (so the pilot measures the study's
own data); trainings go to ``WORKDIR/pilot/nnUNet_results_r<k>`` and a rerun skips finished ones (a training is
finished when nnU-Net wrote its validation summary). Prints a Markdown table and writes ``WORKDIR/pilot/pilot.csv``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_filternet.pipeline import nnunet_runs
from nnunet_filternet.pipeline.demo import DATASET_ID, Demo
from nnunet_filternet.pipeline.presets import PRESETS, DemoPreset
from nnunet_filternet.training.budget import Budget, budget_variant_name

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+):")


@dataclass(frozen=True)
class PilotRun:
    """One finished training: trainer, configuration, length, repeat, fold-mean Dice (%) and wall seconds."""

    configuration: str
    epochs: int
    iterations: int
    repeat: int
    fold_dice: float
    seconds: float
    trainer: str = "nnUNetTrainer"


def subject_of(case: str) -> str:
    """``sub-001_L`` -> ``sub-001`` (a leg case's subject)."""
    return case.rsplit("_", 1)[0]


def fold_mean_dice(summary_file: Path) -> float:
    """Mean foreground Dice (%) of nnU-Net's validation summary, averaged per subject first, then over subjects.

    A compartment absent from both reference and prediction (nnU-Net's NaN Dice) is left out of its leg's mean.
    """
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    per_subject: dict[str, list[float]] = {}
    for case in summary["metric_per_case"]:
        name = Path(case["reference_file"]).name.split(".")[0]
        dice = [v["Dice"] for k, v in case["metrics"].items() if k != "0" and np.isfinite(v["Dice"])]
        per_subject.setdefault(subject_of(name), []).append(float(np.mean(dice)) if dice else float("nan"))
    return 100.0 * float(np.nanmean([np.nanmean(v) for v in per_subject.values()]))


def training_seconds(fold_dir: Path) -> float:
    """Seconds from the first to the last time stamp of the fold's newest nnU-Net training log."""
    log = sorted(fold_dir.glob("training_log_*.txt"))[-1]
    stamps = [_STAMP.match(line) for line in log.read_text(encoding="utf-8").splitlines()]
    times = [dt.datetime.fromisoformat(m.group(1)) for m in stamps if m]
    return (times[-1] - times[0]).total_seconds()


def run_sd_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Sample SD of ``values`` (ddof 1) and its chi-square confidence interval (normal runs assumed)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    n = v.size
    sd = float(v.std(ddof=1))
    lo = sd * np.sqrt((n - 1) / stats.chi2.ppf(0.5 + level / 2, n - 1))
    hi = sd * np.sqrt((n - 1) / stats.chi2.ppf(0.5 - level / 2, n - 1))
    return sd, float(lo), float(hi)


class Pilot:
    """Trainings of one fold, ``repeats`` times per (configuration, epochs), in one work folder."""

    def __init__(self, workdir: str | Path, preset: DemoPreset, trainer: str, fold: int, iterations: int = 40):
        self.demo = Demo(workdir, preset)
        self.trainer, self.fold, self.iterations = trainer, fold, iterations
        self.root = self.demo.workdir / "pilot"

    def prepare(self, configurations: Sequence[str]) -> None:
        """The preset's cohort, conversion and plans (once), and preprocessed data of every configuration."""
        from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess

        demo = self.demo
        if not demo.scans.exists():
            demo.make_cohort()
        dataset = demo.folders["nnUNet_raw"] / demo.dataset
        if not (dataset / "dataset.json").exists():
            demo.convert()
        pre = demo.folders["nnUNet_preprocessed"] / demo.dataset
        if not (pre / "dataset_fingerprint.json").exists():
            demo.plan_and_preprocess()
        plans = json.loads((pre / f"{demo.plans}.json").read_text(encoding="utf-8"))
        missing = [c for c in configurations if not (pre / plans["configurations"][c]["data_identifier"]).is_dir()]
        if missing:
            with nnunet_runs.environment_set(demo.env):
                preprocess([DATASET_ID], plans_identifier=demo.plans, configurations=missing, num_processes=[2])

    def fold_dir(self, configuration: str, epochs: int, repeat: int) -> Path:
        name = budget_variant_name(self.trainer, self.budget(epochs))
        results = self.root / f"nnUNet_results_r{repeat}"
        return results / self.demo.dataset / f"{name}__{self.demo.plans}__{configuration}" / f"fold_{self.fold}"

    def budget(self, epochs: int) -> Budget:
        return Budget(epochs=epochs, iterations=self.iterations, val_iterations=max(1, self.iterations // 10))

    def train(self, configuration: str, epochs: int, repeat: int) -> PilotRun:
        fold_dir = self.fold_dir(configuration, epochs, repeat)
        if not (fold_dir / "validation" / "summary.json").exists():
            name = budget_variant_name(self.trainer, self.budget(epochs))
            results = fold_dir.parents[2]
            results.mkdir(parents=True, exist_ok=True)
            args = [DATASET_ID, configuration, self.fold, "-tr", name, "-p", self.demo.plans, "-device", "cpu"]
            if (fold_dir / "checkpoint_latest.pth").exists():
                args.append("--c")
            log = self.root / "logs" / f"{name}_{configuration}_r{repeat}.log"
            nnunet_runs.run("nnUNetv2_train", args, {**self.demo.env, "nnUNet_results": str(results)}, log)
        return PilotRun(
            configuration, epochs, self.iterations, repeat,
            fold_mean_dice(fold_dir / "validation" / "summary.json"), training_seconds(fold_dir), self.trainer,
        )  # fmt: skip

    def finished(self) -> list[PilotRun]:
        """Every finished training of this pilot folder (any trainer, configuration and length), for the tables."""
        from nnunet_filternet.training.budget import parse_budget_variant_name

        runs = []
        for summary in sorted(
            self.root.glob(f"nnUNet_results_r*/{self.demo.dataset}/*/fold_{self.fold}/validation/summary.json")
        ):
            fold_dir, model = summary.parents[1], summary.parents[2].name
            repeat = int(summary.parents[4].name.rsplit("_r", 1)[1])
            name, _, configuration = model.split("__")
            parsed = parse_budget_variant_name(name)
            if parsed is None or parsed[1].iterations is None:
                continue
            base, budget = parsed
            runs.append(PilotRun(
                configuration, budget.epochs, budget.iterations, repeat, fold_mean_dice(summary),
                training_seconds(fold_dir), base,
            ))  # fmt: skip
        return runs


def summarise(runs: Sequence[PilotRun]) -> str:
    """Markdown table: per trainer, configuration and length, each repeat's fold-mean Dice, mean, run SD [95 % CI],
    time."""
    lines = [
        "| trainer | configuration | epochs x iterations | fold-mean Dice per repeat (%) | mean | run SD [95 % CI] "
        "| min per training |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r.trainer, r.configuration, r.epochs, r.iterations) for r in runs})
    for trainer, config, epochs, iterations in keys:
        group = sorted(
            (r for r in runs if (r.trainer, r.configuration, r.epochs) == (trainer, config, epochs)),
            key=lambda r: r.repeat,
        )
        dice = [r.fold_dice for r in group]
        spread = "n/a (one repeat)"
        if len(dice) > 1:
            sd, lo, hi = run_sd_interval(dice)
            spread = f"{sd:.2f} [{lo:.2f}, {hi:.2f}]"
        minutes = np.mean([r.seconds for r in group]) / 60
        per = ", ".join(f"{d:.1f}" for d in dice)
        cells = [trainer, config, f"{epochs} x {iterations}", per, f"{np.mean(dice):.1f}", spread, f"{minutes:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(runs: Sequence[PilotRun], path: Path) -> None:
    from nnunet_filternet.utils.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["trainer", "configuration", "epochs", "iterations", "repeat", "fold_dice", "seconds"])
        for r in runs:
            row = [
                r.trainer,
                r.configuration,
                r.epochs,
                r.iterations,
                r.repeat,
                f"{r.fold_dice:.4f}",
                f"{r.seconds:.1f}",
            ]
            writer.writerow(row)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--setup", default="study", choices=sorted(PRESETS), help="the demo's setup (--setup)")
    parser.add_argument("--configurations", nargs="+", default=["2d", "3d_fullres"])
    parser.add_argument("--epochs", nargs="+", type=int, default=[40, 80, 160], help="0: tabulate only")
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--trainer", default="nnUNetTrainer")
    args = parser.parse_args(argv)
    pilot = Pilot(args.workdir, PRESETS[args.setup], args.trainer, args.fold, args.iterations)
    pilot.prepare(args.configurations)
    for epochs in sorted(args.epochs):  # shortest first: early lengths are complete early
        for config in args.configurations:
            for k in range(1, args.repeats + 1) if epochs > 0 else ():
                pilot.train(config, epochs, k)
                print(summarise(pilot.finished()), flush=True)
    runs = pilot.finished()  # every training of the folder, this run's and earlier ones (other trainers too)
    write_csv(runs, pilot.root / "pilot.csv")
    print(summarise(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
