"""The benchmarked models, each named by the nnU-Net trainer that trains it.

Stock nnU-Net is ``nnUNetTrainer`` on a plain U-Net configuration (and on a ResEnc M configuration); the
others are our trainers from ``nnunet_filternet.training.trainers``. The benchmark runs each trainer's own
constructor, ``initialize`` (``build_network_architecture``, ``configure_optimizers``, ``_build_loss``) and
``train_step``, so it measures exactly what training runs, on one shared plans configuration (see
:mod:`nnunet_filternet.bench.plans`). Every model, stock nnU-Net included, normalises with the same kernels: the
project's kernel policy (``training/kernel_policy.py``), which the demo's trainers apply too.
"""

from __future__ import annotations

import pydoc
from dataclasses import dataclass

STOCK_TRAINER = "nnunetv2.training.nnUNetTrainer.nnUNetTrainer.nnUNetTrainer"
OUR_TRAINERS = "nnunet_filternet.training.trainers"


@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model.

    Attributes:
        name: short name used in tables (``nnU-Net``, ``FilterNet``, ...).
        trainer: dotted name of the nnU-Net trainer class that builds and trains it.
        variant: plans configuration variant the trainer runs on (see ``plans.STOCK_VARIANTS``): ``stock``
            (PlainConvUNet) or ``resenc_m`` (ResidualEncoderUNet); None for the configuration as it is.
        edge_gate: trained with the edge gate and loss (paper eq. 8).
        description: one line for the report.
    """

    name: str
    trainer: str
    variant: str | None = None
    edge_gate: bool = False
    description: str = ""

    def unavailable_reason(self) -> str | None:
        """None if the trainer class can be imported, else why not (e.g. its module is not written yet)."""
        try:
            found = pydoc.locate(self.trainer)
        except Exception as e:  # a module that fails to import: report it, do not crash the benchmark
            return f"{self.trainer} failed to import: {type(e).__name__}: {e}"
        return None if found is not None else f"{self.trainer} not found"

    def trainer_class(self) -> type:
        """The trainer class under the project's kernel policy, as the demo trains it (import it first with
        :meth:`unavailable_reason` to get a readable failure)."""
        from nnunet_filternet.training.kernel_policy import with_kernel_policy

        return with_kernel_policy(pydoc.locate(self.trainer))


#: The reference every ratio is taken against: nnU-Net's default 3d_fullres network and trainer.
STOCK = "nnU-Net"

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(STOCK, STOCK_TRAINER, "stock", description="nnUNetTrainer, PlainConvUNet from the plans"),
    ModelSpec(
        "ResEnc M",
        STOCK_TRAINER,
        "resenc_m",
        description="nnUNetTrainer, ResidualEncoderUNet as nnU-Net's ResEnc M planner writes it, same topology",
    ),
    ModelSpec(
        "FilterNet",
        f"{OUR_TRAINERS}.nnUNetTrainerFilterNet",
        edge_gate=True,
        description="nnUNetTrainerFilterNet: Block B encoder E_B + D_A, edge gate",
    ),
    ModelSpec("BUNet", f"{OUR_TRAINERS}.nnUNetTrainerBUNet", description="nnUNetTrainerBUNet: FilterNet, no gate"),
    ModelSpec(
        "UNet-F",
        f"{OUR_TRAINERS}.nnUNetTrainerUNetF",
        edge_gate=True,
        description="nnUNetTrainerUNetF: PlainConvUNet + edge gate",
    ),
    ModelSpec(
        "BA-FCN",
        f"{OUR_TRAINERS}.nnUNetTrainerBoundaryAwareFCN",
        description="nnUNetTrainerBoundaryAwareFCN: shared E_A, region and edge decoders, fusion Phi",
    ),
)


def select_models(names: list[str] | None) -> tuple[ModelSpec, ...]:
    """The models named (in benchmark order, case-insensitive), all for None; stock nnU-Net is always included."""
    from nnunet_filternet.errors import FilterNetError

    if not names:
        return MODELS
    known = {m.name.lower() for m in MODELS}
    unknown = [n for n in names if n.lower() not in known]
    if unknown:
        raise FilterNetError(f"--models: expected names from {[m.name for m in MODELS]}, found {unknown}")
    wanted = {n.lower() for n in names} | {STOCK.lower()}
    return tuple(m for m in MODELS if m.name.lower() in wanted)
