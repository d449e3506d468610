"""``filternet compare``: pairing, folds, averaging over legs and repeats, NaN / inf rules, verdicts, files, errors."""

from __future__ import annotations

import csv
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sps

from nnunet_filternet.cli import main
from nnunet_filternet.compare.comparison import COLUMNS, ComparisonRow, compare_models, verdict_of
from nnunet_filternet.compare.files import compare_files
from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.statistics.multiple import holm
from nnunet_filternet.statistics.power import detectable_difference
from tests.conftest import run_cli

EVALUATE_COLUMNS = ("case", "subject", "compartment", "dice", "assd_mm", "hd95_mm")
WITH_FOLD = ("case", "subject", "fold", "compartment", "dice", "assd_mm", "hd95_mm")
SUBJECTS = [f"s{i:02d}" for i in range(12)]


def four_folds(subject: str) -> str:
    """s00-s02 in fold 0, s03-s05 in fold 1, ..."""
    return str(int(subject[1:]) // 3)


def write_metrics(path, values, columns=EVALUATE_COLUMNS, reverse=False, fold_of=four_folds):
    """A per-case metrics CSV; ``values``: (subject, side, compartment) -> (dice, assd_mm, hd95_mm)."""
    items = sorted(values.items(), reverse=reverse)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for (subject, side, compartment), metrics in items:
            row = {"case": f"{subject}_{side}", "subject": subject, "compartment": compartment}
            if "fold" in columns:
                row["fold"] = fold_of(subject)
            row.update(zip(("dice", "assd_mm", "hd95_mm"), metrics))
            writer.writerow([row[c] for c in columns])
    return path


def cohort(dice, assd=1.0, compartments=("TA",), subjects=SUBJECTS):
    """Both legs of every subject alike; ``dice(i)`` / ``assd(i)`` per subject index (numbers or callables)."""

    def value(v, i):
        return v(i) if callable(v) else v

    return {
        (s, side, c): (value(dice, i), value(assd, i), 2 * value(assd, i))
        for i, s in enumerate(subjects)
        for side in "LR"
        for c in compartments
    }


def rows_of(result, compartment, metric):
    return next(r for r in result.rows if r.compartment == compartment and r.metric == metric)


def test_a_subjects_value_is_the_mean_of_its_legs_and_of_the_repeats(tmp_path):
    ref1 = cohort(0.80)
    ref1[("s00", "L", "TA")] = (0.70, 1.0, 2.0)  # s00: legs 0.70 / 0.80 in repeat 1, 0.90 / 0.90 in repeat 2
    ref2 = cohort(0.90)
    cand = cohort(lambda i: 0.85 + 0.001 * i)
    files = [write_metrics(tmp_path / f"{n}.csv", v) for n, v in (("r1", ref1), ("r2", ref2), ("c1", cand))]
    result = compare_files(files[:2], files[2:], tmp_path / "out.csv", metrics=["dice"])
    ta = rows_of(result, "TA", "dice")
    s00 = ((0.70 + 0.80) / 2 + 0.90) / 2
    assert ta.reference_mean == pytest.approx(100 * (s00 + 11 * 0.85) / 12)
    assert ta.candidate_mean == pytest.approx(100 * np.mean([0.85 + 0.001 * i for i in range(12)]))
    assert ta.difference == pytest.approx(ta.candidate_mean - ta.reference_mean)
    # no fold column: every subject is its own fold, so the run SD pools each subject's two repeats (12 df)
    repeats = np.array([[s00_r1 := 75.0] + [80.0] * 11, [90.0] * 12])
    assert s00_r1 == 100 * (0.70 + 0.80) / 2
    assert ta.run_sd_reference == pytest.approx(math.sqrt(((repeats - repeats.mean(0)) ** 2).sum() / 12))
    assert math.isnan(ta.run_sd_candidate)
    assert (ta.n_subjects, ta.n_folds, ta.n_repeats_reference, ta.n_repeats_candidate) == (12, 12, 2, 1)


def test_subjects_pair_by_name_not_by_row_order(tmp_path):
    """The candidate is the reference + 3 points for every subject; its file lists subjects in reverse order."""
    ref = cohort(lambda i: 0.60 + 0.02 * i)
    cand = cohort(lambda i: 0.63 + 0.02 * i)
    a = write_metrics(tmp_path / "ref.csv", ref)
    b = write_metrics(tmp_path / "cand.csv", cand, reverse=True)
    ta = rows_of(compare_files([a], [b], tmp_path / "out.csv", metrics=["dice"]), "TA", "dice")
    assert (ta.difference, ta.ci_low, ta.ci_high, ta.p) == pytest.approx((3.0, 3.0, 3.0, 0.0))


def test_infinite_distances_and_nan_are_left_out_and_counted(tmp_path):
    comps = ("TA", "TP")
    ref = cohort(0.8, assd=lambda i: 1.0 + 0.1 * i, compartments=comps)
    cand = cohort(0.9, assd=lambda i: 0.5 + 0.1 * i, compartments=comps)
    cand[("s03", "L", "TA")] = (0.0, math.inf, math.inf)  # missed in one leg: the subject's distance is +inf
    for side in "LR":  # TP absent from s05's scan and both predictions
        ref[("s05", side, "TP")] = cand[("s05", side, "TP")] = (math.nan, math.nan, math.nan)
    ref[("s07", "R", "TP")] = (math.nan, math.nan, math.nan)  # absent in one leg only: the other leg counts
    a = write_metrics(tmp_path / "ref.csv", ref, columns=WITH_FOLD)
    b = write_metrics(tmp_path / "cand.csv", cand, columns=WITH_FOLD)
    result = compare_files([a], [b], tmp_path / "out.csv")
    assert rows_of(result, "TA", "dice").n_subjects == 12  # Dice 0 is a number
    assert rows_of(result, "TA", "dice").n_folds == 4
    ta = rows_of(result, "TA", "assd_mm")
    assert (ta.n_subjects, ta.n_missed_candidate, ta.n_missed_reference, ta.n_absent) == (11, 1, 0, 0)
    # means over folds of the fold means: s03 is left out, so fold 1 averages s04 and s05 only
    fold_means = [np.mean([1.0 + 0.1 * i for i in range(3 * f, 3 * f + 3) if i != 3]) for f in range(4)]
    assert ta.reference_mean == pytest.approx(np.mean(fold_means))
    tp = rows_of(result, "TP", "dice")
    assert (tp.n_subjects, tp.n_absent) == (11, 1)
    mean_assd = rows_of(result, "mean", "assd_mm")  # s03's mean over compartments is +inf; s05 has TA only
    assert (mean_assd.n_subjects, mean_assd.n_missed_candidate) == (11, 1)
    text = "\n".join(result.summary)
    assert "TA assd_mm: left out: +inf (missed or hallucinated) in 0 subject(s) for baseline and 1 for" in text
    assert "TP dice: left out: 1 subject(s) with NaN (compartment absent); 11 used." in text
    assert "candidate missed compartments that baseline found: TA in 1 subject(s) (s03)." in text


def _fold_oracle(ref, cand, subjects, fold_of):
    """The rule written out with scipy: per-subject differences, fold means, one-sample t over the fold means."""
    d = {s: np.mean(cand[s]) - np.mean(ref[s]) for s in subjects}
    folds = sorted({fold_of(s) for s in subjects})
    means = np.array([np.mean([d[s] for s in subjects if fold_of(s) == f]) for f in folds])
    t = sps.ttest_1samp(means, 0.0)
    return means, t.pvalue, t.confidence_interval(0.95)


def test_the_fold_is_the_unit_of_the_test(tmp_path):
    """Two repeats each, four folds of three subjects: the row is the t over the 4 fold means (scipy's)."""
    rng = np.random.default_rng(8)
    runs = {(m, k, f): rng.normal(0, 0.03) for m in "rc" for k in (1, 2) for f in range(4)}  # shared by a fold
    base = {s: rng.uniform(0.6, 0.9) for s in SUBJECTS}

    def dice(model, k):
        return lambda i: base[SUBJECTS[i]] + (0.02 if model == "c" else 0) + runs[(model, k, i // 3)]

    files = {
        (m, k): write_metrics(tmp_path / f"{m}{k}.csv", cohort(dice(m, k)), columns=WITH_FOLD)
        for m in "rc"
        for k in (1, 2)
    }
    result = compare_files([files["r", 1], files["r", 2]], [files["c", 1], files["c", 2]], tmp_path / "out.csv",
                           metrics=["dice"])  # fmt: skip
    ta = rows_of(result, "TA", "dice")
    ref = {s: [100 * dice("r", k)(i) for k in (1, 2)] for i, s in enumerate(SUBJECTS)}
    cand = {s: [100 * dice("c", k)(i) for k in (1, 2)] for i, s in enumerate(SUBJECTS)}
    means, p, ci = _fold_oracle(ref, cand, SUBJECTS, four_folds)
    assert (ta.n_subjects, ta.n_folds) == (12, 4)
    assert (ta.difference, ta.p, ta.ci_low, ta.ci_high) == pytest.approx((means.mean(), p, ci.low, ci.high))
    assert ta.detectable_difference == pytest.approx(detectable_difference(np.std(means, ddof=1), 4))
    # run SD: each fold run's mean over its 3 subjects, deviations within folds, 4 x (2 - 1) df
    fold_runs = np.array(
        [[np.mean([ref[s][k] for s in SUBJECTS[3 * f : 3 * f + 3]]) for f in range(4)] for k in (0, 1)]
    )
    assert ta.run_sd_reference == pytest.approx(math.sqrt(((fold_runs - fold_runs.mean(0)) ** 2).sum() / 4))
    text = "\n".join(result.summary)
    assert "Unit of the test: the fold (4 folds" in text
    assert "Variance components, mean dice (percent points): run SD of a fold run" in text
    assert "(baseline, 4 df)" in text and "--subject-sd" in text
    with open(tmp_path / "out.csv", newline="") as f:
        assert next(csv.DictReader(f))["n_folds"] == "4"


def test_without_a_fold_column_every_subject_is_its_own_fold(tmp_path):
    ref = cohort(lambda i: 0.60 + 0.02 * i)
    cand = cohort(lambda i: 0.62 + 0.02 * i + 0.01 * (i % 3))
    a = write_metrics(tmp_path / "ref.csv", ref)
    b = write_metrics(tmp_path / "cand.csv", cand)
    result = compare_files([a], [b], tmp_path / "out.csv", metrics=["dice"])
    ta = rows_of(result, "TA", "dice")
    d = [2 + (i % 3) for i in range(12)]
    assert ta.n_folds == 12 and ta.p == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    assert "No fold column: every subject is its own fold" in "\n".join(result.summary)
    # the same data with folds: the 4 fold means of (2, 3, 4) are all 3, so the interval has no width
    a = write_metrics(tmp_path / "ref_f.csv", ref, columns=WITH_FOLD)
    b = write_metrics(tmp_path / "cand_f.csv", cand, columns=WITH_FOLD)
    ta = rows_of(compare_files([a], [b], tmp_path / "out.csv", metrics=["dice"]), "TA", "dice")
    assert (ta.n_folds, ta.ci_low, ta.ci_high) == (4, pytest.approx(3.0), pytest.approx(3.0))


def test_a_candidate_that_missed_everything_is_not_tested_and_reported(tmp_path):
    """Every distance of the candidate is +inf (n = 0): no test, not 'no difference detected' (issue 22)."""
    comps = ("TA", "TP")
    ref = cohort(0.8, assd=lambda i: 1.0 + 0.1 * i, compartments=comps)
    cand = cohort(0.8, assd=lambda i: 1.0 + 0.1 * i, compartments=comps)
    for s in SUBJECTS:
        for side in "LR":
            cand[(s, side, "TA")] = (0.0, math.inf, math.inf)
    a = write_metrics(tmp_path / "ref.csv", ref, columns=WITH_FOLD)
    b = write_metrics(tmp_path / "cand.csv", cand, columns=WITH_FOLD)
    result = compare_files([a], [b], tmp_path / "out.csv", names=("nnU-Net", "FilterNet"))
    for metric in ("assd_mm", "hd95_mm"):
        row = rows_of(result, "TA", metric)
        assert (row.n_subjects, row.verdict) == (0, "not tested: no usable pair")
        assert rows_of(result, "mean", metric).verdict == "not tested: no usable pair"
    assert rows_of(result, "TA", "dice").verdict == "worse"  # Dice 0 is a number: the miss counts there
    text = "\n".join(result.summary)
    assert "FilterNet missed compartments that nnU-Net found: TA in 12 subject(s) (s00, s01" in text
    assert "4 not tested: no usable pair" in text
    assert (
        "TA assd_mm: left out: +inf (missed or hallucinated) in 0 subject(s) for nnU-Net and 12 for FilterNet" in text
    )
    with open(tmp_path / "out.csv", newline="") as f:
        ta = next(r for r in csv.DictReader(f) if (r["compartment"], r["metric"]) == ("TA", "assd_mm"))
    assert ta["verdict"] == "not tested: no usable pair" and ta["p"] == "nan"
    # one fold left: no test either
    one = {k: v for k, v in ref.items() if four_folds(k[0]) == "0"}
    one_c = {k: (v[0] + 0.05, v[1], v[2]) for k, v in one.items()}
    a = write_metrics(tmp_path / "ref1.csv", one, columns=WITH_FOLD)
    b = write_metrics(tmp_path / "cand1.csv", one_c, columns=WITH_FOLD)
    result = compare_files([a], [b], tmp_path / "out1.csv", metrics=["dice"])
    row = rows_of(result, "TA", "dice")
    assert (row.n_folds, row.verdict) == (1, "not tested: one fold")
    assert "TA dice: not tested: one fold (3 subject(s) with a finite value for both models, all in one fold)." in (
        result.summary
    )


def _row(**changes) -> ComparisonRow:
    base = ComparisonRow(
        compartment="TA", metric="dice", n_subjects=12, n_folds=4, n_repeats_reference=3, n_repeats_candidate=3,
        reference_mean=80.0, candidate_mean=85.0, difference=5.0, ci_low=3.0, ci_high=7.0, p=0.001, p_holm=0.01,
        run_sd_reference=0.5, run_sd_candidate=0.5, detectable_difference=4.0, verdict="",
    )  # fmt: skip
    return replace(base, **changes)


@pytest.mark.parametrize(
    "changes, verdict",
    [
        ({}, "better"),
        ({"metric": "assd_mm"}, "worse"),  # lower distances are better
        ({"difference": -5.0, "ci_low": -7.0, "ci_high": -3.0}, "worse"),
        ({"difference": -5.0, "ci_low": -7.0, "ci_high": -3.0, "metric": "hd95_mm"}, "better"),
        ({"p_holm": 0.06}, "no difference detected"),  # p < alpha alone is not enough: Holm's p decides
        ({"p": 0.2, "p_holm": 0.04}, "better"),
        ({"n_repeats_candidate": 1, "run_sd_candidate": float("nan")}, "better"),  # valid with one repeat
        ({"detectable_difference": 50.0}, "better"),  # a diagnostic, not a gate
        ({"p": float("nan"), "p_holm": float("nan")}, "no difference detected"),
        ({"n_subjects": 0, "n_folds": 0, "p": float("nan"), "p_holm": float("nan")}, "not tested: no usable pair"),
        ({"n_folds": 1, "p": float("nan"), "p_holm": float("nan")}, "not tested: one fold"),
    ],
)
def test_verdict_rule(changes, verdict):
    assert verdict_of(_row(**changes), alpha=0.05) == verdict


def _subject_rows(values: dict[str, float], compartment="TA", folds=None) -> list[dict]:
    rows = [{"subject": s, "compartment": compartment, "dice": v} for s, v in values.items()]
    return rows if folds is None else [{**r, "fold": folds[r["subject"]]} for r in rows]


def test_holm_runs_over_every_row_of_the_run():
    rng = np.random.default_rng(3)
    reference = [_subject_rows({s: rng.uniform(0.6, 0.9) for s in SUBJECTS})]
    candidates = {
        name: [_subject_rows({s: v["dice"] + shift + rng.normal(0, 0.02) for s, v in zip(SUBJECTS, reference[0])})]
        for name, shift in (("A", 0.02), ("B", 0.0))
    }
    result = compare_models(reference, candidates, metrics=["dice"])
    rows = result["A"] + result["B"]
    assert len(rows) == 4  # TA and mean, per candidate
    assert [r.p_holm for r in rows] == pytest.approx(list(holm([r.p for r in rows])))
    assert rows[0].p_holm > rows[0].p  # the adjustment is applied


def test_repeats_must_hold_the_same_subjects():
    reference = [_subject_rows({"a": 0.8, "b": 0.7}), _subject_rows({"a": 0.8, "c": 0.7})]
    with pytest.raises(FilterNetError, match="repeat 2 of the reference lacks b and adds c"):
        compare_models(reference, {"x": [_subject_rows({"a": 0.8, "b": 0.7})]}, metrics=["dice"])
    with pytest.raises(FilterNetError, match="only in the reference: b; only in the candidate: c"):
        compare_models(reference[:1], {"x": [_subject_rows({"a": 0.8, "c": 0.7})]}, metrics=["dice"])


def test_a_subject_in_two_folds_is_an_error():
    values = {"a": 0.8, "b": 0.7, "c": 0.6}
    folds = {"a": "0", "b": "1", "c": "1"}
    moved = {**folds, "b": "0"}
    reference = [_subject_rows(values, folds=folds), _subject_rows(values, folds=moved)]
    with pytest.raises(FilterNetError, match="subject b is in fold 1 in repeat 1 of the reference and in fold 0 in "
                                             "repeat 2 of the reference"):  # fmt: skip
        compare_models(reference, {"x": [_subject_rows(values, folds=folds)]}, metrics=["dice"])
    with pytest.raises(FilterNetError, match="subject b is in fold 1 in repeat 1 of the reference and in fold 0 in "
                                             "repeat 1 of x"):  # fmt: skip
        compare_models(reference[:1], {"x": [_subject_rows(values, folds=moved)]}, metrics=["dice"])


def test_cli_writes_the_csv_the_figure_and_prints_the_table(tmp_path):
    ref = [write_metrics(tmp_path / f"ref{k}.csv", cohort(lambda i, k=k: 0.70 + 0.01 * i + 0.002 * k)) for k in (1, 2)]
    cand = [
        write_metrics(tmp_path / f"cand{k}.csv", cohort(lambda i, k=k: 0.75 + 0.01 * i - 0.002 * k)) for k in (1, 2)
    ]
    before = [p.read_bytes() for p in ref + cand]
    out = tmp_path / "out" / "comparison.csv"
    r = run_cli("compare", "--baseline", *ref, "--candidate", *cand, "--names", "nnU-Net", "FilterNet", "--csv", out)
    assert r.returncode == 0, r.stderr
    with open(out, newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == COLUMNS
    assert [row[:2] for row in table[1:]] == [[c, m] for c in ("TA", "mean") for m in ("dice", "assd_mm", "hd95_mm")]
    assert (out.with_suffix(".png")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| TA | DSC (%) | 12 (12) |" in r.stdout and "FilterNet against nnU-Net:" in r.stdout
    assert [p.read_bytes() for p in ref + cand] == before  # inputs untouched
    # one repeat: run SDs are empty; the verdict needs no second run
    single = tmp_path / "single.csv"
    assert main(["compare", "--baseline", str(ref[0]), "--candidate", str(cand[0]), "--csv", str(single)]) == 0
    with open(tmp_path / "single.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["run_sd_reference"] == "" and rows[0]["verdict"] == "better"
    assert float(rows[0]["detectable_difference"]) > 0


@pytest.mark.parametrize("name", ["comparison.png", "comparison"])
def test_a_csv_name_the_figure_would_replace_is_refused(tmp_path, name):
    """The figure goes to --csv with the suffix .png: a --csv of that name (or none) would be overwritten by it."""
    ref = write_metrics(tmp_path / "ref.csv", cohort(0.8))
    cand = write_metrics(tmp_path / "cand.csv", cohort(0.9))
    out = tmp_path / name
    r = run_cli("compare", "--baseline", ref, "--candidate", cand, "--csv", out)
    if name.endswith(".png"):
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert f"{out}: expected a CSV file name for --csv, not a .png" in r.stderr and not out.exists()
    else:  # no suffix: the figure gets one, the CSV keeps its name
        assert r.returncode == 0, r.stderr
        assert out.read_text().startswith(COLUMNS[0]) and out.with_suffix(".png").exists()


def _bad_inputs(tmp_path):
    good = write_metrics(tmp_path / "good.csv", cohort(0.8))
    other = write_metrics(tmp_path / "other.csv", cohort(0.9))
    copy = tmp_path / "copy.csv"
    shutil.copy(other, copy)
    no_hd95 = write_metrics(tmp_path / "no_hd95.csv", cohort(0.9), columns=EVALUATE_COLUMNS[:-1])
    unpaired = write_metrics(tmp_path / "unpaired.csv", cohort(0.9, subjects=SUBJECTS[:-1] + ["zz"]))
    percent = write_metrics(tmp_path / "percent.csv", cohort(85.0))
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    header_only = tmp_path / "header_only.csv"
    header_only.write_text(",".join(EVALUATE_COLUMNS) + "\n")
    words = tmp_path / "words.csv"
    words.write_text(",".join(EVALUATE_COLUMNS) + "\ns00_L,s00,TA,high,1,2\n")
    twice = tmp_path / "twice.csv"
    twice.write_text(",".join(EVALUATE_COLUMNS) + "\ns00_L,s00,TA,0.8,1,2\ns00_L,s00,TA,0.7,1,2\n")
    biomarkers = tmp_path / "biomarkers.csv"
    biomarkers.write_text("subject,side,compartment,volume_ml\ns00,L,TA,12.5\n")
    folded = write_metrics(tmp_path / "folded.csv", cohort(0.85), columns=WITH_FOLD)
    refolded = write_metrics(tmp_path / "refolded.csv", cohort(0.86), columns=WITH_FOLD,
                             fold_of=lambda s: "9" if s == "s04" else four_folds(s))  # fmt: skip
    split_legs = tmp_path / "split_legs.csv"
    split_legs.write_text(",".join(WITH_FOLD) + "\ns00_L,s00,0,TA,0.8,1,2\ns00_R,s00,1,TA,0.7,1,2\n")
    no_fold = tmp_path / "no_fold.csv"
    no_fold.write_text(",".join(WITH_FOLD) + "\ns00_L,s00,,TA,0.8,1,2\n")
    return good, {
        "missing": ([good], [tmp_path / "nope.csv"], "nope.csv: expected a filternet evaluate metrics CSV"),
        "no column": ([good], [no_hd95], "no_hd95.csv: expected", "column(s) hd95_mm; found columns: case, subject"),
        "not a metrics table": ([good], [biomarkers], "biomarkers.csv: expected a filternet evaluate metrics CSV"),
        "not text": ([good], [binary], "binary.csv: expected a filternet evaluate metrics CSV"),
        "no rows": ([good], [header_only], "header_only.csv: expected", "with rows, found only the header"),
        "not a number": ([good], [words], "words.csv: line 2: dice = 'high' is not a number"),
        "row twice": ([good], [twice], "twice.csv: line 3: case 's00_L', compartment 'TA' repeats line 2"),
        "dice in percent": ([good], [percent], "percent.csv: line 2: dice = 85.0 is outside [0, 1]"),
        "unpaired": ([good], [unpaired], "unpaired.csv: subjects do not pair with"),
        "same path twice": ([good, good], [other], "good.csv: is given twice"),
        "same contents": ([good], [other, copy], "copy.csv: has the same contents as"),
        "fold differs": ([folded], [refolded], "subject s04 is in fold 1 in", "folded.csv and in fold 9 in",
                         "refolded.csv"),
        "fold in one file only": ([good], [folded], "good.csv: expected a fold column, as in", "folded.csv"),
        "legs in two folds": ([folded], [split_legs], "split_legs.csv: line 3: subject s00 is in fold 1 here and "
                              "in fold 0 on line 2"),
        "empty fold": ([folded], [no_fold], "no_fold.csv: line 2: empty fold"),
    }  # fmt: skip


def test_bad_input_is_one_line_naming_the_file_exit_2(tmp_path, capsys):
    good, cases = _bad_inputs(tmp_path)
    for name, (reference, candidate, *messages) in cases.items():
        args = ["compare", "--baseline", *map(str, reference), "--candidate", *map(str, candidate)]
        code = main(args + ["--csv", str(tmp_path / "out.csv")])
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.startswith("filternet compare: error: ") and err.count("\n") == 1, (name, err)
        assert all(m in err for m in messages), (name, err)
    assert not (tmp_path / "out.csv").exists()
    code = main(["compare", "--baseline", str(good), "--candidate", str(good.with_name("other.csv")), "--csv",
                 str(tmp_path / "out.csv"), "--metrics", "asd_pred_to_ref_mm"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "good.csv: expected a filternet evaluate metrics CSV" in err
    assert "with column(s) asd_pred_to_ref_mm; found columns: case, subject" in err


@pytest.mark.parametrize("option", [["--alpha", "1.5"], ["--metrics", "volume_ref_ml"], ["--names", "a"]])
def test_cli_misuse_exits_2(tmp_path, option):
    good = write_metrics(tmp_path / "good.csv", cohort(0.8))
    other = write_metrics(tmp_path / "other.csv", cohort(0.9))
    with pytest.raises(SystemExit) as e:
        main(["compare", "--baseline", str(good), "--candidate", str(other), "--csv", str(tmp_path / "o.csv"), *option])
    assert e.value.code == 2


def test_the_interval_level_is_one_minus_alpha():
    rng = np.random.default_rng(4)
    folds = {s: four_folds(s) for s in SUBJECTS}
    reference = [_subject_rows({s: rng.uniform(0.6, 0.9) for s in SUBJECTS}, folds=folds)]
    candidate = [_subject_rows({r["subject"]: r["dice"] + rng.normal(0.02, 0.02) for r in reference[0]}, folds=folds)]
    half, detectable = {}, {}
    for alpha in (0.05, 0.01):
        ta = compare_models(reference, {"x": candidate}, metrics=["dice"], alpha=alpha)["x"][0]
        half[alpha], detectable[alpha] = ta.ci_high - ta.difference, ta.detectable_difference
        assert ta.difference - ta.ci_low == pytest.approx(half[alpha])
    ratio = sps.t.ppf(0.995, 3) / sps.t.ppf(0.975, 3)  # 4 folds: 3 degrees of freedom
    assert half[0.01] / half[0.05] == pytest.approx(ratio)
    assert detectable[0.01] > detectable[0.05]
