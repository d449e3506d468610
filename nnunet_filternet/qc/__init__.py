"""Which predictions to distrust: a quality record per predicted scan, side and compartment (``qc.csv``).

Modules: ``measures`` (what a leg label map says about itself), ``reference`` (the training set's statistics,
``qc_reference.json`` beside the model), ``agreement`` and ``predictor`` (the folds' agreement and the
ensemble's entropy, taken while nnU-Net predicts), ``signals`` (everything measured on one scan), ``rules``
(severities, reasons, scores), ``report`` (``qc.csv``, figures, the summary), ``check`` (the one call
``filternet predict`` makes). See docs/qc.md.
"""
