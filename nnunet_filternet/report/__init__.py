"""``filternet report``: the paper's tables and figures from nnU-Net cross-validation results.

- :mod:`.results`: finding trainers' folds, validation predictions, ground truth and images.
- :mod:`.logs` / :mod:`.checkpoints`: what training logged (epoch time, memory, edge gate) and saved.
- :mod:`.postprocessing`: nnU-Net's largest-connected-component post-processing, per label.
- :mod:`.stats`: paired tests against the reference trainer.
- :mod:`.tables` / :mod:`.figures` / :mod:`.examples`: Tables I-III, Fig. 5 bars, Fig. 4 overlays.
- :mod:`.report`: orchestration (:func:`~.report.write_report`).
"""
