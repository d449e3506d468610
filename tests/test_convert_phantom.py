"""Conversion on a few phantom subjects at a reduced matrix: crops, bias correction, round trip."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_filternet.dataset_conversion.convert import convert_training
from nnunet_filternet.dataset_conversion.quality import measure_cohort
from nnunet_filternet.dataset_conversion.restore import restore_predictions

SHAPE, SPACING = (128, 80, 6), (2.8, 2.8, 7.0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from nnunet_filternet.phantom import make_cohort

    out = tmp_path_factory.mktemp("phantom") / "cohort"
    return make_cohort(out, n_subjects=4, n_healthy=1, seed=3, shape=SHAPE, spacing=SPACING, save_bias=True, jobs=2)


def test_each_crop_holds_its_whole_leg_and_nothing_of_the_other(cohort):
    rows = measure_cohort(cohort, jobs=2)  # crops from the images alone (labels are only used to score them)
    assert len(rows) == 4
    for r in rows:
        assert r["R_coverage"] == r["L_coverage"] == 1.0, r
        assert r["R_other_voxels"] == r["L_other_voxels"] == 0, r
        # N4 recovers the true bias field up to a constant: the ratio varies less than the field itself,
        # much less in healthy legs (in DM1 legs N4 mistakes some fatty infiltration for bias).
        assert r["cv_estimated_over_true"] < (0.3 if r["group"] == "healthy" else 0.8) * r["cv_true_field"], r
    assert {r["group"] for r in rows} == {"healthy", "DM1"}


def test_phantom_labels_survive_convert_and_restore(cohort, tmp_path, nnunet_env):
    dataset = convert_training(cohort / "images", cohort / "labels", 12, "Phantom", folds=2, jobs=2)
    written = restore_predictions(dataset / "labelsTr", dataset / "legs.json", tmp_path / "restored", jobs=2)
    assert len(written) == 4
    for path in written:
        restored, truth = sitk.ReadImage(str(path)), sitk.ReadImage(str(cohort / "labels" / path.name))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(restored), sitk.GetArrayFromImage(truth))
        assert (restored.GetOrigin(), restored.GetSpacing()) == (truth.GetOrigin(), truth.GetSpacing())
