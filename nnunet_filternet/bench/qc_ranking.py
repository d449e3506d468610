"""How well the quality check ranks failed segmentations: a degraded held-out phantom cohort, predicted and scored.

Steps (each skipped when its output exists, so a rerun continues):

1. ``filternet phantom --degrade``: a held-out cohort (another seed than the model's training cohort) in which a
   share of the scans fail the ways scans fail (:mod:`nnunet_filternet.phantom.degrade`).
2. Conversion with ``keep_going``: scans the conversion refuses (e.g. a doubtful leg split) are listed as
   *refused* (the pipeline reports them instead of segmenting them) and left out of the ranking.
3. ``filternet predict`` of the others with the given model: label maps, ``biomarkers.csv``, ``qc.csv``.
4. Each scan scored against its phantom labels (``filternet evaluate``'s Dice, both legs pooled per compartment),
   its mean Dice over the compartments; a scan is *failed* when that is below :data:`FAILED_BELOW`.
5. The ranking: AUROC of ``scan_score`` for failed against the other scans, with a stratified bootstrap 95 %
   interval (:data:`BOOTSTRAP` resamples, seeded); the AUROC of each signal alone (its worst value over the
   scan's rows, oriented so that larger is more suspect); how many clean (not degraded) scans and how many
   scans that did not fail are flagged for review.

Usage::

    python -m nnunet_filternet.bench.qc_ranking --results $nnUNet_results/Dataset501_FilterNetPhantom \\
        --trainer nnUNetTrainer_40epochs_40iters_4val --plans nnUNetPlans_tiny --work WORK \\
        [--subjects 24 --degrade 0.58 --seed 1 --shape 256 256 16 --spacing 1.4 1.4 7] [--device cpu] [-j 1]

Writes ``WORK/qc_ranking.json`` (every figure) and ``WORK/qc_ranking.md`` (the tables), and prints the latter;
``--pool WORK1 WORK2 ...`` prints the figures of finished work folders taken together.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

#: A scan whose mean Dice over its compartments is below this failed.
FAILED_BELOW = 0.80
#: Bootstrap resamples of the AUROC interval.
BOOTSTRAP = 2000

#: Signals ranked alone: qc.csv column -> (how a scan's rows are combined, +1 if larger is more suspect).
SIGNALS: dict[str, tuple[str, int]] = {
    "scan_score": ("max", 1),
    "data_score": ("max", 1),
    "area_z": ("max_abs", 1),
    "share_z": ("max_abs", 1),
    "lr_z": ("max_abs", 1),
    "fragments": ("max", 1),
    "fold_dice": ("min", -1),
    "entropy": ("max", 1),
    "contrast": ("min", -1),
    "fov_slices": ("max", 1),
    "anatomy_ok": ("false", 1),
    "legs_found": ("min", -1),
    "snr": ("min", -1),
    "bias_gain": ("max", 1),
}


def stratified_bootstrap_auc(labels: np.ndarray, scores: np.ndarray, n: int = BOOTSTRAP, seed: int = 0):
    """(AUROC, 2.5th, 97.5th percentile) over ``n`` resamples drawn within each class (both classes always present).

    Returns NaNs when one class is empty.
    """
    from sklearn.metrics import roc_auc_score

    labels, scores = np.asarray(labels, bool), np.asarray(scores, float)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    if not pos.size or not neg.size:
        return float("nan"), float("nan"), float("nan")
    auc = float(roc_auc_score(labels, scores))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        draws.append(roc_auc_score(labels[idx], scores[idx]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return auc, float(low), float(high)


def scan_signal(rows: list[dict], column: str, how: str) -> float:
    """One scan's value of a qc.csv column over its rows (``how``: max, min, max_abs, false); NaN if none."""
    if how == "false":
        values = [r[column] for r in rows if r[column] != ""]
        return float(any(v == "false" for v in values)) if values else float("nan")
    values = [float(r[column]) for r in rows if r[column] not in ("", "nan")]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return float("nan")
    if how == "max_abs":
        return max(abs(v) for v in values)
    return max(values) if how == "max" else min(values)


