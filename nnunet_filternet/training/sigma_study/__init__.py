"""The sigma study of docs/training.md ("Sigma"): scripts that measure how the edge gate's sigma moves.

Each module runs with ``python -m nnunet_filternet.training.sigma_study.<module>``:

- :mod:`.static_gradients`: dLe/dsigma of fixed predictions under each reading of tau (CPU, seconds).
- :mod:`.weight_decay_schedule`: sigma under weight decay alone over the paper's schedule (CPU, seconds).
- :mod:`.trajectories`: sigma per epoch of finished edge-gate trainings, from their final checkpoints.
- :mod:`.trainers`: the study's experiment-only trainers (one per reading of tau, short budget); run as a module it
  prints the folder to put on ``nnUNet_extTrainer`` (:data:`.trainers.EXT_TRAINER_DIR`).

They import what they measure from the package (the gate, the loss, the label convention, nnU-Net's logging keys,
the budget factory); nothing here is imported by the package itself.
"""
