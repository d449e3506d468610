"""``filternet report`` on a fake nnU-Net results folder (tests/results_fixture.py)."""

from __future__ import annotations

import csv
import shutil

import pytest

from nnunet_filternet.cli import main
from nnunet_filternet.compare.comparison import COLUMNS as COMPARISON_COLUMNS
from nnunet_filternet.compare.files import compare_files
from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.metrics import evaluate as evaluate_module
from nnunet_filternet.metrics.evaluate import read_rows
from nnunet_filternet.report import report as report_module
from nnunet_filternet.report.report import headline_table, write_report
from tests.conftest import run_cli
from tests.results_fixture import FAKE_PARAMETERS, checkpoint_sigma, make_results

TRAINERS = {
    "nnUNetTrainer": "bad",
    "nnUNetTrainerBUNet": "good",
    "nnUNetTrainerFilterNet": "good",
    "nnUNetTrainerFilterNetLaplacian": "bad",  # Table III's gates
    "nnUNetTrainerFilterNetFixedSigma_5epochs": "bad",
}
REFERENCE = "nnUNetTrainerFilterNet"


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("fake"), TRAINERS, gate_trainers=(REFERENCE,))


@pytest.fixture(scope="module")
def report_dir(fake, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("nnUNet_raw", str(fake.raw))
    mp.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    out = tmp_path_factory.mktemp("report")
    write_report(fake.dataset_results, list(TRAINERS), REFERENCE, out, jobs=1)
    mp.undo()
    return out


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_report_files_are_written(report_dir):
    text = (report_dir / "report.md").read_text()
    for heading in ("Table I:", "Table II:", "Table III:", "Largest-connected", "Learned sigma", "Fig. 5", "Fig. 4"):
        assert heading in text
    for name in ("fig5_metrics.png", "fig4_examples.png"):
        assert (report_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (report_dir / "metrics" / "nnUNetTrainer_per_subject.csv").is_file()
    assert headline_table(report_dir) in text


def test_table_one_marks_the_worse_trainer_only(report_dir):
    rows = {(r["metric"], r["compartment"], r["trainer"]): r for r in _csv(report_dir / "table1.csv")}
    bad = rows[("dice", "TA", "nnUNetTrainer")]
    assert float(bad["fold_t_p"]) < 0.05 and (bad["n_pairs"], bad["n_folds"]) == ("6", "2")
    assert float(bad["mean"]) < float(rows[("dice", "TA", REFERENCE)]["mean"])
    assert rows[("dice", "TA", REFERENCE)]["fold_t_p"] == "nan"
    headline = headline_table(report_dir)
    ta_line = next(line for line in headline.splitlines() if line.startswith("| TA |"))
    cells = [c.strip() for c in ta_line.strip("|").split("|")]
    assert cells[1].endswith("*")  # nnUNetTrainer DSC
    assert not cells[2].endswith("*") and not cells[3].endswith("*")
    assert "over the fold means of the per-subject differences" in headline
    # the mean over subjects is the mean of the per-subject CSV
    subjects = [
        r for r in read_rows(report_dir / "metrics" / "nnUNetTrainer_per_subject.csv") if r["compartment"] == "TA"
    ]
    assert float(bad["mean"]) == pytest.approx(100 * sum(r["dice"] for r in subjects) / len(subjects))


def test_table_two_from_checkpoints_and_logs(report_dir):
    rows = {r["trainer"]: r for r in _csv(report_dir / "table2.csv")}
    gate = rows[REFERENCE]
    assert gate["parameters"].startswith(f"{FAKE_PARAMETERS:,} ")  # BN running stats not counted
    assert "(log: 999)" in gate["parameters"]  # a disagreeing log line is shown, not hidden
    assert gate["peak memory (MiB)"] == "131.0" and gate["memory measured as"] == "process max RSS"
    assert gate["epoch time (s)"].startswith("12.0 ± ") and gate["epochs"] == "8"
    stock = rows["nnUNetTrainer"]
    assert stock["peak memory (MiB)"] == "n/a" and stock["parameters"].startswith(f"{FAKE_PARAMETERS:,} ")


def test_postprocessing_table_and_sigma(report_dir):
    rows = {(r["trainer"], r["compartment"]): r for r in _csv(report_dir / "postprocessing.csv")}
    ta = rows[("nnUNetTrainer", "TA")]  # a spurious TA island that post-processing removes
    assert float(ta["DSC after"].split()[0]) > float(ta["DSC before"].split()[0])
    assert float(ta["ASSD after"].split()[0]) < float(ta["ASSD before"].split()[0])
    assert rows[("nnUNetTrainer", "Sol")]["DSC after"] == rows[("nnUNetTrainer", "Sol")]["DSC before"]
    sigma = _csv(report_dir / "sigma.csv")
    assert [r["trainer"] for r in sigma] == [REFERENCE]  # only trainers that logged a gate
    # sigma exact from the checkpoint (the log shows 0.970 and 0.960); lambda from the last line of the later
    # session (logs ordered by date, not by name)
    assert sigma[0]["fold 0: sigma (lambda)"] == f"{checkpoint_sigma(0):.5f} (0.01)" == "0.97012 (0.01)"
    assert sigma[0]["fold 1: sigma (lambda)"] == f"{checkpoint_sigma(1):.5f} (0.01)" == "0.96012 (0.01)"


def test_sigma_of_a_fold_without_checkpoint_comes_from_its_log_and_is_marked(tmp_path):
    from nnunet_filternet.report.results import FoldRun, TrainerRun
    from nnunet_filternet.report.tables import sigma_table
    from nnunet_filternet.report.training import summarise_training
    from tests.results_fixture import fake_checkpoint, log_text

    folds = []
    for fold in (0, 1):
        fold_dir = tmp_path / f"fold_{fold}"
        fold_dir.mkdir()
        (fold_dir / "training_log_2026_9_5_10_00_00.txt").write_text(log_text(fold, range(4), True, True))
        folds.append(FoldRun(fold, fold_dir, {}))
    fake_checkpoint(tmp_path / "fold_1" / "checkpoint_latest.pth", sigma=0.987654321)
    summary = summarise_training(TrainerRun("T", tmp_path, tuple(folds)))
    assert summary.sigma_per_fold == pytest.approx({0: 0.97, 1: 0.987654321}, abs=1e-7)
    assert summary.sigma_logged_folds == {0}
    assert sigma_table([summary]).rows == [["T", "0.970* (0.01)", "0.98765 (0.01)"]]


def _subject_mean(report_dir, file: str, compartment: str, column: str) -> float:
    rows = [r for r in read_rows(report_dir / "metrics" / file) if r["compartment"] == compartment]
    return sum(r[column] for r in rows) / len(rows)


def test_table_three_has_the_papers_gate_rows_from_their_trainers(report_dir):
    rows = _csv(report_dir / "table3.csv")
    fixed = "nnUNetTrainerFilterNetFixedSigma_5epochs"
    expected = [
        ("F_L", "nnUNetTrainerFilterNetLaplacian"),
        ("F_LρG(σ = 1)", fixed),
        ("F_LρG(σ = 1) & LLC", fixed),
        ("F_LρG(·|σ)", REFERENCE),  # not the Laplacian or fixed-sigma trainers, whose names start alike
    ]
    assert [(r["gate"], r["trainer"]) for r in rows] == expected * 2
    assert [r["metric"] for r in rows] == ["ASSD (mm)"] * 4 + ["ASD pred→ref (mm)"] * 4
    by_gate = {r["gate"]: r for r in rows if r["metric"] == "ASSD (mm)"}
    assert list(by_gate["F_L"])[3:] == ["TA", "TP", "Sol", "Gas", "PL", "mean"]
    # each cell is the mean over subjects of the per-subject CSV: before, and after post-processing for LLC
    for gate, file in (
        ("F_LρG(σ = 1)", f"{fixed}_per_subject.csv"),
        ("F_LρG(σ = 1) & LLC", f"{fixed}_largest_component_per_subject.csv"),
    ):
        assert float(by_gate[gate]["TA"].split()[0]) == pytest.approx(
            _subject_mean(report_dir, file, "TA", "assd_mm"), abs=0.006
        )
    assert float(by_gate["F_LρG(σ = 1) & LLC"]["TA"].split()[0]) < float(by_gate["F_LρG(σ = 1)"]["TA"].split()[0])
    assert "## Table III: edge gates" in (report_dir / "report.md").read_text()


def test_table_three_names_its_trainers_when_none_is_reported(fake, tmp_path, monkeypatch):
    from nnunet_filternet.report import tables
    from nnunet_filternet.report.report import TABLE3_MISSING
    from nnunet_filternet.training import trainers

    for _, base, _ in tables.TABLE3_ROWS:  # the rows name real trainers
        assert getattr(trainers, base).__name__ == base and getattr(trainers, base + "Paper")
    assert tables.is_variant_of("nnUNetTrainerFilterNetPaper_demo", "nnUNetTrainerFilterNet")
    assert not tables.is_variant_of("nnUNetTrainerFilterNetLaplacianPaper", "nnUNetTrainerFilterNet")
    monkeypatch.setenv("nnUNet_raw", str(fake.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    report = write_report(fake.dataset_results, ["nnUNetTrainer"], "nnUNetTrainer", tmp_path / "out", jobs=1)
    assert TABLE3_MISSING in report.read_text() and not (tmp_path / "out" / "table3.csv").exists()


def test_results_folder_is_not_modified(fake, report_dir):
    folder = fake.dataset_results / f"{REFERENCE}__nnUNetPlans__3d_fullres" / "fold_0" / "validation"
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".nii.gz")) == ["summary.json"]


def test_rerun_reuses_metrics(fake, report_dir, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(fake.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    calls = []
    monkeypatch.setattr(evaluate_module, "_evaluate_or_error", lambda pair, postprocess: calls.append(pair))
    before = headline_table(report_dir)
    write_report(fake.dataset_results, list(TRAINERS), REFERENCE, report_dir, jobs=1)
    assert calls == [] and headline_table(report_dir) == before


def test_missing_predictions_and_trainers_are_listed(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    results = tmp_path / "Dataset900_Fake"
    shutil.copytree(
        fake.dataset_results / f"{REFERENCE}__nnUNetPlans__3d_fullres", results / "X__nnUNetPlans__3d_fullres"
    )
    for fold in ("fold_0", "fold_1"):
        shutil.rmtree(results / "X__nnUNetPlans__3d_fullres" / fold / "validation")
    with pytest.raises(FilterNetError) as e:
        write_report(results, ["X", "Missing"], "X", tmp_path / "out", jobs=1)
    message = str(e.value)
    assert "2 trainer(s)" in message
    assert "fold_0/validation, fold_1/validation" in message
    assert "Missing__nnUNetPlans__3d_fullres" in message and "present: X__nnUNetPlans__3d_fullres" in message
    with pytest.raises(FilterNetError, match="baseline trainer 'Y' is not among"):
        write_report(results, ["X"], "Y", tmp_path / "out")


def test_prediction_without_ground_truth_is_an_error(fake, tmp_path):
    gt = tmp_path / "gt"
    shutil.copytree(fake.preprocessed / "Dataset900_Fake" / "gt_segmentations", gt)
    (gt / "sub03_R.nii.gz").unlink()
    with pytest.raises(FilterNetError, match="no ground truth for 1 case.*sub03_R"):
        write_report(fake.dataset_results, [REFERENCE], REFERENCE, tmp_path / "out", gt_dir=gt, jobs=1)


@pytest.mark.parametrize("where", ["gt_segmentations", "imagesTr", "missing images"])
def test_an_output_among_the_default_inputs_or_missing_images_is_refused_before_any_work(fake, monkeypatch, where):
    """The default ground truth (gt_segmentations) and images (imagesTr) are inputs too; a missing --images
    folder is said before the trainers are evaluated."""
    monkeypatch.setenv("nnUNet_raw", str(fake.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    images = None
    if where == "gt_segmentations":
        out = fake.preprocessed / "Dataset900_Fake" / "gt_segmentations" / "report"
    elif where == "imagesTr":
        out = fake.raw / "Dataset900_Fake" / "imagesTr" / "report"
    else:
        out, images = fake.raw / "elsewhere", fake.raw / "no_such_images"
    evaluated = []
    monkeypatch.setattr(report_module, "_evaluate_trainers", lambda *a: evaluated.append(a))
    message = "expected a folder of images" if images else "lies inside the input folder"
    with pytest.raises(FilterNetError, match=message):
        write_report(fake.dataset_results, [REFERENCE], REFERENCE, out, images_dir=images, jobs=1)
    assert not out.exists() and not evaluated


def test_cli_prints_headline_table(fake, tmp_path):
    env = {"nnUNet_raw": fake.raw, "nnUNet_preprocessed": fake.preprocessed}
    args = ["--results", fake.dataset_results, "--trainers", "nnUNetTrainer", REFERENCE, "--baseline", REFERENCE]
    r = run_cli("report", *args, "--out", tmp_path / "out", "-j", "2", env=env)
    assert r.returncode == 0, r.stderr
    assert "| TA |" in r.stdout and "report.md" in r.stdout
    r = run_cli("report", *args[:-1], "Nobody", "--out", tmp_path / "out2", env=env)
    assert r.returncode == 2 and r.stderr.startswith("filternet report: error:")


def test_partial_cross_validation_is_reported_not_hidden(fake, tmp_path, monkeypatch):
    """A trainer with fold 1 not yet predicted: its missing cases are listed and its tests use fewer pairs."""
    monkeypatch.setenv("nnUNet_raw", str(fake.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    results = tmp_path / "Dataset900_Fake"
    for trainer in ("nnUNetTrainer", REFERENCE):
        name = f"{trainer}__nnUNetPlans__3d_fullres"
        shutil.copytree(fake.dataset_results / name, results / name)
    shutil.rmtree(results / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_1" / "validation")
    report = write_report(results, ["nnUNetTrainer", REFERENCE], REFERENCE, tmp_path / "out", jobs=1)
    text = report.read_text()
    assert "nnUNetTrainer: 6 of 12 ground-truth cases predicted (folds 0); not predicted: sub01_L" in text
    rows = {(r["metric"], r["compartment"], r["trainer"]): r for r in _csv(tmp_path / "out" / "table1.csv")}
    assert (rows[("dice", "TA", "nnUNetTrainer")]["n_pairs"], rows[("dice", "TA", "nnUNetTrainer")]["n_folds"]) == (
        "3", "1"
    )  # fmt: skip
    assert rows[("dice", "TA", REFERENCE)]["n"] == "6"


def test_checkpoint_parameter_count_counts_shared_tensors_once(tmp_path):
    """nnU-Net's networks register each conv twice (conv / all_modules) and the decoder holds the encoder."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    from nnunet_filternet.report.checkpoints import checkpoint_parameters

    net = PlainConvUNet(1, 3, (4, 8, 16), torch.nn.Conv3d, 3, (1, 2, 2), 2, 3, 2, True, torch.nn.BatchNorm3d)
    assert len(net.state_dict()) > len(list(net.parameters())) + 3 * 6  # duplicates and BN statistics present
    torch.save({"network_weights": net.state_dict()}, tmp_path / "checkpoint_final.pth")
    assert checkpoint_parameters(tmp_path / "checkpoint_final.pth") == sum(p.numel() for p in net.parameters())


# ---- training repeats: one results root per repeat ------------------------------------------------------------

REPEATED = {REFERENCE: "good", "nnUNetTrainer": "bad"}


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    """12 subjects in 4 folds, two trainers, two training repeats."""
    fake = make_results(tmp_path_factory.mktemp("repeated"), REPEATED, n_subjects=12, repeats=2, n_folds=4)
    mp = pytest.MonkeyPatch()
    mp.setenv("nnUNet_raw", str(fake.raw))
    mp.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    out = tmp_path_factory.mktemp("repeated_report")
    write_report(fake.repeat_results, list(REPEATED), REFERENCE, out, jobs=1)
    mp.undo()
    return fake, out


def test_one_results_root_has_no_comparison_section(report_dir):
    assert not (report_dir / "compare.csv").exists() and not (report_dir / "metrics" / "repeat_2").exists()
    assert "Comparison over" not in (report_dir / "report.md").read_text()


def test_repeats_add_the_comparison_of_every_trainer_with_the_reference(repeated):
    fake, out = repeated
    rows = _csv(out / "compare.csv")
    assert list(rows[0]) == ["candidate", *COMPARISON_COLUMNS]
    assert {r["candidate"] for r in rows} == {"nnUNetTrainer"} and len(rows) == 6 * 3
    ta = next(r for r in rows if (r["compartment"], r["metric"]) == ("TA", "dice"))
    assert (ta["n_subjects"], ta["n_folds"], ta["n_repeats_reference"], ta["n_repeats_candidate"]) == (
        "12", "4", "2", "2"
    )  # fmt: skip
    assert ta["verdict"] == "worse" and float(ta["difference"]) < 0
    mean = next(r for r in rows if (r["compartment"], r["metric"]) == ("mean", "dice"))
    assert float(mean["run_sd_reference"]) > 0 and float(mean["detectable_difference"]) > 0
    # every metrics CSV carries the fold that predicted the case (from the results' fold_<k> folders)
    for path in (out / "metrics" / "nnUNetTrainer.csv", out / "metrics" / "repeat_2" / "nnUNetTrainer.csv"):
        assert {(r["case"], int(r["fold"])) for r in read_rows(path)} == set(fake.folds.items())
    per_subject = read_rows(out / "metrics" / "repeat_2" / "nnUNetTrainer_per_subject.csv")
    assert {(r["subject"], r["fold"]) for r in per_subject} == {(f"sub{i:02d}", str(i % 4)) for i in range(12)}
    text = (out / "report.md").read_text()
    assert "## Comparison over 2 training repeats (against nnUNetTrainerFilterNet)" in text
    assert f"repeat 2 (`{fake.repeat_results[1]}`)" in text
    assert (out / "compare_nnUNetTrainer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the report's comparison is filternet compare's on the per-repeat metrics it wrote
    metrics = out / "metrics"
    per_repeat = [metrics / f"{t}.csv" for t in REPEATED], [metrics / "repeat_2" / f"{t}.csv" for t in REPEATED]
    ref, cand = [per_repeat[0][0], per_repeat[1][0]], [per_repeat[0][1], per_repeat[1][1]]
    files = compare_files(ref, cand, out.parent / "cli_compare.csv")
    assert [r.verdict for r in files.rows] == [r["verdict"] for r in rows]
    assert [r.difference for r in files.rows] == pytest.approx([float(r["difference"]) for r in rows])
    assert [r.p_holm for r in files.rows] == pytest.approx([float(r["p_holm"]) for r in rows])


def test_repeats_cli_partial_repeat_and_misuse(repeated, tmp_path, monkeypatch, capsys):
    """A repeat with a fold not yet predicted: its subjects are left out of the comparison, and named."""
    fake, out = repeated
    monkeypatch.setenv("nnUNet_raw", str(fake.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    partial = tmp_path / "nnUNet_results_r2" / "Dataset900_Fake"
    shutil.copytree(fake.repeat_results[1], partial)  # file times kept: the copied report's metrics are reused
    shutil.rmtree(partial / "nnUNetTrainer__nnUNetPlans__3d_fullres" / "fold_1" / "validation")
    shutil.copytree(out, tmp_path / "out")
    args = ["report", "--trainers", *REPEATED, "--baseline", REFERENCE, "-j", "1", "--out", str(tmp_path / "out")]
    assert main(args + ["--results", str(fake.repeat_results[0]), str(partial)]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    fold_1 = ", ".join(f"sub{i:02d}" for i in range(1, 12, 4))
    assert f"Left out (not predicted in every repeat of every trainer): {fold_1}." in text
    assert {(r["n_subjects"], r["n_folds"]) for r in _csv(tmp_path / "out" / "compare.csv")} == {("9", "3")}
    # the same root twice, or another dataset's results: exit 2, one line
    other = tmp_path / "nnUNet_results_r3" / "Dataset901_Other"
    other.mkdir(parents=True)
    capsys.readouterr()
    for roots, message in (([partial, partial], "is given twice"), ([partial, other], "expected a results folder")):
        assert main(args + ["--results", *map(str, roots)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("filternet report: error: ") and message in err and err.count("\n") == 1, err


def test_table_one_p_is_the_paired_t_over_folds(repeated):
    """Table I's p: the one-sample t over the fold means of the per-subject differences (scipy as the oracle)."""
    import numpy as np
    from scipy import stats

    fake, out = repeated
    per_subject = {t: read_rows(out / "metrics" / f"{t}_per_subject.csv") for t in REPEATED}
    sol = {t: {r["subject"]: (r["fold"], 100 * r["dice"]) for r in rows if r["compartment"] == "Sol"}
          for t, rows in per_subject.items()}  # fmt: skip
    d = {s: sol["nnUNetTrainer"][s][1] - sol[REFERENCE][s][1] for s in sol[REFERENCE]}
    folds = sorted({fold for fold, _ in sol[REFERENCE].values()})
    means = [np.mean([d[s] for s, (fold, _) in sol[REFERENCE].items() if fold == f]) for f in folds]
    rows = {(r["metric"], r["compartment"], r["trainer"]): r for r in _csv(out / "table1.csv")}
    got = rows[("dice", "Sol", "nnUNetTrainer")]
    assert np.std(means) > 0.1  # the differences vary between folds: a test that can tell a subject-level t
    assert float(got["fold_t_p"]) == pytest.approx(stats.ttest_1samp(means, 0.0).pvalue, rel=1e-9)
    assert got["n_folds"] == "4"


def test_a_byte_identical_copy_is_not_a_second_repeat(repeated, tmp_path, monkeypatch, capsys):
    """report refuses a copied results folder as a repeat, with compare's check (one line, exit 2)."""
    fake, _ = repeated
    monkeypatch.setenv("nnUNet_raw", str(fake.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(fake.preprocessed))
    copy = tmp_path / "nnUNet_results_copy" / "Dataset900_Fake"
    shutil.copytree(fake.repeat_results[0], copy)
    args = ["report", "--trainers", *REPEATED, "--baseline", REFERENCE, "-j", "1", "--out", str(tmp_path / "out")]
    assert main(args + ["--results", str(fake.repeat_results[0]), str(copy)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"filternet report: error: {copy}: has the same {REFERENCE} predictions as ")
        and err.count("\n") == 1
    ), err
    assert not (tmp_path / "out").exists()
