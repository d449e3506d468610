"""``filternet phantom`` and ``make_cohort``: files, subjects.csv, preview, atomic output, resume, bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.phantom import cohort_specs, generate_subject, make_cohort
from nnunet_filternet.phantom.cohort import write_subject
from tests.conftest import run_cli

SMALL = ["--shape", "64", "64", "6", "--spacing", "5.6", "5.6", "7"]


def test_cli_writes_a_cohort(tmp_path):
    out, png = tmp_path / "cohort", tmp_path / "preview.png"
    r = run_cli("phantom", "--out", out, "--subjects", "3", *SMALL, "--preview", png, "--save-bias",
                "--save-fat-fraction", "-j", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    names = [f"sub-{k:03d}" for k in range(3)]
    for folder in ("images", "labels", "bias", "fatfraction"):
        assert sorted(p.name for p in (out / folder).iterdir()) == [f"{n}.nii.gz" for n in names]
    with (out / "subjects.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["subject"] for r in rows] == names
    assert {"subject", "group", "severity", "gap_mm", "left_scale", "intensity_scale"} <= set(rows[0])
    assert [r["group"] for r in rows].count("healthy") == 1  # default: a quarter of 3, rounded
    for row in rows:
        assert (float(row["severity"]) == 0) == (row["group"] == "healthy")
    assert json.loads((out / "phantom.json").read_text())["shape_xyz"] == [64, 64, 6]
    # the files hold what generate_subject makes, with their geometry
    spec = cohort_specs(3, 1, seed=0)[1]
    subject = generate_subject(spec, (64, 64, 6), (5.6, 5.6, 7.0))
    image = sitk.ReadImage(str(out / "images" / "sub-001.nii.gz"))
    label = sitk.ReadImage(str(out / "labels" / "sub-001.nii.gz"))
    assert image.GetSize() == (64, 64, 6) and np.allclose(image.GetSpacing(), (5.6, 5.6, 7.0))
    assert image.GetPixelID() == sitk.sitkFloat32 and label.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(image), subject.image)
    assert np.array_equal(sitk.GetArrayFromImage(label), subject.label)
    assert image.GetOrigin() == label.GetOrigin()
    bias = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "bias" / "sub-001.nii.gz")))
    assert np.array_equal(bias, subject.bias)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not list(tmp_path.glob(".cohort*"))  # no work folder left behind
    # an existing cohort is only replaced on request
    again = run_cli("phantom", "--out", out, "--subjects", "2", *SMALL)
    assert again.returncode == 2 and "not empty" in again.stderr and "--overwrite" in again.stderr
    assert len(list((out / "images").iterdir())) == 3
    replaced = run_cli("phantom", "--out", out, "--subjects", "2", "--healthy", "0", *SMALL, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert len(list((out / "images").iterdir())) == 2 and not (out / "bias").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--subjects", "0"], "positive integer"),
        (["--subjects", "3", "--healthy", "4"], "between 0 and 3"),
        (["--healthy", "-1"], "integer >= 0"),
        (["--spacing", "0.7", "0", "7"], "positive, finite number"),
        (["--shape", "512", "-5", "30"], "integer >= 2"),
        (["--shape", "64", "64", "6", "--spacing", "1", "1", "7"], "field of view"),
        (["--seed", "-1"], "integer >= 0"),
        (["--spacing", "inf", "0.7", "7"], "positive, finite number"),
        (["--spacing", "0.7", "nan", "7"], "positive, finite number"),
        (["--spacing", "0.7", "0.7", "-7"], "positive, finite number"),
        (["--shape", "512", "512", "1"], "integer >= 2"),
        (["-j", "0"], "positive number of worker processes"),
        (["-j", "-2"], "positive number of worker processes"),
        (["--shape", "60000", "60000", "400", "--spacing", "0.016", "0.016", "2", "--subjects", "1"], "GiB"),
    ],
)
def test_cli_bad_arguments_exit_2(tmp_path, args, message):
    out = tmp_path / "cohort"
    r = run_cli("phantom", "--out", out, *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def test_cli_unwritable_preview_is_refused_before_rendering(tmp_path):
    (tmp_path / "taken.png").mkdir()  # a folder where the picture should go
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    for preview, message in ((tmp_path / "taken.png", "expected a file, found a folder"),
                             (blocker / "p.png", "a_file is a file, not a folder")):  # fmt: skip
        r = run_cli("phantom", "--out", tmp_path / "cohort", "--subjects", "1", *SMALL, "--preview", preview)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "cohort").exists() and not list(tmp_path.glob(".cohort*"))


def test_api_refuses_what_the_cli_refuses(tmp_path):
    kwargs = dict(n_subjects=1, n_healthy=0, shape=(64, 64, 6), spacing=(5.6, 5.6, 7.0))
    for bad, message in (({"seed": -1}, "seed must be an integer >= 0"), ({"jobs": 0}, "positive number"),
                         ({"spacing": (5.6, float("inf"), 7.0)}, "positive, finite"),
                         ({"shape": (64, 64, 1)}, "three integers >= 2")):  # fmt: skip
        with pytest.raises(FilterNetError, match=message):
            make_cohort(tmp_path / "c", **{**kwargs, **bad})
    assert not (tmp_path / "c").exists()


def test_cli_unwritable_folder_exit_2(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    r = run_cli("phantom", "--out", blocker / "cohort", "--subjects", "1", *SMALL)
    assert r.returncode == 2 and "not a writable folder" in r.stderr and str(blocker) in r.stderr
    assert blocker.read_text() == "not a folder"


def test_overwrite_refuses_folders_it_did_not_make(tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(FilterNetError, match="did not make"):
        make_cohort(precious, n_subjects=1, n_healthy=0, shape=(64, 64, 6), spacing=(5.6, 5.6, 7.0), overwrite=True)
    assert (precious / "keep.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is fine without --overwrite
    make_cohort(empty, n_subjects=1, n_healthy=0, shape=(64, 64, 6), spacing=(5.6, 5.6, 7.0), jobs=1)
    assert (empty / "images" / "sub-000.nii.gz").is_file()


def test_interrupted_cohort_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "cohort"
    kwargs = dict(n_subjects=2, n_healthy=1, shape=(64, 64, 6), spacing=(5.6, 5.6, 7.0), jobs=1)
    # first run dies after one subject: the work folder keeps it, the cohort folder does not appear
    import nnunet_filternet.phantom.cohort as cohort

    calls = []

    def dying(spec, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(spec.name)
        return write_subject(spec, **kw)

    monkeypatch.setattr(cohort, "write_subject", dying)
    with pytest.raises(KeyboardInterrupt):
        make_cohort(out, **kwargs)
    assert not out.exists()
    work = tmp_path / ".cohort.partial"
    first = work / "images" / "sub-000.nii.gz"
    stamp = first.stat().st_mtime_ns
    monkeypatch.undo()
    capsys.readouterr()
    make_cohort(out, **kwargs)
    assert "resuming: 1 of 2" in capsys.readouterr().out
    assert (out / "images" / "sub-000.nii.gz").stat().st_mtime_ns == stamp  # kept, not rendered again
    assert (out / "images" / "sub-001.nii.gz").is_file() and not work.exists()
