"""No verb writes over, or deletes, an input (issue 22, class 2): exit 2 naming both, the input untouched.

Each verb is run in-process through ``nnunet_filternet.cli.main`` with an output that IS an input: the same
path, a symbolic link to it, a hard link to it, or a folder output inside an input folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nnunet_filternet.cli import main
from nnunet_filternet.utils.output_guard import refuse_inputs_as_outputs
from tests.scan_fixtures import ScanSpec, write_scans
from tests.test_compare import cohort, write_metrics
from tests.test_evaluate import leg, write_map
from tests.test_quantify import scan as two_leg_scan
from tests.test_quantify import write


def refused(capsys, argv, *names) -> str:
    """Run the CLI; assert exit 2, one stderr line naming every path in ``names``; return the line."""
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def snapshot_bytes(*folders: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for f in folders for p in sorted(Path(f).rglob("*")) if p.is_file()}


# ---- the guard itself ----------------------------------------------------------------------------------------


def test_guard_sees_through_symlinks_and_hard_links(tmp_path):
    (tmp_path / "in").mkdir()
    source = tmp_path / "in" / "a.csv"
    source.write_text("x")
    os.symlink(source, tmp_path / "sym.csv")
    os.link(source, tmp_path / "hard.csv")
    os.symlink(tmp_path / "in", tmp_path / "in_link")
    for output in (source, tmp_path / "sym.csv", tmp_path / "hard.csv", tmp_path / "in_link" / "a.csv"):
        with pytest.raises(Exception, match=str(source)):
            refuse_inputs_as_outputs({tmp_path / "in": "inputs"}, files=[output])
    for folder in (tmp_path / "in", tmp_path / "in" / "sub", tmp_path / "in_link" / "sub"):
        with pytest.raises(Exception, match="input folder"):
            refuse_inputs_as_outputs({tmp_path / "in": "inputs"}, folders=[folder])
    with pytest.raises(Exception, match="holds the input"):
        refuse_inputs_as_outputs({source: "a file"}, whole_folders=[tmp_path])
    refuse_inputs_as_outputs({source: "a file"}, files=[tmp_path / "new.csv"], folders=[tmp_path / "out"])


# ---- evaluate, quantify, compare --------------------------------------------------------------------------------


@pytest.fixture
def maps(tmp_path):
    for name in ("ref", "pred"):
        (tmp_path / name).mkdir()
        for side in "LR":
            write_map(tmp_path / name / f"s01_{side}.nii.gz", leg(1))
    return tmp_path


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "per-subject table"])
def test_evaluate_refuses_an_output_that_is_a_label_map(maps, capsys, how):
    target = maps / "ref" / "s01_L.nii.gz"
    out = {"same path": target, "symlink": maps / "m.csv", "hard link": maps / "m.csv"}.get(how)
    if how == "symlink":
        os.symlink(target, out)
    elif how == "hard link":
        os.link(target, out)
    elif how == "per-subject table":  # the second table written beside --out: m_per_subject.csv
        os.link(target, maps / "m_per_subject.csv")
        out = maps / "m.csv"
    before = snapshot_bytes(maps / "ref", maps / "pred")
    refused(
        capsys,
        ["evaluate", "--pred", maps / "pred", "--labels", maps / "ref", "--csv", out, "-j", "1"],
        target,
        "input",
    )
    assert snapshot_bytes(maps / "ref", maps / "pred") == before


@pytest.fixture
def quantify_inputs(tmp_path):
    labels, image, _ = two_leg_scan()
    write(image, tmp_path / "images" / "s01_0000.nii.gz")
    write(labels, tmp_path / "labels" / "s01.nii.gz")
    return tmp_path


@pytest.mark.parametrize("victim", ["images/s01_0000.nii.gz", "labels/s01.nii.gz"])
def test_quantify_refuses_an_output_that_is_a_scan_or_a_label_map(quantify_inputs, capsys, victim):
    root = quantify_inputs
    before = snapshot_bytes(root)
    args = ["quantify", "--images", root / "images", "--labels", root / "labels", "-j", "1"]
    refused(capsys, [*args, "--csv", root / victim], root / victim, "input")
    os.link(root / victim, root / "hard.csv")
    refused(capsys, [*args, "--csv", root / "hard.csv"], root / victim, "input")
    assert snapshot_bytes(root / "images", root / "labels") == {k: v for k, v in before.items() if "hard" not in k.name}


def test_quantify_refuses_colour_tables_over_an_input(quantify_inputs, capsys):
    root = quantify_inputs
    table = root / "tables" / "filternet_labels.ctbl"
    table.parent.mkdir()
    os.link(root / "labels" / "s01.nii.gz", table)  # a table name that is, in fact, the label map
    args = ["quantify", "--images", root / "images", "--labels", root / "labels", "--colour-table", root / "tables"]
    refused(capsys, args, root / "labels" / "s01.nii.gz", "input")


@pytest.mark.parametrize("folder", ["pred", "ref", "ref/sub"])
def test_evaluate_writes_no_table_into_an_input_folder(maps, capsys, folder):
    """New files among the maps are refused too: a table in a label folder is read as a case by later runs."""
    before = snapshot_bytes(maps)
    args = ["evaluate", "--pred", maps / "pred", "--labels", maps / "ref", "-j", "1"]
    refused(capsys, [*args, "--csv", maps / folder / "m.csv"], maps / folder.split("/")[0], "input folder")
    assert snapshot_bytes(maps) == before and not (maps / "ref" / "sub").exists()
    assert main([str(a) for a in [*args, "--csv", maps / "tables" / "m.csv"]]) == 0  # beside the inputs: fine


@pytest.mark.parametrize(("option", "where"), [("--csv", "labels/x.csv"), ("--csv", "images/x.csv"),
                                               ("--colour-table", "labels")])  # fmt: skip
def test_quantify_writes_no_table_into_an_input_folder(quantify_inputs, capsys, option, where):
    root = quantify_inputs
    before = snapshot_bytes(root)
    args = ["quantify", "--images", root / "images", "--labels", root / "labels", "-j", "1", option, root / where]
    if option == "--colour-table":
        args += ["--csv", root / "out" / "x.csv"]
    refused(capsys, args, root / where.split("/")[0], "input folder")
    assert snapshot_bytes(root) == before and not (root / "out").exists()


def test_compare_refuses_to_write_over_its_reference_csv(tmp_path, capsys):
    ref = write_metrics(tmp_path / "ref.csv", cohort(lambda i: 0.8 + 0.001 * i))
    cand = write_metrics(tmp_path / "cand.csv", cohort(lambda i: 0.82 + 0.001 * i))
    before = snapshot_bytes(tmp_path)
    refused(capsys, ["compare", "--baseline", ref, "--candidate", cand, "--csv", ref], ref, "input")
    refused(capsys, ["compare", "--baseline", ref, "--candidate", cand, "--csv", cand], cand, "input")
    os.symlink(ref, tmp_path / "link.csv")
    refused(capsys, ["compare", "--baseline", ref, "--candidate", cand, "--csv", tmp_path / "link.csv"], ref, "input")
    os.link(cand, tmp_path / "fig.png")  # the figure beside --out fig.csv is the candidate CSV
    refused(capsys, ["compare", "--baseline", ref, "--candidate", cand, "--csv", tmp_path / "fig.csv"], cand, "input")
    assert {k: v for k, v in snapshot_bytes(tmp_path).items() if k.name in ("ref.csv", "cand.csv")} == {
        k: v for k, v in before.items() if k.name in ("ref.csv", "cand.csv")
    }


# ---- folder outputs: report, restore, convert, predict ------------------------------------------------------


def test_report_refuses_an_output_folder_that_is_or_holds_an_input(tmp_path, capsys):
    results = tmp_path / "Dataset001_X"
    results.mkdir()
    (results / "keep.txt").write_text("results")
    base = ["report", "--trainers", "A", "--baseline", "A"]
    refused(capsys, [*base, "--results", results, "--out", results], results, "input folder")
    refused(capsys, [*base, "--results", results, "--out", results / "report"], results, "input folder")
    refused(capsys, [*base, "--results", results, "--out", tmp_path], results, "holds the input")
    assert (results / "keep.txt").read_text() == "results" and not (results / "report").exists()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Two small scans converted for inference (leg images and legs.json) and leg 'predictions' (copies)."""
    root = tmp_path_factory.mktemp("converted")
    write_scans(root, {"a": ScanSpec(seed=1), "b": ScanSpec(seed=2)})
    assert main(["convert", "--images", str(root / "images"), "--out", str(root / "legs"), "-j", "1"]) == 0
    return root


