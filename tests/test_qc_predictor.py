"""AgreementPredictor: nnU-Net's own fold loop, with our hooks recording each fold and writing the case's record.

nnU-Net's sliding window and its prediction loop are replaced by stand-ins (a network whose loaded weights decide
the labels, a loop that predicts each item); ``predict_logits_from_preprocessed_data``, the ensemble over the
folds, is nnU-Net's own, so the test checks that our hooks see every fold and the ensemble as nnU-Net makes them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunet_filternet.qc.predictor import AgreementPredictor


class _Weights(torch.nn.Module):
    """A "network" whose only state is one logit per class; the stand-in sliding window reads it."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(6))


def _sliding_window(self, image):
    """Logits (6, *spatial): class 4 (Gas) on voxels > 0, class 3 (Sol) elsewhere, shifted by the fold's weights."""
    logits = torch.zeros((6, *image.shape[1:]))
    logits[4] = (image[0] > 0).float() * 4
    logits[3] = (image[0] <= 0).float() * 4
    return logits + self.network.w.detach()[:, None, None, None]


def _loop(self, data_iterator, *args, **kwargs):
    """nnU-Net's loop, reduced to what our hooks rely on: each item's data predicted in turn."""
    return [self.predict_logits_from_preprocessed_data(item["data"]) for item in data_iterator]


@pytest.fixture
def predictor(tmp_path, monkeypatch):
    monkeypatch.setattr(nnUNetPredictor, "predict_sliding_window_return_logits", _sliding_window)
    monkeypatch.setattr(nnUNetPredictor, "predict_from_data_iterator", _loop)
    p = AgreementPredictor(tmp_path / "qc", device=torch.device("cpu"), verbose=False, allow_tqdm=False)
    p.network = _Weights()
    agree = {"w": torch.zeros(6)}
    sol_everywhere = {"w": torch.tensor([0.0, 0, 0, 9.0, 0, 0])}  # this fold calls every voxel Sol
    p.list_of_parameters = [agree, agree, sol_everywhere]
    return p


def test_every_fold_and_the_ensemble_are_recorded_per_case(predictor, tmp_path):
    image = torch.ones((1, 2, 4, 4))
    image[0, 0] = -1  # slice 0 Sol, slice 1 Gas (for the two agreeing folds)
    items = [{"data": image, "ofile": str(tmp_path / "pred" / "sub-001_L"), "data_properties": {}},
             {"data": -image, "ofile": str(tmp_path / "pred" / "sub-001_R"), "data_properties": {}}]  # fmt: skip
    out = predictor.predict_from_data_iterator(iter(items), False, 1)
    assert len(out) == 2 and out[0].shape == (6, 2, 4, 4)
    record = json.loads((tmp_path / "qc" / "sub-001_L.json").read_text())
    assert record["case"] == "sub-001_L" and record["folds"] == 3
    gas, sol = record["compartments"]["Gas"], record["compartments"]["Sol"]
    # ensemble = mean logits: slice 1 Gas (4, 4, 4) against Sol (0, 0, 9) -> Gas; slice 0 Sol
    assert gas["voxels"] == 16 and sol["voxels"] == 16
    assert gas["fold_dice"] == pytest.approx((1 + 1 + 0) / 3)  # the Sol-everywhere fold has no Gas: Dice 0
    assert sol["fold_dice"] == pytest.approx((1 + 1 + 2 * 16 / (32 + 16)) / 3)
    p = np.exp([0, 0, 0, 3.0, 4.0, 0])
    p /= p.sum()
    assert gas["entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(6), rel=1e-5)
    assert json.loads((tmp_path / "qc" / "sub-001_R.json").read_text())["case"] == "sub-001_R"
    assert predictor._fold_labels == []  # nothing kept between cases


def test_a_prediction_without_an_output_file_writes_no_record(predictor, tmp_path):
    predictor.predict_from_data_iterator(iter([{"data": torch.ones((1, 1, 2, 2)), "ofile": None}]), False, 1)
    assert not (tmp_path / "qc").exists()
