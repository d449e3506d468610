"""nnU-Net's predictor that also measures, per case, the folds' agreement and the ensemble's uncertainty.

:class:`AgreementPredictor` is nnU-Net's ``nnUNetPredictor`` with three of its hooks wrapped (nothing of it
copied): ``predict_from_data_iterator`` notes which case is being predicted, ``predict_sliding_window_return_logits``
(called once per fold) keeps each fold's label map, and ``predict_logits_from_preprocessed_data`` (the ensemble
over the folds) hands them with the ensemble's logits to :func:`.agreement.fold_signals` and writes
``<qc_folder>/<case>.json`` (format in :mod:`.agreement`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

from nnunet_filternet.qc.agreement import fold_signals
from nnunet_filternet.utils.atomic import write_json


class AgreementPredictor(nnUNetPredictor):
    """``nnUNetPredictor`` that writes ``<qc_folder>/<case>.json`` for every case it predicts (module docstring)."""

    def __init__(self, qc_folder: str | os.PathLike, **kwargs):
        super().__init__(**kwargs)
        self.qc_folder = Path(qc_folder)
        self._case: str | None = None
        self._fold_labels: list[np.ndarray] = []

    def predict_from_data_iterator(self, data_iterator, *args, **kwargs):
        def noting(items):
            for item in items:
                ofile = item.get("ofile") if isinstance(item, dict) else None
                self._case = None if ofile is None else os.path.basename(ofile)
                yield item

        return super().predict_from_data_iterator(noting(data_iterator), *args, **kwargs)

    def predict_sliding_window_return_logits(self, input_image):
        logits = super().predict_sliding_window_return_logits(input_image)
        self._fold_labels.append(logits.argmax(0).to("cpu").numpy().astype(np.uint8))
        return logits

    def predict_logits_from_preprocessed_data(self, data):
        self._fold_labels = []
        logits = super().predict_logits_from_preprocessed_data(data)
        if self._case is not None:
            signals = fold_signals(self._fold_labels, logits.float().numpy())
            self.qc_folder.mkdir(parents=True, exist_ok=True)
            record = {"case": self._case, "folds": len(self._fold_labels), "compartments": signals}
            write_json(self.qc_folder / f"{self._case}.json", record)
        self._fold_labels = []
        return logits
