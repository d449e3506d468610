"""``filternet predict`` at cohort scale (issue 23 item 4): parts, merge, resume.

Two parts of one cohort run side by side (two processes into one ``--out``) and merged give exactly the files
one run gives; the split is nnU-Net's (sorted names, every N-th) and covers every scan once; a run killed in
the middle of nnU-Net's work resumes without predicting a finished scan again; the merge never takes a record
of a scan that changed since. nnU-Net is replaced by :func:`tests.predict_fixture.fake_nnunet`.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import random
from pathlib import Path

import pytest
import SimpleITK as sitk

from nnunet_filternet.cli import main
from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.pipeline.predict import check_parts, part_of
from tests.predict_fixture import fake_nnunet, make_model
from tests.scan_fixtures import ScanSpec
from tests.test_predict_cohort import write_scan

SUBJECTS = ("a", "b", "c", "d", "e")


@pytest.fixture
def cohort(tmp_path, monkeypatch):
    """Five scans; ``b`` has legs of very different size (its conversion fails, it goes to failed.csv)."""
    for seed, name in enumerate(SUBJECTS, 1):
        write_scan(tmp_path / "images" / f"{name}.nii.gz", ScanSpec(seed=seed), 18.0 if name == "b" else None)
    make_model(tmp_path / "results", label=1)
    return tmp_path, fake_nnunet(monkeypatch)


def predict(root: Path, out: str = "out", *extra: str) -> int:
    args = ["predict", "--images", root / "images", "--out", root / out, "--results", root / "results"]
    return main([*map(str, args), "--trainer", "nnUNetTrainer", "--device", "cpu", "-j", "1", *extra])


def files(out: Path) -> dict[str, bytes]:
    """Every file predict put at the top of ``out`` (not its work folder), with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def subjects_in(csv_file: Path, column: str = "subject") -> list[str]:
    with open(csv_file, newline="", encoding="utf-8") as f:
        return sorted({row[column] for row in csv.DictReader(f)})


def _in_child(target, *args) -> multiprocessing.Process:
    """``target(*args)`` in a forked process (it inherits this test's fake nnU-Net), started."""
    process = multiprocessing.get_context("fork").Process(target=target, args=args)
    process.start()
    return process


def _run_part(root: Path, part: int, barrier) -> None:
    fake_nnunet(pytest.MonkeyPatch(), barrier=barrier)  # both parts are in nnU-Net at the same time
    os._exit(predict(root, "parts", "--num-parts", "2", "--part-id", str(part), "--chunk-size", "1"))


def test_the_split_is_nnunets_and_covers_every_scan_once():
    names = [f"sub-{i:03d}" for i in range(23)] + ["Zeta", "alpha", "sub-7"]
    for num_parts in (1, 2, 3, 8, 30):
        parts = [part_of(random.Random(num_parts).sample(names, len(names)), num_parts, k) for k in range(num_parts)]
        assert sorted(s for p in parts for s in p) == sorted(names)  # every scan once: no overlap, none left out
        assert parts == [sorted(names)[k::num_parts] for k in range(num_parts)]  # whatever order they came in
    for num_parts, part_id in ((2, 2), (0, 0), (3, -1)):
        with pytest.raises(FilterNetError, match="--part-id|--num-parts"):
            check_parts(num_parts, part_id)


def test_nnunets_option_names_and_misuse(cohort, capsys):
    from nnunet_filternet.cli import build_parser

    args = build_parser("predict").parse_args(["predict", "--images", "i", "--out", "o", "--results", "r",
                                               "-num_parts", "4", "-part_id", "3"])  # fmt: skip
    assert (args.num_parts, args.part_id) == (4, 3)
    root, _ = cohort
    assert predict(root, "out", "--num-parts", "2", "--part-id", "2") == 2
    assert "--part-id 2: expected 0 to 1" in capsys.readouterr().err and not (root / "out").exists()
    assert predict(root, "out", "--merge", "--num-parts", "2") == 2
    assert "leave out --num-parts" in capsys.readouterr().err and not (root / "out").exists()


def test_threads_sets_the_torch_threads_of_the_run(cohort, capsys):
    """Parts side by side on one CPU machine share its cores: ``--threads`` (docs/predict.md, measured there)."""
    import torch

    root, _ = cohort
    before = torch.get_num_threads()
    wanted = 3 if before != 3 else 5
    try:
        assert predict(root, "out", "--threads", str(wanted)) == 1  # scan b fails by design (the fixture)
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)


