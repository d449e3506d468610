"""Rows of an earlier run are reused only when everything that produced them is the same (issue 12, class 1).

A folder of other files that happen to be older than the CSV, a copy that keeps the modification time, or a
changed option must all be computed afresh; unchanged inputs are reused.
"""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest

from nnunet_filternet.metrics.evaluate import CASE_COLUMNS, evaluate_folders, evaluate_pairs, read_rows, write_rows
from nnunet_filternet.metrics.matching import match_cases
from nnunet_filternet.quantify.biomarkers import quantify_folder
from tests.conftest import reuse_counts, run_cli
from tests.test_evaluate import leg, write_map
from tests.test_quantify import scan as two_leg_scan
from tests.test_quantify import write

DAY_NS = 86_400 * 10**9


def age(folder, days: float = 1.0) -> None:
    """Set every file's modification time ``days`` into the past (older than any CSV written now)."""
    for path in folder.iterdir():
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(days * DAY_NS)))


@pytest.fixture
def evaluation(tmp_path):
    """A reference folder, a good prediction folder and an all-background one, all older than any output."""
    for name in ("ref", "good", "empty"):
        (tmp_path / name).mkdir()
    for side in "LR":
        write_map(tmp_path / "ref" / f"s01_{side}.nii.gz", leg(1 if side == "L" else 2))
        write_map(tmp_path / "good" / f"s01_{side}.nii.gz", leg(1 if side == "L" else 2))
        write_map(tmp_path / "empty" / f"s01_{side}.nii.gz", np.zeros_like(leg(1)))
    for name in ("ref", "good", "empty"):
        age(tmp_path / name)
    return tmp_path


def dice(csv_path) -> list[float]:
    return [r["dice"] for r in read_rows(csv_path)]


def test_evaluate_recomputes_when_the_prediction_folder_changes(evaluation):
    out = evaluation / "metrics.csv"
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1)
    assert dice(out) == [1.0] * 10
    evaluate_folders(evaluation / "empty", evaluation / "ref", out, jobs=1)  # older files, another folder
    assert dice(out) == [0.0] * 10
    r = run_cli("evaluate", "--pred", evaluation / "good", "--labels", evaluation / "ref", "--csv", out)
    assert r.returncode == 0, r.stderr
    assert dice(out) == [1.0] * 10


def test_evaluate_recomputes_a_file_replaced_by_an_older_copy(evaluation, capsys):
    out = evaluation / "metrics.csv"
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1)
    shutil.copy2(evaluation / "empty" / "s01_L.nii.gz", evaluation / "good" / "s01_L.nii.gz")  # keeps the old mtime
    capsys.readouterr()
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1)
    assert reuse_counts(capsys, "evaluate") == (1, 1)  # the unchanged case is reused, the replaced one recomputed
    assert dice(out) == [0.0] * 5 + [1.0] * 5
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1, fresh=True)
    assert reuse_counts(capsys, "evaluate") == (0, 2)


