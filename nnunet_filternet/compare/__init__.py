"""``filternet compare``: two models, several training repeats each, one verdict per compartment and metric.

- :mod:`.comparison`: per-subject rows per repeat -> rows with verdicts (:func:`~.comparison.compare_models`), with
  the statistics of :mod:`nnunet_filternet.statistics` (the paired t over folds, Holm, the detectable difference).
- :mod:`.inputs`: reading and checking ``filternet evaluate`` metric CSVs; one check that repeats are distinct.
- :mod:`.tables` / :mod:`.figure`: ``comparison.csv``, the printed table and summary, the forest plot.
- :mod:`.files`: CSVs in, CSV and figure out (:func:`~.files.compare_files`, the CLI's work).
"""