def test_restore_refuses_to_write_into_the_predictions_or_over_legs_json(converted, tmp_path, capsys):
    import SimpleITK as sitk

    legs, pred = converted / "legs", tmp_path / "pred"
    pred.mkdir()
    for image in legs.glob("*_0000.nii.gz"):  # an all-background prediction of every leg
        leg_image = sitk.ReadImage(str(image))
        sitk.WriteImage(sitk.Cast(leg_image * 0, sitk.sitkUInt8), str(pred / image.name.replace("_0000", "")))
    base = ["restore", "--pred", pred, "--records", legs / "legs.json", "-j", "1"]
    before = snapshot_bytes(pred)
    refused(capsys, [*base, "--out", pred], pred, "input")
    refused(capsys, [*base, "--out", pred / "restored"], pred, "input")
    out = tmp_path / "out"
    out.mkdir()
    os.link(legs / "legs.json", out / "a.nii.gz")  # restore would write a.nii.gz: it is legs.json
    refused(capsys, [*base, "--out", out], legs / "legs.json", "input")
    json.loads((legs / "legs.json").read_text())  # untouched
    assert snapshot_bytes(pred) == before
    assert main([str(a) for a in [*base, "--out", tmp_path / "fine"]]) == 0  # the same call elsewhere works


def test_convert_refuses_an_output_folder_that_is_or_holds_its_scans(converted, tmp_path, capsys):
    images = converted / "images"
    before = snapshot_bytes(images)
    refused(capsys, ["convert", "--images", images, "--out", images], images, "input")
    refused(capsys, ["convert", "--images", images, "--out", images / "legs"], images, "input")
    refused(capsys, ["convert", "--images", images, "--out", converted], images, "input")  # replaced as a whole
    assert snapshot_bytes(images) == before


