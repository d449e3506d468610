"""FilterNet (Block B encoder + nnU-Net decoder) and the Boundary-Aware FCN, built from nnU-Net plans.

Modules: ``block_b`` (one Block B stage), ``encoder`` (the Block B encoder), ``filternet`` (``FilterNet``),
``boundary_aware_fcn`` (``BoundaryAwareFCN``), ``from_plans`` (the zeta rule and plans arch_kwargs),
``receptive_field`` (receptive-field gain of the zeta convs).
"""

from __future__ import annotations


def count_parameters(module) -> int:
    """Number of parameters (trainable or not) of a ``torch.nn.Module``, each shared parameter counted once.

    The count of a network wrapped by DDP or ``torch.compile`` is that of the network (the wrappers hold it as a
    sub-module and have no parameters of their own). ``report/checkpoints.py`` counts the same from a checkpoint's
    state dict (:func:`nnunet_filternet.report.checkpoints.count_state_dict_parameters`).
    """
    return int(sum(p.numel() for p in module.parameters()))