def test_two_parts_side_by_side_merge_to_exactly_what_one_run_writes(cohort, capsys):
    root, _ = cohort
    assert predict(root, "one", "--chunk-size", "2") == 1  # b fails
    barrier = multiprocessing.get_context("fork").Barrier(2)
    parts = [_in_child(_run_part, root, k, barrier) for k in (0, 1)]
    for p in parts:
        p.join(timeout=300)
    assert [p.exitcode for p in parts] == [0, 1]  # part 1 holds b (a c e | b d)
    assert not (root / "parts" / "biomarkers.csv").exists()  # the parts write no table of the cohort
    capsys.readouterr()
    assert predict(root, "parts", "--merge") == 1
    out = capsys.readouterr()
    assert "label maps: 4 of 5 scan(s)" in out.out and "  b: convert: " in out.err
    one, merged = files(root / "one"), files(root / "parts")
    assert sorted(merged) == sorted(one)
    assert {"biomarkers.csv", "qc.csv", "failed.csv", "a.nii.gz", "e.nii.gz"} <= set(one)
    assert [name for name in one if one[name] != merged[name]] == []  # byte for byte
    assert subjects_in(root / "one" / "biomarkers.csv") == ["a", "c", "d", "e"]
    assert subjects_in(root / "one" / "failed.csv", "scan") == ["b"]


def test_the_merge_takes_only_finished_scans_as_they_are_now(cohort, capsys):
    root, predicted = cohort
    assert predict(root, "out", "--num-parts", "2", "--part-id", "0") == 0  # a c e
    assert not (root / "out" / "failed.csv").exists()
    capsys.readouterr()
    assert predict(root, "out", "--merge") == 1  # the merge of what is finished
    assert "2 scan(s) without a finished prediction, not in the tables: b, d" in capsys.readouterr().err
    assert subjects_in(root / "out" / "biomarkers.csv") == ["a", "c", "e"]
    write_scan(root / "images" / "c.nii.gz", ScanSpec(seed=9))  # replaced after its part ran
    assert predict(root, "out", "--merge") == 1
    assert subjects_in(root / "out" / "biomarkers.csv") == ["a", "e"]
    predicted.clear()
    assert predict(root, "out", "--num-parts", "2", "--part-id", "0") == 0
    assert sorted(predicted) == ["c_L", "c_R"]  # only the scan that changed
    assert predict(root, "out", "--num-parts", "2", "--part-id", "1") == 1
    assert predict(root, "out", "--merge") == 1  # b failed; every scan finished
    assert subjects_in(root / "out" / "biomarkers.csv") == ["a", "c", "d", "e"]
    assert subjects_in(root / "out" / "failed.csv", "scan") == ["b"]
    predicted.clear()
    assert predict(root, "out", "--overwrite", "--chunk-size", "3") == 1
    assert sorted(predicted) == [f"{s}_{side}" for s in "acde" for side in "LR"]  # everything again


def test_a_killed_run_resumes_without_predicting_a_finished_scan_again(cohort, capsys):
    root, predicted = cohort

    def killed_in_the_second_chunk():
        fake_nnunet(pytest.MonkeyPatch(), die_after=5)  # chunk 1: a_L a_R (b fails) c_L c_R; chunk 2: d_L, killed
        os._exit(predict(root, "out", "--chunk-size", "3"))

    child = _in_child(killed_in_the_second_chunk)
    child.join(timeout=300)
    assert child.exitcode == -9  # SIGKILL: nothing cleaned up
    assert (root / "out" / "a.nii.gz").is_file() and not (root / "out" / "d.nii.gz").exists()
    assert predict(root, "out", "--chunk-size", "3") == 1
    assert sorted(predicted) == ["d_R", "e_L", "e_R"]  # a and c finished, d_L was predicted before the kill
    assert subjects_in(root / "out" / "biomarkers.csv") == ["a", "c", "d", "e"]
    assert not any((root / "out" / ".legs" / "parts").iterdir())  # no work left behind
    (root / "out" / "a.nii.gz").unlink()  # outputs removed or changed by hand are not complete
    edited = sitk.ReadImage(str(root / "out" / "e.nii.gz"))
    edited[0, 0, 0] = 3
    sitk.WriteImage(edited, str(root / "out" / "e.nii.gz"))
    predicted.clear()
    assert predict(root, "out", "--chunk-size", "3") == 1
    assert sorted(predicted) == ["a_L", "a_R", "e_L", "e_R"]
