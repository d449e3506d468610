"""``filternet bench``: FilterNet against stock nnU-Net on cost, side by side in one process.

Modules, in the order a benchmark runs them:

- ``options``: what to run (device, repeats, models, parts); ``plans``: the configuration every model
  shares (built-in phantom-leg 3d_fullres plans, or a real nnUNetPlans.json), a ``BenchSetup``.
- ``models``: the model zoo, each model named by the nnU-Net trainer that trains it (stock ``nnUNetTrainer``
  on plain U-Net and ResEnc M configurations, our FilterNet, BUNet, UNet-F and BA-FCN trainers).
- ``training_step``: the trainer's own network, loss, optimizer and ``train_step`` on a synthetic batch;
  ``flops``, ``timing`` and ``memory`` measure it.
- ``gate_cost``: the edge gate and edge loss alone; ``inference``: nnU-Net's sliding-window predictor;
  ``throughput``: conversion and metric throughput; ``profile``: torch.profiler tables (``--profile``).
- ``targets``: the pass/fail checks of the issue; ``report``: Markdown and JSON; ``runner``: orchestration.
"""

from __future__ import annotations