def test_convert_training_refuses_to_rebuild_a_dataset_from_its_own_images(converted, tmp_path, capsys, nnunet_env):
    dataset = nnunet_env["nnUNet_raw"] / "Dataset005_Own"
    (dataset / "imagesTr").mkdir(parents=True)
    for name in ("a", "b", "c", "d"):
        (dataset / "imagesTr" / f"{name}.nii.gz").write_bytes((converted / "images" / "a.nii.gz").read_bytes())
    labels = converted / "labels"
    args = ["convert", "--images", dataset / "imagesTr", "--labels", labels, "--dataset-id", "5", "--name", "Own"]
    refused(capsys, args, dataset / "imagesTr", "input")
    assert len(list((dataset / "imagesTr").iterdir())) == 4


def test_convert_training_writes_no_splits_into_its_labels(converted, capsys, nnunet_env, monkeypatch):
    """nnUNet_preprocessed set inside the labels folder: its splits_final.json would land among the label maps."""
    labels = converted / "labels"
    monkeypatch.setenv("nnUNet_preprocessed", str(labels / "preprocessed"))
    before = snapshot_bytes(labels)
    args = ["convert", "--images", converted / "images", "--labels", labels, "--dataset-id", "6", "--name", "Six"]
    refused(capsys, args, labels, "input folder")
    assert snapshot_bytes(labels) == before and not (labels / "preprocessed").exists()
    assert not (nnunet_env["nnUNet_raw"] / "Dataset006_Six").exists()


