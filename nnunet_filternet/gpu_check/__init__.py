"""Readiness for a GPU: the checks of ``filternet gpu-check`` and their CPU stand-ins used by the tests.

Modules: ``amp`` (a training step under autocast against float32), ``placement`` (tensors a step creates on the
host), ``device_checks`` (both on a preprocessed dataset, as a subprocess of the check), ``runner`` (the whole
check: phantom -> nnU-Net plans -> training -> prediction -> benchmark, PASS/FAIL per step with timings).
"""
