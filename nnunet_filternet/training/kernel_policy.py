"""The kernel policy: one place that decides the CPU kernels of every trainer's norms and convolutions.

- Norms: nnU-Net's plans name ``torch.nn.InstanceNorm3d`` (``InstanceNorm2d`` in 2D). On the CPU PyTorch
  computes it through a slow batch-norm path; ``network/norm.py`` has a subclass with the same parameters and
  values that takes the fused group-norm kernel there.
- Convolutions: a narrow ``nn.Conv3d`` (at most 16 channels in and out) spends more time on the CPU in oneDNN's
  layout reorders than in arithmetic; ``network/conv.py`` has a subclass that convolves in channels-last
  layout there (same parameters, values up to float rounding); a 2D conv of one input channel (a network's
  first conv on a one-channel image) gets its weight gradient as one convolution of the padded images with the
  output gradient, faster than oneDNN's for one channel.

Both take PyTorch's own code on every other device. A comparison of
models is only like for like when all of them use the same kernels, and an architecture should not carry a
speed choice, so the choice is made here, after any network is built, for every trainer that has
:class:`KernelPolicyMixin` among its bases: all of ours (through ``PlansNetworkMixin``), the budget variants of
any trainer (``training/budget.py``, stock ``nnUNetTrainer`` included) and the stock trainer as
``filternet bench`` runs it.

It wraps nnU-Net's ``build_network_architecture`` hook, which nnU-Net calls both in training and in
``nnUNetv2_predict``; the state-dict keys do not change, so checkpoints load into either kind of network.
"""

from __future__ import annotations

import functools


class KernelPolicyMixin:
    """Mixin before an ``nnUNetTrainer`` (or a mixin building the network): its networks use the CPU-fast kernels."""

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, *args, **kwargs):
        """``super()``'s network (nnU-Net's signature: the two managers, input and output channels, deep
        supervision), its instance norms, narrow 3D convs and one-channel 2D convs made CPU-fast in place."""
        from nnunet_filternet.network.conv import use_cpu_fast_convs
        from nnunet_filternet.network.norm import use_cpu_fast_instance_norms

        network = super().build_network_architecture(plans_manager, configuration_manager, *args, **kwargs)
        return use_cpu_fast_convs(use_cpu_fast_instance_norms(network))


@functools.cache
def with_kernel_policy(trainer: type) -> type:
    """``trainer`` if it applies the kernel policy already, else a subclass of it (same name, made once) that does."""
    if issubclass(trainer, KernelPolicyMixin):
        return trainer
    doc = f"{trainer.__name__} with the project's kernel policy (training/kernel_policy.py)."
    return type(trainer.__name__, (KernelPolicyMixin, trainer), {"__module__": __name__, "__doc__": doc})
