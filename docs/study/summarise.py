"""The tables of docs/study.md from a finished ``filternet demo --preset study`` work folder.

Usage: ``python docs/study/summarise.py WORKDIR [--out docs/study]``. Prints Markdown; writes the comparison
(``filternet compare`` of FilterNet against stock nnU-Net over all repeats, CSV + figure) into ``--out``.
Reads only what the demo wrote: ``outputs/[r<k>/]<trainer>/metrics_per_subject.csv``, the final
checkpoints' gate state, ``demo_state.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

REFERENCE, CANDIDATE = "nnUNetTrainer", "nnUNetTrainerFilterNet"
COMPARTMENTS = ("TA", "TP", "Sol", "Gas", "PL")


def trainer_out(workdir: Path, trainer: str, k: int) -> Path:
    return workdir / "outputs" / trainer if k == 1 else workdir / "outputs" / f"r{k}" / trainer


def per_subject(workdir: Path, trainer: str, k: int, metric: str) -> dict[tuple[str, str], float]:
    """(subject, compartment) -> value (Dice in %, distances in mm; inf kept)."""
    path = trainer_out(workdir, trainer, k) / "metrics_per_subject.csv"
    scale = 100.0 if metric == "dice" else 1.0
    out = {}
    for row in csv.DictReader(open(path, encoding="utf-8")):
        text = row[metric]
        if text not in ("", "nan"):
            out[(row["subject"], row["compartment"])] = float(text) * scale
    return out


def mean_sd(values: np.ndarray) -> str:
    """``mean ± sd`` (sample sd), ``n/a`` parts where there are too few values."""
    if values.size == 0:
        return "n/a"
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if values.size > 1 else f"{values.mean():.1f}"


def model_table(workdir: Path, repeats: int, metric: str, label: str) -> str:
    lines = [f"| {label} | " + " | ".join(COMPARTMENTS) + " | mean |", "|---" * (len(COMPARTMENTS) + 2) + "|"]
    for trainer in (CANDIDATE, REFERENCE):
        tables = [per_subject(workdir, trainer, k, metric) for k in range(1, repeats + 1)]
        subjects = sorted({s for t in tables for s, _ in t})
        cells, means = [], []
        for c in COMPARTMENTS:
            values = np.array([np.mean([t.get((s, c), math.nan) for t in tables]) for s in subjects])
            finite = values[np.isfinite(values)]
            note = "" if finite.size == values.size else f" ({values.size - finite.size} inf)"
            cells.append(mean_sd(finite) + note)
            means.append(values)
        subject_mean = np.mean(np.vstack(means), axis=0)
        finite = subject_mean[np.isfinite(subject_mean)]
        cells.append(mean_sd(finite))
        lines.append(f"| {trainer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def repeat_means(workdir: Path, repeats: int) -> str:
    lines = ["| model | " + " | ".join(f"repeat {k}" for k in range(1, repeats + 1)) + " |",
             "|---" * (repeats + 1) + "|"]  # fmt: skip
    for trainer in (CANDIDATE, REFERENCE):
        cells = []
        for k in range(1, repeats + 1):
            t = per_subject(workdir, trainer, k, "dice")
            cells.append(f"{np.mean(list(t.values())):.1f}")
        lines.append(f"| {trainer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sigma_table(workdir: Path, repeats: int, folds: list[int], budget_suffix: str, plans: str) -> str:
    from nnunet_filternet.training.edge_gate_owner import gate_state_from_checkpoint

    lines = ["| repeat | " + " | ".join(f"fold {f}" for f in folds) + " |", "|---" * (len(folds) + 1) + "|"]
    for k in range(1, repeats + 1):
        root = workdir / ("nnUNet_results" if k == 1 else f"nnUNet_results_r{k}") / "Dataset501_FilterNetPhantom"
        model = root / f"{CANDIDATE}{budget_suffix}__{plans}__3d_fullres"
        cells = []
        for f in folds:
            state = gate_state_from_checkpoint(model / f"fold_{f}" / "checkpoint_final.pth")
            cells.append(f"{math.exp(float(state['log_sigma'])):.3f}")  # the gate stores log sigma
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/study"))
    args = parser.parse_args()
    from nnunet_filternet.compare.files import compare_files
    from nnunet_filternet.training.budget import Budget

    state = json.loads((args.workdir / "demo_state.json").read_text(encoding="utf-8"))
    settings, done = state["settings"], state["done"]
    repeats = max([1] + [int(n.rsplit("_r", 1)[1]) for n in done if n.startswith("train_r")])
    budget = Budget(**settings["budget"])
    print(f"stages (s): {json.dumps(done)}; total {sum(done.values()):.0f} s; repeats {repeats}\n")
    print("DSC (%), mean ± sd over subjects (a subject: mean of its legs and of the repeats)\n")
    print(model_table(args.workdir, repeats, "dice", "DSC (%)") + "\n")
    print("ASSD (mm), same\n")
    print(model_table(args.workdir, repeats, "assd_mm", "ASSD (mm)") + "\n")
    print("cohort mean DSC (%) per repeat\n")
    print(repeat_means(args.workdir, repeats) + "\n")
    print("sigma at the end of training\n")
    from plans.presets import PLANS_NAMES

    plans = "nnUNetPlans" if settings["plans_preset"] is None else PLANS_NAMES[settings["plans_preset"]]
    print(sigma_table(args.workdir, repeats, settings["folds"], budget.suffix, plans) + "\n")
    result = compare_files(
        [trainer_out(args.workdir, REFERENCE, k) / "metrics.csv" for k in range(1, repeats + 1)],
        [trainer_out(args.workdir, CANDIDATE, k) / "metrics.csv" for k in range(1, repeats + 1)],
        args.out / "comparison.csv", names=("nnU-Net", "FilterNet"),
    )  # fmt: skip
    print(result.table_markdown, "", *result.summary, sep="\n")


if __name__ == "__main__":
    main()
