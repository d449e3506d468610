"""The figures of bench/qc_ranking.py from per-scan records: AUROC and its interval, signals per scan, flag counts."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from nnunet_filternet.bench.qc_ranking import SIGNALS, markdown, pool, scan_signal, stratified_bootstrap_auc, summarise


def test_auroc_and_its_stratified_interval():
    labels = np.array([1, 1, 0, 0, 0, 0], bool)
    perfect = stratified_bootstrap_auc(labels, np.array([5, 4, 3, 2, 1, 0]), n=200)
    assert perfect == (1.0, 1.0, 1.0)
    auc, low, high = stratified_bootstrap_auc(labels, np.array([5, 1.5, 3, 2, 1, 0]), n=500)
    assert auc == pytest.approx(6 / 8) and 0.0 < low < auc < high <= 1.0
    assert all(math.isnan(v) for v in stratified_bootstrap_auc(np.zeros(3, bool), np.arange(3.0)))


def test_a_scans_signal_over_its_rows():
    rows = [{"area_z": "-3.5", "fold_dice": "0.9", "anatomy_ok": "true"},
            {"area_z": "2.0", "fold_dice": "nan", "anatomy_ok": "false"}]  # fmt: skip
    assert scan_signal(rows, "area_z", "max_abs") == 3.5 and scan_signal(rows, "area_z", "max") == 2.0
    assert scan_signal(rows, "fold_dice", "min") == 0.9 and scan_signal(rows, "anatomy_ok", "false") == 1.0
    assert math.isnan(scan_signal([{"fold_dice": "nan"}], "fold_dice", "min"))


def _scan(name, degradation, dice, score, review):
    signals = dict.fromkeys(SIGNALS, float("nan"))
    signals["scan_score"] = score
    return {"subject": name, "degradation": degradation, "mean_dice": dice, "failed": dice < 0.8, "review": review,
            "signals": signals, "reasons": "r" if review else ""}  # fmt: skip


def test_summary_counts_flags_by_group_and_pools_work_folders(tmp_path):
    scans = [_scan("a", "none", 0.9, 0.5, False), _scan("b", "none", 0.85, 1.2, True),
             _scan("c", "noise", 0.6, 3.0, True), _scan("d", "bias", 0.92, 0.4, False)]  # fmt: skip
    result = summarise(scans, {}, {}, argparse.Namespace(x=1))
    assert result["failed"] == 1 and result["auroc"]["auroc"] == 1.0
    assert result["clean_flagged"] == [1, 2] and result["not_failed_flagged"] == [1, 3]
    assert result["failed_flagged"] == [1, 1]
    assert "clean scans flagged for review: 1 of 2 (50 %)" in markdown(result)
    for k in (1, 2):
        (tmp_path / f"w{k}").mkdir()
        (tmp_path / f"w{k}" / "qc_ranking.json").write_text(json.dumps(result))
    pooled = pool([str(tmp_path / "w1"), str(tmp_path / "w2")])
    assert pooled["scans"] == 8 and pooled["clean_flagged"] == [2, 4] and pooled["auroc"]["auroc"] == 1.0