def test_predict_refuses_an_output_that_is_or_holds_an_input_or_a_users_file(converted, tmp_path, capsys):
    from tests.predict_fixture import make_model

    make_model(tmp_path / "results")
    images = converted / "images"
    base = ["predict", "--images", images, "--results", tmp_path / "results", "--trainer", "nnUNetTrainer"]
    base += ["--device", "cpu", "-j", "1"]
    before = snapshot_bytes(images)
    refused(capsys, [*base, "--out", images], images, "input")
    refused(capsys, [*base, "--out", images / "out"], images, "input")
    refused(capsys, [*base, "--out", tmp_path / "results"], tmp_path / "results", "input")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.nii.gz").write_text("the user's own file")  # predict would write a.nii.gz
    refused(capsys, [*base, "--out", out], out / "a.nii.gz", "not written by `filternet predict`")
    assert (out / "a.nii.gz").read_text() == "the user's own file" and snapshot_bytes(images) == before


# ---- phantom --overwrite, plans, bench ---------------------------------------------------------------------------

SMALL = ["--shape", "64", "64", "6", "--spacing", "5.6", "5.6", "7", "--subjects", "1", "-j", "1"]


def test_phantom_overwrite_never_deletes_a_users_file(tmp_path, capsys):
    out = tmp_path / "cohort"
    assert main(["phantom", "--out", str(out), *SMALL, "--preview", str(out / "preview.png")]) == 0
    capsys.readouterr()
    assert main(["phantom", "--out", str(out), *SMALL, "--overwrite"]) == 0  # only our own files: replaced
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    (out / "images" / "extra.nii.gz").write_text("also mine")
    line = refused(capsys, ["phantom", "--out", out, *SMALL, "--overwrite", "--seed", "3"], out)
    assert "notes.txt" in line and "images/extra.nii.gz" in line
    assert (out / "notes.txt").read_text() == "mine" and (out / "images" / "extra.nii.gz").read_text() == "also mine"
    assert (out / "images" / "sub-000.nii.gz").is_file()


def test_phantom_refuses_a_work_folder_it_did_not_make(tmp_path, capsys):
    work = tmp_path / ".cohort.partial"
    work.mkdir()
    (work / "precious.txt").write_text("mine")
    refused(capsys, ["phantom", "--out", tmp_path / "cohort", *SMALL], work)
    assert (work / "precious.txt").read_text() == "mine"


def _plans_dataset(root: Path, name: str = "Dataset991_Guard") -> Path:
    from nnunet_filternet.bench.plans import SIZES, builtin_plans

    folder = root / "nnUNet_preprocessed" / name
    folder.mkdir(parents=True)
    (root / "nnUNet_raw" / name).mkdir(parents=True)
    plans = builtin_plans(SIZES["quick"])
    plans["configurations"]["3d_fullres"]["median_image_size_in_voxels"] = [16, 64, 96]
    (folder / "nnUNetPlans_tiny.json").write_text(json.dumps(plans))
    return folder


def test_plans_refuses_a_preset_written_over_its_source_plans(nnunet_env, tmp_path, capsys):
    folder = _plans_dataset(tmp_path)
    before = (folder / "nnUNetPlans_tiny.json").read_bytes()
    refused(capsys, ["plans", "991", "--preset", "tiny", "--source-plans", "nnUNetPlans_tiny"],
            folder / "nnUNetPlans_tiny.json", "input")  # fmt: skip
    assert main(["plans", "991", "--preset", "tiny"]) == 2  # nnUNetPlans.json missing: a plain error
    assert main(["plans", "991", "--preset", "paper", "--source-plans", "nnUNetPlans_tiny"]) == 0
    assert (folder / "nnUNetPlans_tiny.json").read_bytes() == before


def test_bench_refuses_to_put_its_section_into_the_plans_it_reads(tmp_path, capsys):
    from nnunet_filternet.bench.plans import SIZES, builtin_plans

    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps(builtin_plans(SIZES["quick"])))
    before = plans.read_bytes()
    args = ["bench", "--device", "cpu", "--quick", "--parts", "flops", "--models", "FilterNet", "--plans-file", plans]
    refused(capsys, [*args, "--markdown", plans], plans, "input")
    os.symlink(plans, tmp_path / "notes.md")
    refused(capsys, [*args, "--markdown", tmp_path / "notes.md"], plans, "input")
    assert plans.read_bytes() == before
