"""Which network a trainer builds from the plans: nnU-Net's ``build_network_architecture`` hook.

nnU-Net calls ``trainer_class.build_network_architecture(plans_manager, configuration_manager, ...)`` both
in training and in ``nnUNetv2_predict`` (on the class, without an instance). :class:`PlansNetworkMixin`
implements it as a classmethod driven by two class attributes, so each trainer only names its network:

- ``network_class_name``: :data:`FILTERNET`, :data:`PLAIN_UNET` or :data:`BOUNDARY_AWARE_FCN`;
- ``batch_norm``: replace the plans' norm op by the matching BatchNorm (the paper's protocol).

The built network then goes through the project's kernel policy (:mod:`kernel_policy`), as every trainer's does.

The plans' configuration may name either nnU-Net's ``PlainConvUNet`` (``nnUNetPlans``, ``nnUNetPlans_tiny``,
``nnUNetPlans_paper``) or our FilterNet (``nnUNetPlans_FilterNet``); :func:`arch_kwargs_for` turns either
into the keyword arguments of the requested class, so any of our trainers runs on any of these plans.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.training.kernel_policy import KernelPolicyMixin

#: ``network_class_name`` of our FilterNet (as written into plans).
FILTERNET = "nnunet_filternet.network.filternet.FilterNet"
#: nnU-Net's default plain U-Net.
PLAIN_UNET = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
#: The Boundary-Aware FCN comparison model.
BOUNDARY_AWARE_FCN = "nnunet_filternet.network.boundary_aware_fcn.BoundaryAwareFCN"


def plain_arch_kwargs(arch_kwargs: dict) -> dict:
    """Only the keyword arguments ``PlainConvUNet`` accepts (drops FilterNet extras, e.g. ``block_b_kernel_sizes``)."""
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    accepted = inspect.signature(PlainConvUNet.__init__).parameters
    return {k: copy.deepcopy(v) for k, v in arch_kwargs.items() if k in accepted}


def with_batch_norm(arch_kwargs: dict) -> dict:
    """Copy of plans arch_kwargs (ops as strings) with the norm op replaced by the matching BatchNorm.

    Raises:
        FilterNetError: the kwargs have no ``conv_op`` / ``norm_op`` (not an nnU-Net U-Net architecture).
    """
    import pydoc

    from dynamic_network_architectures.building_blocks.helper import get_matching_batchnorm

    if "conv_op" not in arch_kwargs or "norm_op" not in arch_kwargs:
        raise FilterNetError(
            f"with_batch_norm: expected arch_kwargs with conv_op and norm_op, found {sorted(arch_kwargs)}"
        )
    kwargs = copy.deepcopy(arch_kwargs)
    conv_op = pydoc.locate(kwargs["conv_op"]) if isinstance(kwargs["conv_op"], str) else kwargs["conv_op"]
    bn = get_matching_batchnorm(conv_op)
    kwargs["norm_op"] = f"{bn.__module__}.{bn.__name__}"
    kwargs["norm_op_kwargs"] = {"eps": 1e-5, "affine": True}
    return kwargs


def arch_kwargs_for(target_class_name: str, plans_class_name: str, plans_kwargs: dict, spacing: Sequence[float]):
    """Keyword arguments of ``target_class_name`` from a plans configuration's architecture.

    Args:
        target_class_name: :data:`FILTERNET`, :data:`PLAIN_UNET` or :data:`BOUNDARY_AWARE_FCN`.
        plans_class_name: the configuration's ``architecture.network_class_name``.
        plans_kwargs: its ``architecture.arch_kwargs`` (not modified).
        spacing: its voxel spacing in mm (nnU-Net axis order).

    Returns:
        A new dict: the plans' kwargs as they are when the plans already name the target class, FilterNet
        kwargs derived with ``filternet_arch_kwargs`` from the plain U-Net part otherwise, and only the plain
        U-Net kwargs for the plain U-Net and the Boundary-Aware FCN.
    """
    if target_class_name == plans_class_name == FILTERNET:
        from nnunet_filternet.network.from_plans import without_legacy_keys

        return without_legacy_keys(plans_kwargs)
    if target_class_name == plans_class_name:
        return copy.deepcopy(plans_kwargs)
    if plans_class_name not in (PLAIN_UNET, FILTERNET):
        raise FilterNetError(
            f"cannot build {target_class_name.rsplit('.', 1)[-1]} from plans whose network is {plans_class_name}; "
            f"expected {PLAIN_UNET} or {FILTERNET} (nnU-Net's default planner or `filternet plans`)"
        )
    plain = plain_arch_kwargs(plans_kwargs)
    if target_class_name == FILTERNET:
        from nnunet_filternet.network.from_plans import filternet_arch_kwargs

        return filternet_arch_kwargs(plain, spacing)
    return plain


def build_network_from_plans(
    target_class_name: str,
    configuration_manager,
    num_input_channels: int,
    num_output_channels: int,
    enable_deep_supervision: bool = True,
    batch_norm: bool = False,
):
    """Build ``target_class_name`` for a plans configuration with nnU-Net's ``get_network_from_plans``."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    kwargs = arch_kwargs_for(
        target_class_name,
        configuration_manager.network_arch_class_name,
        configuration_manager.network_arch_init_kwargs,
        configuration_manager.spacing,
    )
    if batch_norm:
        kwargs = with_batch_norm(kwargs)
    return get_network_from_plans(
        target_class_name,
        kwargs,
        configuration_manager.network_arch_init_kwargs_req_import,
        num_input_channels,
        num_output_channels,
        allow_init=True,
        deep_supervision=enable_deep_supervision,
    )


class NamedNetworkMixin:
    """``build_network_architecture`` for a trainer naming its network in class attributes (see module doc)."""

    #: the network class to build (a dotted path as in plans).
    network_class_name: str = FILTERNET
    #: replace the plans' norm op by BatchNorm.
    batch_norm: bool = False

    @classmethod
    def build_network_architecture(
        cls,
        plans_manager,
        configuration_manager,
        num_input_channels: int,
        num_output_channels: int,
        enable_deep_supervision: bool = True,
    ):
        return build_network_from_plans(
            cls.network_class_name,
            configuration_manager,
            num_input_channels,
            num_output_channels,
            enable_deep_supervision,
            batch_norm=cls.batch_norm,
        )


class PlansNetworkMixin(KernelPolicyMixin, NamedNetworkMixin):
    """The network the class attributes name, built from the plans, under the project's kernel policy."""
