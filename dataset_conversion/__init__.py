"""Scans of both legs <-> nnU-Net raw datasets of single, left-looking legs.

The data's journey, one module per step:

- :mod:`~nnunet_filternet.dataset_conversion.readers`: find and read scans (NIfTI, NRRD, MHA/MHD, DICOM series
  folders) and label maps, and reject bad ones with a message naming the file.
- :mod:`~nnunet_filternet.dataset_conversion.bias`: body mask (Otsu), N4 bias-field correction, z-score.
- :mod:`~nnunet_filternet.dataset_conversion.orientation`: which index axis is the patient's left-right,
  antero-posterior and superior-inferior axis (from the direction cosines).
- :mod:`~nnunet_filternet.dataset_conversion.legs`: Otsu + KMeans (k = 2) leg localisation and crop boxes.
- :mod:`~nnunet_filternet.dataset_conversion.mirror`: source crop <-> leg image (reorientation, right legs
  mirrored), and back.
- :mod:`~nnunet_filternet.dataset_conversion.records`: the ``legs.json`` schema that makes every step reversible.
- :mod:`~nnunet_filternet.dataset_conversion.legs_of_scan`: one scan -> its legs (the steps above, in memory).
- :mod:`~nnunet_filternet.dataset_conversion.splits`: subject-grouped, stratified, seeded cross-validation folds.
- :mod:`~nnunet_filternet.dataset_conversion.dataset_json`: nnU-Net's ``dataset.json`` with FilterNet's edge
  weights.
- :mod:`~nnunet_filternet.dataset_conversion.scan_worker`: one scan -> leg files + ledger, in a worker process
  (resume).
- :mod:`~nnunet_filternet.dataset_conversion.convert`: ``filternet convert`` (both modes, parallel runs, datasets,
  timing).
- :mod:`~nnunet_filternet.dataset_conversion.restore`: ``filternet restore`` (leg predictions -> label maps on the
  scans).
- :mod:`~nnunet_filternet.dataset_conversion.unchanged`: writes that leave unchanged files alone (reruns touch
  nothing).
- :mod:`~nnunet_filternet.dataset_conversion.quality`: measurements on a phantom cohort (crop coverage, residual
  bias, speed).
"""
