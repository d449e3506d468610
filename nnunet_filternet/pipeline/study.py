"""The tables of docs/study.md from a finished ``filternet demo --setup study`` work folder.

Usage::

    python -m nnunet_filternet.pipeline.study WORKDIR [--out docs/study]

Prints Markdown: wall time per stage, each model's Dice and ASSD per compartment (mean +- sd over subjects, a
subject being the mean of its legs and of the repeats), the cohort-mean Dice of every fold run (the unit of
training noise), ``filternet compare`` of FilterNet against stock nnU-Net over folds (its CSV and figure go to
``--out``), and sigma at the end of every FilterNet training. Reads only what the demo wrote:
``demo_state.json``, ``outputs/[r<k>/]<trainer>/metrics.csv`` (with the ``fold`` column) and the final
checkpoints' gate state.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_filternet.labels import COMPARTMENTS
from nnunet_filternet.pipeline.demo import Demo
from nnunet_filternet.pipeline.presets import DemoPreset
from nnunet_filternet.training.budget import Budget

CANDIDATE, BASELINE = "nnUNetTrainerFilterNet", "nnUNetTrainer"


def load_demo(workdir: Path) -> tuple[Demo, dict[str, float]]:
    """The finished demo of ``workdir`` (its preset from ``demo_state.json``) and its stage times (s)."""
    state = json.loads((workdir / "demo_state.json").read_text(encoding="utf-8"))
    settings, done = dict(state["settings"]), state["done"]
    repeats = max([1] + [int(n.rsplit("_r", 1)[1]) for n in done if n.startswith("train_r")])
    settings.update(
        budget=Budget(**settings["budget"]), shape=tuple(settings["shape"]), spacing=tuple(settings["spacing"]),
        folds=tuple(settings["folds"]), trainers=tuple(settings["trainers"]), repeats=repeats,
    )  # fmt: skip
    demo = Demo(workdir, DemoPreset(**settings))
    return demo, done


def subject_values(metrics_csv: Path, metric: str) -> dict[tuple[str, str], tuple[int, list[float]]]:
    """(subject, compartment) -> (fold, values of its legs) from a ``filternet evaluate`` case CSV.

    Dice in %, distances in mm; NaN (compartment absent from both) left out, +inf kept.
    """
    scale = 100.0 if metric == "dice" else 1.0
    out: dict[tuple[str, str], tuple[int, list[float]]] = {}
    with open(metrics_csv, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            text = row[metric]
            if text in ("", "nan"):
                continue
            fold = int(row["fold"]) if row.get("fold", "") != "" else -1
            out.setdefault((row["subject"], row["compartment"]), (fold, []))[1].append(float(text) * scale)
    return out


def subject_means(demo: Demo, trainer: str, metric: str) -> dict[tuple[str, str], float]:
    """(subject, compartment) -> mean over the subject's legs and the repeats (+inf kept)."""
    per_repeat = [
        subject_values(demo.trainer_out(trainer, k) / "metrics.csv", metric) for k in range(1, demo.preset.repeats + 1)
    ]
    keys = sorted({k for table in per_repeat for k in table})
    return {key: float(np.mean([np.mean(t[key][1]) for t in per_repeat if key in t])) for key in keys}


def _mean_sd(values: np.ndarray) -> str:
    if values.size == 0:
        return "n/a"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if values.size > 1 else f"{values.mean():.1f}"