def mean_dice(pred: Path, ref: Path) -> float:
    """Mean over compartments of the Dice of both legs pooled (NaN compartments, absent in both, left out)."""
    from nnunet_filternet.metrics.evaluate import evaluate_pair
    from nnunet_filternet.metrics.matching import CasePair

    rows = evaluate_pair(CasePair(pred.name, pred, ref))
    return float(np.nanmean([r["dice"] for r in rows]))


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def make_cohort(args, cohort: Path) -> None:
    from nnunet_filternet.phantom import make_cohort as phantom

    if not (cohort / "degradations.csv").is_file():
        phantom(
            cohort, n_subjects=args.subjects, n_healthy=round(args.subjects / 4), seed=args.seed,
            shape=tuple(args.shape), spacing=tuple(args.spacing), degrade=args.degrade, jobs=args.jobs,
        )  # fmt: skip


def convertible(cohort: Path, work: Path, jobs: int | None) -> tuple[Path, dict[str, str]]:
    """A folder of links to the scans the conversion accepts (converted into predict's folder), and the refused ones."""
    from nnunet_filternet.dataset_conversion.convert import inference_conversion

    folder = work / "scans"
    folder.mkdir(parents=True, exist_ok=True)
    for image in sorted((cohort / "images").glob("*.nii.gz")):
        link = folder / image.name
        if not link.is_symlink():
            link.symlink_to(image.resolve())
    result = inference_conversion(folder, work / "predicted" / ".legs" / "images", jobs=jobs, keep_going=True)
    refused = {Path(source).name[: -len(".nii.gz")]: reason for source, reason in result.failed.items()}
    for subject in refused:
        (folder / f"{subject}.nii.gz").unlink(missing_ok=True)
    return folder, refused


def measure(args) -> dict:
    """Steps 1-5 of the module docstring; returns every figure (also written to ``WORK/qc_ranking.json``)."""
    from nnunet_filternet.pipeline.predict import predict_scans
    from nnunet_filternet.utils.atomic import write_json, write_text

    work = Path(args.work).absolute()
    cohort = work / "cohort"
    make_cohort(args, cohort)
    refused_file = work / "refused.json"
    if refused_file.is_file():
        scans, refused = work / "scans", json.loads(refused_file.read_text(encoding="utf-8"))
    else:
        scans, refused = convertible(cohort, work, args.jobs)
        write_json(refused_file, refused)
    predicted = work / "predicted"
    if not (predicted / "qc.csv").is_file():
        predict_scans(
            scans, predicted, args.results, trainer=args.trainer, plans=args.plans, configuration=args.configuration,
            device=args.device, jobs=args.jobs, disable_tta=args.disable_tta,
        )  # fmt: skip
    degradation = {r["subject"]: r for r in _read_csv(cohort / "degradations.csv")}
    qc_rows: dict[str, list[dict]] = {}
    for row in _read_csv(predicted / "qc.csv"):
        qc_rows.setdefault(row["subject"], []).append(row)
    scans_out = []
    for subject, rows in sorted(qc_rows.items()):
        dice = mean_dice(predicted / f"{subject}.nii.gz", cohort / "labels" / f"{subject}.nii.gz")
        reasons = next((r["reasons"] for r in rows if r["review"] == "yes"), "")
        scans_out.append({
            "subject": subject, "degradation": degradation[subject]["degradation"], "mean_dice": dice,
            "failed": bool(dice < FAILED_BELOW), "review": any(r["review"] == "yes" for r in rows),
            "signals": {c: scan_signal(rows, c, how) for c, (how, _) in SIGNALS.items()},
            "reasons": reasons,
        })  # fmt: skip
    result = summarise(scans_out, refused, degradation, args)
    write_json(work / "qc_ranking.json", result)
    write_text(work / "qc_ranking.md", markdown(result))
    return result


def summarise(scans: list[dict], refused: dict[str, str], degradation: dict, args) -> dict:
    """The figures of step 5 from the per-scan records."""
    failed = np.array([s["failed"] for s in scans])
    signals = {}
    for column, (_, sign) in SIGNALS.items():
        values = np.array([s["signals"][column] for s in scans], float)
        have = np.isfinite(values)
        auc, low, high = stratified_bootstrap_auc(failed[have], sign * values[have])
        signals[column] = {"auroc": auc, "ci95": [low, high], "scans": int(have.sum())}
    clean = [s for s in scans if s["degradation"] == "none"]
    good = [s for s in scans if not s["failed"]]
    return {
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "failed_below": FAILED_BELOW,
        "scans": len(scans),
        "failed": int(failed.sum()),
        "refused": refused,
        "refused_degradations": {s: degradation[s]["degradation"] for s in refused},
        "auroc": signals["scan_score"],
        "signals": signals,
        "clean_flagged": [sum(s["review"] for s in clean), len(clean)],
        "not_failed_flagged": [sum(s["review"] for s in good), len(good)],
        "failed_flagged": [sum(s["review"] for s in scans if s["failed"]), int(failed.sum())],
        "per_scan": scans,
    }