def test_evaluate_recomputes_a_same_size_file_with_the_old_time(tmp_path):
    """Uncompressed files of one shape have one size: only status-change time and inode tell a copy apart."""
    for name, array in (("ref", leg(1)), ("pred", leg(1)), ("other", np.zeros_like(leg(1)))):
        (tmp_path / name).mkdir()
        write_map(tmp_path / name / "s01_L.nii", array)
    age(tmp_path / "pred")
    age(tmp_path / "other")
    out = tmp_path / "metrics.csv"
    evaluate_folders(tmp_path / "pred", tmp_path / "ref", out, jobs=1)
    assert dice(out) == [1.0] * 5
    old = (tmp_path / "pred" / "s01_L.nii").stat()
    shutil.copy(tmp_path / "other" / "s01_L.nii", tmp_path / "pred" / "s01_L.nii")
    os.utime(tmp_path / "pred" / "s01_L.nii", ns=(old.st_atime_ns, old.st_mtime_ns))  # e.g. rsync -t
    new = (tmp_path / "pred" / "s01_L.nii").stat()
    assert (new.st_size, new.st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    evaluate_folders(tmp_path / "pred", tmp_path / "ref", out, jobs=1)
    assert dice(out) == [0.0] * 5


def _drop_gas(array):
    return np.where(array == 4, 0, array)


def test_evaluate_recomputes_when_the_options_change(evaluation):
    out = evaluation / "metrics.csv"
    pairs = match_cases(evaluation / "good", evaluation / "ref")
    write_rows(evaluate_pairs(pairs, jobs=1, cache_csv=out), out, CASE_COLUMNS)  # as `filternet report` does
    rows = evaluate_pairs(pairs, jobs=1, postprocess=_drop_gas, cache_csv=out)
    assert [r["dice"] for r in rows if r["compartment"] == "Gas"] == [0.0, 0.0]


def _biomarkers(path) -> dict[tuple[str, str], float]:
    with open(path, newline="") as f:
        return {(r["side"], r["compartment"]): float(r["volume_ml"]) for r in csv.DictReader(f)}


def test_quantify_recomputes_when_the_label_folder_changes(tmp_path, capsys):
    labels, image, _ = two_leg_scan()
    write(image, tmp_path / "images" / "s01_0000.nii.gz")
    write(labels, tmp_path / "labels" / "s01.nii.gz")
    write(np.zeros_like(labels), tmp_path / "empty" / "s01.nii.gz")
    for name in ("images", "labels", "empty"):
        age(tmp_path / name)
    out = tmp_path / "biomarkers.csv"
    quantify_folder(tmp_path / "images", tmp_path / "labels", out, jobs=1)
    assert min(_biomarkers(out).values()) > 0
    quantify_folder(tmp_path / "images", tmp_path / "empty", out, jobs=1)  # older files, another folder
    assert set(_biomarkers(out).values()) == {0.0}
    capsys.readouterr()
    quantify_folder(tmp_path / "images", tmp_path / "empty", out, jobs=1)
    assert reuse_counts(capsys, "quantify") == (1, 0)  # nothing changed: reused
    shutil.copy2(tmp_path / "labels" / "s01.nii.gz", tmp_path / "empty" / "s01.nii.gz")
    quantify_folder(tmp_path / "images", tmp_path / "empty", out, jobs=1)
    assert reuse_counts(capsys, "quantify") == (0, 1) and min(_biomarkers(out).values()) > 0
    r = run_cli("quantify", "--images", tmp_path / "images", "--labels", tmp_path / "empty", "--csv", out, "--fresh")
    assert r.returncode == 0, r.stderr


def test_a_hand_edited_csv_is_not_trusted(evaluation):
    out = evaluation / "metrics.csv"
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1)
    text = out.read_text().replace("1.0,", "0.5,", 1)
    out.write_text(text)
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1)
    assert dice(out) == [1.0] * 10


def _tree(root, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


def test_the_code_digest_follows_the_code_and_nothing_else(tmp_path):
    """A changed .py changes the digest; a .pyc, another file, a new modification time or another location do not;
    a sub-package installed inside its parent (a wheel) digests like the same files side by side (editable)."""
    from nnunet_filternet.utils.cache import source_digest

    code = {"a.py": b"x = 1\n", "sub/b.py": b"y = 2\n"}
    _tree(tmp_path / "one", code)
    before = source_digest({"pkg": tmp_path / "one"})
    _tree(tmp_path / "one", {"a.pyc": b"\0", "notes.txt": b"n", "sub/__pycache__/b.cpython-311.pyc": b"\1"})
    os.utime(tmp_path / "one" / "a.py", ns=(0, 0))
    _tree(tmp_path / "elsewhere", code)
    assert source_digest({"pkg": tmp_path / "one"}) == before == source_digest({"pkg": tmp_path / "elsewhere"})
    _tree(tmp_path / "one", {"sub/b.py": b"y = 3\n"})
    assert source_digest({"pkg": tmp_path / "one"}) != before
    _tree(tmp_path / "one", {"sub/b.py": b"y = 2\n", "sub/c.py": b""})  # a new module
    assert source_digest({"pkg": tmp_path / "one"}) != before
    with_c = source_digest({"pkg": tmp_path / "one"})
    _tree(tmp_path / "one", {"native/kernel.c": b"int f(void) { return 1; }\n"})  # C code is code too
    assert source_digest({"pkg": tmp_path / "one"}) != with_c

    _tree(tmp_path / "wheel" / "pkg", {"a.py": b"1", "plans/p.py": b"2"})
    _tree(tmp_path / "editable", {"pkg/a.py": b"1", "plans/p.py": b"2"})
    wheel = {"pkg": tmp_path / "wheel" / "pkg", "pkg.plans": tmp_path / "wheel" / "pkg" / "plans"}
    editable = {"pkg": tmp_path / "editable" / "pkg", "pkg.plans": tmp_path / "editable" / "plans"}
    assert source_digest(wheel) == source_digest(editable)


def test_rows_of_another_code_are_not_reused(evaluation, monkeypatch, capsys):
    """The same version string with other code (another commit of a development checkout) recomputes."""
    from nnunet_filternet.utils import cache

    out = evaluation / "metrics.csv"
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1)
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1)
    assert reuse_counts(capsys, "evaluate") == (2, 0)
    assert cache._package_digest() in cache.program()
    monkeypatch.setattr(cache, "_package_digest", lambda: "0123456789abcdef")
    evaluate_folders(evaluation / "good", evaluation / "ref", out, jobs=1)
    assert reuse_counts(capsys, "evaluate") == (0, 2)