def model_table(demo: Demo, metric: str, label: str) -> str:
    """Per model and compartment: mean ± sd over subjects; a ``(k inf)`` note for missed compartments."""
    lines = [f"| {label} | " + " | ".join(COMPARTMENTS) + " | mean |", "|---" * (len(COMPARTMENTS) + 2) + "|"]
    for trainer in (CANDIDATE, BASELINE):
        means = subject_means(demo, trainer, metric)
        subjects = sorted({s for s, _ in means})
        columns = [np.array([means.get((s, c), math.nan) for s in subjects]) for c in COMPARTMENTS]
        cells = []
        for values in [*columns, np.nanmean(np.vstack(columns), axis=0)]:
            known = values[~np.isnan(values)]
            finite = known[np.isfinite(known)]
            note = "" if finite.size == known.size else f" ({known.size - finite.size} inf)"
            cells.append(_mean_sd(finite) + note)
        lines.append(f"| {demo.trained_name(trainer)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fold_run_means(demo: Demo, trainer: str, repeat: int) -> dict[int, float]:
    """fold -> cohort-mean Dice (%) of that fold run: compartments and legs averaged per subject, then subjects."""
    values = subject_values(demo.trainer_out(trainer, repeat) / "metrics.csv", "dice")
    per_subject: dict[tuple[int, str], list[float]] = {}
    for (subject, _), (fold, legs) in values.items():
        per_subject.setdefault((fold, subject), []).append(float(np.mean(legs)))
    folds = sorted({f for f, _ in per_subject})
    return {f: float(np.mean([np.mean(v) for (g, _), v in per_subject.items() if g == f])) for f in folds}


def fold_table(demo: Demo) -> str:
    """Cohort-mean Dice of every fold run (rows: model and repeat; columns: folds) and the paired difference."""
    repeats = range(1, demo.preset.repeats + 1)
    runs = {(t, k): fold_run_means(demo, t, k) for t in (CANDIDATE, BASELINE) for k in repeats}
    folds = sorted({f for table in runs.values() for f in table})
    lines = [
        "| model | repeat | " + " | ".join(f"fold {f}" for f in folds) + " | mean |",
        "|---" * (len(folds) + 3) + "|",
    ]
    for (trainer, k), table in runs.items():
        cells = [f"{table[f]:.1f}" if f in table else "" for f in folds]
        lines.append(f"| {trainer} | {k} | " + " | ".join(cells) + f" | {np.mean(list(table.values())):.1f} |")
    diff = [np.mean([runs[(CANDIDATE, k)][f] - runs[(BASELINE, k)][f] for k in repeats]) for f in folds]
    lines.append("| difference | all | " + " | ".join(f"{d:+.1f}" for d in diff) + f" | {np.mean(diff):+.1f} |")
    return "\n".join(lines)


def sigma_table(demo: Demo) -> str:
    """sigma at the end of every FilterNet training (rows: repeats; columns: folds)."""
    from nnunet_filternet.training.edge_gate_owner import gate_state_from_checkpoint, sigma_from_gate_state

    folds = demo.preset.folds
    lines = ["| repeat | " + " | ".join(f"fold {f}" for f in folds) + " |", "|---" * (len(folds) + 1) + "|"]
    for k in range(1, demo.preset.repeats + 1):
        cells = []
        for f in folds:
            state = gate_state_from_checkpoint(demo.model_dir(CANDIDATE, k) / f"fold_{f}" / "checkpoint_final.pth")
            cells.append(f"{sigma_from_gate_state(state):.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/study"))
    args = parser.parse_args(argv)
    from nnunet_filternet.compare.files import compare_files

    demo, done = load_demo(args.workdir)
    p = demo.preset
    print(f"stages (s): {json.dumps(done)}; total {sum(done.values()):.0f} s")
    print(f"design: {p.subjects} subjects, {p.n_folds} folds ({len(p.folds)} trained), {p.repeats} repeat(s), "
          f"{p.configuration} of the {p.plans_preset} plans, {p.budget.describe()}\n")  # fmt: skip
    print("DSC (%), mean ± sd over subjects\n\n" + model_table(demo, "dice", "DSC (%)") + "\n")
    print("ASSD (mm), same\n\n" + model_table(demo, "assd_mm", "ASSD (mm)") + "\n")
    print("cohort-mean DSC (%) of every fold run\n\n" + fold_table(demo) + "\n")
    print("sigma at the end of training\n\n" + sigma_table(demo) + "\n")
    repeats = range(1, p.repeats + 1)
    result = compare_files(
        [demo.trainer_out(BASELINE, k) / "metrics.csv" for k in repeats],
        [demo.trainer_out(CANDIDATE, k) / "metrics.csv" for k in repeats],
        args.out / "comparison.csv", names=("nnU-Net", "FilterNet"),
    )  # fmt: skip
    print(result.table_markdown, "", *result.summary, sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