def pool(works: list[str]) -> dict:
    """:func:`summarise` over the scans of several finished work folders (their ``qc_ranking.json``) together."""
    results = [json.loads((Path(w) / "qc_ranking.json").read_text(encoding="utf-8")) for w in works]
    scans = [s for r in results for s in r["per_scan"]]
    refused = {f"{w}:{s}": reason for w, r in zip(works, results) for s, reason in r["refused"].items()}
    kinds = {
        f"{w}:{s}": {"degradation": k} for w, r in zip(works, results) for s, k in r["refused_degradations"].items()
    }
    return summarise(scans, refused, kinds, argparse.Namespace(pooled=list(works)))


def _pct(pair) -> str:
    k, n = pair
    return f"{k} of {n} ({100 * k / n:.0f} %)" if n else "none"


def markdown(result: dict) -> str:
    """The tables of docs/qc.md from :func:`summarise`'s figures."""
    a = result["auroc"]
    lines = [
        f"Scans ranked: {result['scans']} ({result['failed']} failed: mean Dice < "
        f"{100 * result['failed_below']:.0f} %); refused by the conversion: {len(result['refused'])} "
        f"{sorted(result['refused_degradations'].items())}",
        "",
        f"- AUROC of scan_score, failed vs not: **{a['auroc']:.3f}** (95 % stratified bootstrap "
        f"{a['ci95'][0]:.3f}-{a['ci95'][1]:.3f})",
        f"- clean scans flagged for review: {_pct(result['clean_flagged'])}",
        f"- scans that did not fail flagged: {_pct(result['not_failed_flagged'])}",
        f"- failed scans flagged: {_pct(result['failed_flagged'])}",
        "",
        "| signal | AUROC alone | 95 % interval | scans with it |",
        "|---|---|---|---|",
    ]
    for name, s in result["signals"].items():
        lines.append(f"| {name} | {s['auroc']:.3f} | {s['ci95'][0]:.3f}-{s['ci95'][1]:.3f} | {s['scans']} |")
    lines += [
        "",
        "| scan | degradation | mean Dice | failed | score | review | first reasons |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in sorted(result["per_scan"], key=lambda s: -s["signals"]["scan_score"]):
        reasons = "; ".join(s["reasons"].split("; ")[:2])
        lines.append(
            f"| {s['subject']} | {s['degradation']} | {100 * s['mean_dice']:.1f} | {'yes' if s['failed'] else 'no'} "
            f"| {s['signals']['scan_score']:.2f} | {'yes' if s['review'] else 'no'} | {reasons} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nnunet_filternet.bench.qc_ranking", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--results", help="$nnUNet_results/DatasetNNN_NAME of the trained model")
    parser.add_argument("--trainer")
    parser.add_argument("--plans", default=None)
    parser.add_argument("--configuration", default="3d_fullres")
    parser.add_argument("--work", help="work folder (cohort, predictions, results)")
    parser.add_argument("--subjects", type=int, default=24)
    parser.add_argument("--degrade", type=float, default=0.58, help="share of the cohort degraded (0.58: 14 of 24)")
    parser.add_argument("--seed", type=int, default=1, help="cohort seed (the demo trains on seed 0)")
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 16])
    parser.add_argument("--spacing", type=float, nargs=3, default=[1.4, 1.4, 7.0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--disable-tta", action="store_true")
    parser.add_argument("-j", "--jobs", type=int, default=None)
    parser.add_argument(
        "--pool", nargs="+", metavar="WORK", help="only print the figures of finished work folders pooled"
    )
    args = parser.parse_args(argv)
    if args.pool:
        print(markdown(pool(args.pool)))
        return 0
    if not (args.results and args.trainer and args.work):
        parser.error("--results, --trainer and --work are needed (or --pool)")
    from nnunet_filternet.errors import FilterNetError

    try:
        result = measure(args)
    except FilterNetError as e:
        print(f"qc_ranking: error: {e}", file=sys.stderr)
        return 2
    print(markdown(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
