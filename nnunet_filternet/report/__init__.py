"""``filternet report``: the paper's tables and figures from nnU-Net cross-validation results.

- :mod:`.results`: finding trainers' folds, validation predictions, ground truth and images.
- :mod:`.logs` / :mod:`.checkpoints`: what training logged (epoch time, memory, edge gate) and saved.
- :mod:`.postprocessing`: nnU-Net's largest-connected-component post-processing, per label.
- :mod:`.tables` / :mod:`.figures` / :mod:`.examples`: Tables I-III (Table I's paired tests are ``filternet
  compare``'s, over folds), Fig. 5 bars, Fig. 4 overlays.
- :mod:`.report`: orchestration (:func:`~.report.write_report`).
"""
