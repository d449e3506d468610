"""The trainers nnU-Net's CLIs find by name (``nnUNetv2_train ... -tr NAME``, ``nnUNetv2_predict ... -tr NAME``).

nnU-Net recipe (nnU-Net's optimizer, schedule, Dice + CE with deep supervision, augmentation, plans):

========================================  =====================================  ==============================
trainer                                   network                                loss
========================================  =====================================  ==============================
``nnUNetTrainer`` (stock)                 the plans' network                     Dice + CE
``nnUNetTrainerUNet``                     plain U-Net (E_A + D_A)                Dice + CE
``nnUNetTrainerBUNet``                    FilterNet (E_B + D_A)                  Dice + CE (lambda = 0)
``nnUNetTrainerUNetF``                    plain U-Net                            (1 - l) Lc + l Le, edge gate
``nnUNetTrainerFilterNet``                FilterNet                              (1 - l) Lc + l Le, edge gate
``nnUNetTrainerBoundaryAwareFCN``         Boundary-Aware FCN                     final + region + edge CE
``nnUNetTrainerFilterNetLaplacian``       FilterNet                              as FilterNet, gate F_L = L * x
``nnUNetTrainerFilterNetFixedSigma``      FilterNet                              as FilterNet, sigma fixed at 1
``nnUNetTrainerFilterNetUnitEnergy``      FilterNet                              as FilterNet, unit-energy kG
``nnUNetTrainerFilterNetSigmaDecay``      FilterNet                              as FilterNet, sigma trained
                                                                                 directly, weight decay 5e-4
``nnUNetTrainerFilterNetConstantTarget``  FilterNet                              as FilterNet, F(Y) a constant
========================================  =====================================  ==============================

``nnUNetTrainerFilterNetLaplacian`` and ``...FixedSigma`` are the edge gates of the paper's Table III ("F_L" and
"F_LrhoG(sigma = 1)"). ``nnUNetTrainerFilterNet`` reads tau as the paper's eq. (12) writes it, under which sigma
grows; ``...UnitEnergy`` is the scale-invariant option under which sigma settles; ``...SigmaDecay`` and
``...ConstantTarget`` are the two details the paper does not state that would explain its sigma below 1
(docs/training.md, "Sigma").

``nnUNetTrainerUNet`` differs from the stock trainer only by our log lines (parameter count, peak memory)
and by building a plain U-Net even from ``nnUNetPlans_FilterNet``.

Variants, all made by one factory under one naming rule (:mod:`variants`): each trainer ``X`` above has its twin
``XPaper`` (the paper's protocol, :mod:`paper_protocol`), one line each below; budget variants of these and of any
other trainer (``X_1epoch``, ``X_50epochs``, ``nnUNetTrainer_40epochs_40iters_4val``, ...) are attributes of this
module too, made on first use by the module's ``__getattr__``.
"""

from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_filternet.training.boundary_aware_loss import BoundaryAwareLossMixin
from nnunet_filternet.training.edge_gate_owner import EdgeGateOwnerMixin
from nnunet_filternet.training.networks import BOUNDARY_AWARE_FCN, FILTERNET, PLAIN_UNET, PlansNetworkMixin
from nnunet_filternet.training.telemetry import TelemetryMixin
from nnunet_filternet.training.variants import make_variant, variant_attribute


def paper_twin(base: type) -> type:
    """``<base>Paper``: ``base`` with the paper's protocol, a class of this module (training/variants.py)."""
    return make_variant(base, __name__, paper=True)


# --- nnU-Net recipe ---------------------------------------------------------------------------------------
class nnUNetTrainerUNet(TelemetryMixin, PlansNetworkMixin, nnUNetTrainer):
    """UNet baseline: plain U-Net (Block A encoder and decoder), nnU-Net's recipe."""

    network_class_name = PLAIN_UNET


class nnUNetTrainerBUNet(TelemetryMixin, PlansNetworkMixin, nnUNetTrainer):
    """BUNet: Block B encoder + nnU-Net decoder, no edge gate (lambda = 0)."""

    network_class_name = FILTERNET


class nnUNetTrainerFilterNet(EdgeGateOwnerMixin, nnUNetTrainerBUNet):
    """FilterNet: Block B encoder + edge gate and loss (8)."""


class nnUNetTrainerUNetF(EdgeGateOwnerMixin, nnUNetTrainerUNet):
    """UNet-F: plain U-Net + edge gate and loss (8)."""


class nnUNetTrainerBoundaryAwareFCN(BoundaryAwareLossMixin, TelemetryMixin, PlansNetworkMixin, nnUNetTrainer):
    """Boundary-Aware FCN: shared encoder, region and edge decoders, fusion; three-term loss."""

    network_class_name = BOUNDARY_AWARE_FCN


