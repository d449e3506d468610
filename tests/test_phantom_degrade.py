"""``filternet phantom --degrade``: which subjects fail how, each degradation doing what it says, recorded, seeded."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.cli import main
from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.phantom import cohort_specs, generate_subject
from nnunet_filternet.phantom.anatomy import FAT, MUSCLE
from nnunet_filternet.phantom.degrade import KINDS, Degradation, degrade, leg_columns, plan_degradations

SHAPE, SPACING = (128, 128, 3), (2.8, 2.8, 7.0)


@pytest.fixture(scope="module")
def subject():
    """One DM1 subject at the tests' small size (1 sub-slice: fast)."""
    return generate_subject(cohort_specs(4, 1, seed=3)[0], SHAPE, SPACING, n_subslices=1)


def _air(image: np.ndarray, subject) -> np.ndarray:
    return image[subject.tissue == 0]


def test_the_plan_deals_every_kind_to_the_chosen_share_deterministically():
    specs = cohort_specs(20, 5, seed=2)
    plan = plan_degradations(specs, 0.7)
    assert len(plan) == 14 and plan == plan_degradations(specs, 0.7)
    kinds = [plan[s.name].kind for s in specs if s.name in plan]
    assert kinds == [KINDS[j % 7] for j in range(14)]  # dealt in turn, in subject order: each kind twice
    assert plan_degradations(specs, 0.0) == {} and len(plan_degradations(specs, 1.0)) == 20
    other_seed = plan_degradations(cohort_specs(20, 5, seed=3), 0.7)
    assert sorted(other_seed) != sorted(plan)  # which subjects follows the seed
    only = plan_degradations(specs, 0.5, ("noise", "fov_cut"))
    assert {d.kind for d in only.values()} == {"noise", "fov_cut"}
    for bad, kinds in ((1.5, KINDS), (-0.1, KINDS), (float("nan"), KINDS), (0.5, ("blur",)), (0.5, ())):
        with pytest.raises(FilterNetError, match="--degrade"):
            plan_degradations(specs, bad, kinds)


def test_bias_multiplies_a_strong_gain_across_the_image(subject):
    d = Degradation("bias", 1.5, extra=0.0)
    out = degrade(subject, d)
    gain = out.bias / subject.bias
    assert gain[0, 0, -1] / gain[0, 0, 0] == pytest.approx(np.exp(3.0), rel=1e-4)
    muscle = subject.tissue == MUSCLE
    left, right = leg_columns(subject, "L")[None, None, :] & muscle, leg_columns(subject, "R")[None, None, :] & muscle
    clean_ratio = subject.image[left].mean() / subject.image[right].mean()
    expected = np.broadcast_to(gain, left.shape)[left].mean() / np.broadcast_to(gain, right.shape)[right].mean()
    assert expected > 2  # the legs lie at about +-0.4 of the half-width: exp(1.5 x 0.8)
    assert out.image[left].mean() / out.image[right].mean() == pytest.approx(expected * clean_ratio, rel=0.1)
    assert np.array_equal(out.label, subject.label)


def test_noise_raises_the_noise_of_the_air(subject):
    out = degrade(subject, Degradation("noise", 0.15))
    ratio = np.sqrt(np.mean(_air(out.image, subject) ** 2) / np.mean(_air(subject.image, subject) ** 2))
    assert ratio == pytest.approx(0.15 / subject.spec.noise_sigma, rel=0.05)


def test_ghosting_puts_copies_of_the_legs_into_the_air_along_y(subject):
    out = degrade(subject, Degradation("ghosting", 8.0, extra=8))
    air = subject.tissue == 0
    rows_without_legs = ~(subject.tissue > 0).any(axis=(0, 2))  # rows above and below the legs
    far = air & rows_without_legs[None, :, None]
    assert out.image[far].mean() > 1.5 * subject.image[far].mean()
    unmoved = degrade(subject, Degradation("ghosting", 0.0, extra=8))  # no motion: a clean acquisition
    assert unmoved.image[far].mean() == pytest.approx(subject.image[far].mean(), rel=0.05)


def test_fov_cut_removes_the_outer_part_of_one_leg_only(subject):
    for side in ("L", "R"):
        out = degrade(subject, Degradation("fov_cut", 0.3, side=side))
        removed = subject.image.shape[2] - out.image.shape[2]
        assert removed > 0 and out.label.shape == out.image.shape == out.tissue.shape
        cols = np.flatnonzero((subject.tissue > 0).any(axis=(0, 1)) & leg_columns(subject, side))
        assert removed == (cols[0] if side == "R" else subject.image.shape[2] - 1 - cols[-1]) + round(0.3 * cols.size)
        kept = slice(removed, None) if side == "R" else slice(0, out.image.shape[2])
        assert np.array_equal(out.label, subject.label[..., kept])
        assert np.array_equal(out.image, subject.image[..., kept])
        border = out.label[..., 0] if side == "R" else out.label[..., -1]
        assert (border > 0).any()  # the cut runs through the leg's muscle


