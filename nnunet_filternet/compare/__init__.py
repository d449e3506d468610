"""``filternet compare``: two models, several training repeats each, one verdict per compartment and metric.

- :mod:`.stats`: the statistics (t interval, Wilcoxon signed-rank, Holm, run-to-run margin), vectorised.
- :mod:`.comparison`: per-subject rows per repeat -> rows with verdicts (:func:`~.comparison.compare_models`).
- :mod:`.inputs`: reading and checking ``filternet evaluate`` metric CSVs.
- :mod:`.tables` / :mod:`.figure`: ``comparison.csv``, the printed table and summary, the forest plot.
- :mod:`.files`: CSVs in, CSV and figure out (:func:`~.files.compare_files`, the CLI's work).
"""
