"""FilterNet and its comparison models as nnU-Net trainers.

The concrete trainer classes live in :mod:`nnunet_filternet.training.trainers` (nnU-Net finds them through
the shim folder ``nnunet_filternet/nnunet_ext/trainers``). The other modules are the small pieces they
are made of: the owner of the edge gate's sigma, the losses, the network builders and the kernel policy, the
paper's protocol, the training-budget factory and the per-epoch telemetry. This package imports nothing heavy on
its own.
"""