def test_fat_suppression_takes_away_the_fat_muscle_contrast(subject):
    out = degrade(subject, Degradation("fat_suppression", 0.7))
    fat, muscle = subject.tissue == FAT, (subject.tissue == MUSCLE) & (subject.fat_fraction < 0.1)
    before = np.median(subject.image[fat]) / np.median(subject.image[muscle])
    after = np.median(out.image[fat]) / np.median(out.image[muscle])
    assert before > 2 and after < 1.2


def test_orientation_flips_the_header_not_the_voxels(subject, tmp_path):
    for strength, diagonal in ((1, (1.0, -1.0, 1.0)), (2, (1.0, 1.0, -1.0))):
        out = degrade(subject, Degradation("orientation", strength))
        images = out.to_sitk()
        assert np.diag(np.reshape(images["image"].GetDirection(), (3, 3))).tolist() == list(diagonal)
        assert images["label"].GetDirection() == images["image"].GetDirection()
        assert np.array_equal(out.label, subject.label)
        assert np.array_equal(out.image, subject.image)


def test_missing_leg_leaves_air_and_no_labels_on_that_side(subject):
    out = degrade(subject, Degradation("missing_leg", 1.0, side="R"))
    right = leg_columns(subject, "R")
    assert not out.label[..., right].any() and np.array_equal(out.label[..., ~right], subject.label[..., ~right])
    leg = (subject.tissue > 0) & right[None, None, :]
    assert out.image[leg].mean() < 0.2 * subject.image[leg].mean() and not out.tissue[leg].any()
    assert np.array_equal(out.image[..., ~right], subject.image[..., ~right])


def test_cli_writes_degradations_csv_and_leaves_clean_subjects_as_they_were(tmp_path, capsys):
    args = ["phantom", "--subjects", "4", "--shape", "64", "64", "3", "--spacing", "5.6", "5.6", "7", "-j", "1"]
    assert main([*args, "--out", str(tmp_path / "clean")]) == 0
    kinds = ["--degrade-kinds", "missing_leg", "noise"]
    assert main([*args, "--out", str(tmp_path / "bad"), "--degrade", "0.5", *kinds]) == 0
    assert "degraded: 2 of them, listed in" in capsys.readouterr().out
    with (tmp_path / "bad" / "degradations.csv").open() as f:
        rows = {r["subject"]: r for r in csv.DictReader(f)}
    degraded = {s: r for s, r in rows.items() if r["degradation"] != "none"}
    assert [r["degradation"] for r in degraded.values()] == ["missing_leg", "noise"]
    assert all(r["description"] for r in rows.values()) and len(rows) == 4
    params = json.loads((tmp_path / "bad" / "phantom.json").read_text())
    assert params["degrade"] == {"fraction": 0.5, "kinds": ["missing_leg", "noise"], "subjects": sorted(degraded)}
    assert "degrade" not in json.loads((tmp_path / "clean" / "phantom.json").read_text())
    for s in rows:
        a, b = ({folder: sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / c / folder / f"{s}.nii.gz")))
                 for folder in ("images", "labels")} for c in ("clean", "bad"))  # fmt: skip
        assert np.array_equal(a["images"], b["images"]) == (s not in degraded), s
        assert np.array_equal(a["labels"], b["labels"]) == (rows[s]["degradation"] != "missing_leg"), s


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--degrade", "1.5"], "share of the subjects between 0 and 1"),
        (["--degrade", "nan"], "share of the subjects between 0 and 1"),
        (["--degrade-kinds", "blur"], "invalid choice: 'blur'"),
    ],
)
def test_cli_refuses_a_bad_share_or_kind(tmp_path, capsys, bad, message):
    with pytest.raises(SystemExit) as e:
        main(["phantom", "--out", str(tmp_path / "c"), "--subjects", "2", *bad])
    assert e.value.code == 2 and not (tmp_path / "c").exists()
    assert message in capsys.readouterr().err


def test_a_degraded_subject_is_seeded():
    spec = cohort_specs(2, 0, seed=5)[1]
    a = generate_subject(spec, (64, 64, 2), (5.6, 5.6, 7.0), n_subslices=1)
    d = Degradation("noise", 0.12)
    assert np.array_equal(degrade(a, d).image, degrade(a, d).image)
    other = generate_subject(dataclasses.replace(spec, index=0), (64, 64, 2), (5.6, 5.6, 7.0), n_subslices=1)
    assert not np.array_equal(degrade(other, d).image[0, 0], degrade(a, d).image[0, 0])
