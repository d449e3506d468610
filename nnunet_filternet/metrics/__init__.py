"""Evaluation of label maps: Dice, volumes and surface distances per compartment, per case and per subject.

- :mod:`.overlap`: Dice and volumes (cheap counts).
- :mod:`.surface`: one expensive pass (surfaces + distance transforms) and cheap metric functions on it;
  :func:`~.surface.compartment_metrics` combines both for a whole label map.
- :mod:`.matching`: pairing prediction and reference files by case name; subject names.
- :mod:`.evaluate`: folder-level evaluation written to CSV (``filternet evaluate``).
- :mod:`.benchmark`: a synthetic full scan to time :func:`~.surface.compartment_metrics`.
"""