class nnUNetTrainerFilterNetLaplacian(nnUNetTrainerFilterNet):
    """FilterNet with Table III's Laplacian-only gate F_L = L * x (no rho, no Gaussian, no sigma)."""

    edge_gate_laplacian_only = True


class nnUNetTrainerFilterNetFixedSigma(nnUNetTrainerFilterNet):
    """FilterNet with Table III's gate F_LrhoG(sigma = 1): sigma fixed at 1, not trained."""

    edge_gate_train_sigma = False


class nnUNetTrainerFilterNetUnitEnergy(nnUNetTrainerFilterNet):
    """FilterNet whose Gaussian keeps a constant sum of squares (scale-invariant Le): sigma settles."""

    edge_gate_normalisation = "unit_energy"


#: Weight decay of sigma in ``...SigmaDecay``: the value of SGD recipes of the paper's time (e.g. FCN, Long et al.,
#: momentum 0.9); the paper names none.
SIGMA_WEIGHT_DECAY = 5e-4


class nnUNetTrainerFilterNetSigmaDecay(nnUNetTrainerFilterNet):
    """FilterNet with sigma trained as itself (not log sigma) under weight decay :data:`SIGMA_WEIGHT_DECAY`."""

    edge_gate_sigma_parametrisation = "direct"
    edge_gate_sigma_weight_decay = SIGMA_WEIGHT_DECAY


class nnUNetTrainerFilterNetConstantTarget(nnUNetTrainerFilterNet):
    """FilterNet whose edge loss holds the labels' edge map F(Y_n | sigma) as a constant target."""

    edge_loss_constant_target = True


# --- the paper's protocol: each trainer above with PaperProtocolMixin (training/variants.py) --------------
nnUNetTrainerUNetPaper = paper_twin(nnUNetTrainerUNet)
nnUNetTrainerBUNetPaper = paper_twin(nnUNetTrainerBUNet)
nnUNetTrainerFilterNetPaper = paper_twin(nnUNetTrainerFilterNet)
nnUNetTrainerUNetFPaper = paper_twin(nnUNetTrainerUNetF)
nnUNetTrainerBoundaryAwareFCNPaper = paper_twin(nnUNetTrainerBoundaryAwareFCN)
nnUNetTrainerFilterNetLaplacianPaper = paper_twin(nnUNetTrainerFilterNetLaplacian)
nnUNetTrainerFilterNetFixedSigmaPaper = paper_twin(nnUNetTrainerFilterNetFixedSigma)
nnUNetTrainerFilterNetUnitEnergyPaper = paper_twin(nnUNetTrainerFilterNetUnitEnergy)
nnUNetTrainerFilterNetSigmaDecayPaper = paper_twin(nnUNetTrainerFilterNetSigmaDecay)
nnUNetTrainerFilterNetConstantTargetPaper = paper_twin(nnUNetTrainerFilterNetConstantTarget)


#: The nnU-Net-recipe trainers, in table order.
RECIPE_TRAINERS: tuple[type, ...] = (
    nnUNetTrainerUNet,
    nnUNetTrainerBUNet,
    nnUNetTrainerFilterNet,
    nnUNetTrainerUNetF,
    nnUNetTrainerBoundaryAwareFCN,
    nnUNetTrainerFilterNetLaplacian,
    nnUNetTrainerFilterNetFixedSigma,
    nnUNetTrainerFilterNetUnitEnergy,
    nnUNetTrainerFilterNetSigmaDecay,
    nnUNetTrainerFilterNetConstantTarget,
)
#: Their Paper twins, in the same order.
PAPER_TRAINERS: tuple[type, ...] = (
    nnUNetTrainerUNetPaper,
    nnUNetTrainerBUNetPaper,
    nnUNetTrainerFilterNetPaper,
    nnUNetTrainerUNetFPaper,
    nnUNetTrainerBoundaryAwareFCNPaper,
    nnUNetTrainerFilterNetLaplacianPaper,
    nnUNetTrainerFilterNetFixedSigmaPaper,
    nnUNetTrainerFilterNetUnitEnergyPaper,
    nnUNetTrainerFilterNetSigmaDecayPaper,
    nnUNetTrainerFilterNetConstantTargetPaper,
)
#: Every trainer of this module by name (budget variants of any trainer are made on demand, below).
BASE_TRAINERS: tuple[type, ...] = RECIPE_TRAINERS + PAPER_TRAINERS

__all__ = [cls.__name__ for cls in BASE_TRAINERS]


def __getattr__(name: str) -> type:
    """Budget variants (``X_50epochs``, ``X_40epochs_40iters_4val``, ...) of any trainer, made on first access."""
    return variant_attribute(name, __name__)
