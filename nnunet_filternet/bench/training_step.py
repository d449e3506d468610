"""One training step of a benchmarked model: its trainer, built and initialised by nnU-Net, on a synthetic batch.

:func:`bench_trainer` builds the model's nnU-Net trainer (``nnUNetTrainer`` for stock nnU-Net, ours for the
others, each under the project's kernel policy) exactly as ``nnUNetv2_train`` does: its own constructor, its
``initialize`` (network, edge gate, ``torch.compile`` when nnU-Net would, optimizer, loss) and
``on_train_epoch_start`` (train mode, learning rate, the edge loss's lambda). Their inputs are real: nnU-Net's
folders point into a temporary folder holding a one-case preprocessed dataset written by nnU-Net's own dataset
class (``initialize`` infers the dataset format from it) and the trainer's log. Only the data loader is
replaced, by one fixed synthetic batch already on the device, with deep-supervision targets from nnU-Net's
``DownsampleSegForDSTransform``. A step is then what ``run_training`` does per iteration:
``train_step(next(dataloader_train))`` (zero_grad, autocast + GradScaler on CUDA, forward, loss, backward,
gradient clipping, optimizer step).
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import tempfile
from pathlib import Path

import numpy as np
import torch

from nnunet_filternet.bench.models import ModelSpec
from nnunet_filternet.bench.plans import BenchSetup
from nnunet_filternet.network import count_parameters

#: The fold every benchmarked trainer is built for (the one-case dataset has no splits; none are read).
FOLD = 0


def synthetic_batch(setup: BenchSetup, ds_scales: list | None, device: torch.device, seed: int = 0) -> dict:
    """A batch as nnU-Net's data loader and transforms deliver it.

    Args:
        setup: gives batch size, input channels, patch size and number of classes.
        ds_scales: deep-supervision scales (``_get_deep_supervision_scales``), None without deep supervision.
        device: where the batch lives.
        seed: seed of the random image and labels.

    Returns:
        ``{"data": float32 B C *patch, "target": int16 B 1 *patch}``, the target a list of one tensor per
        deep-supervision scale (highest resolution first) when ``ds_scales`` is given.
    """
    from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

    generator = torch.Generator().manual_seed(seed)
    shape = (setup.batch_size, 1, *setup.patch_size)
    data = torch.randn((setup.batch_size, setup.num_input_channels, *setup.patch_size), generator=generator)
    seg = torch.randint(0, setup.num_classes, shape, generator=generator).to(torch.int16)
    if ds_scales is None:
        return {"data": data.to(device), "target": seg.to(device)}
    transform = DownsampleSegForDSTransform(ds_scales=ds_scales)
    per_sample = [transform(segmentation=s)["segmentation"] for s in seg]  # each: list over scales of 1 *spatial
    target = [torch.stack([sample[i] for sample in per_sample]).to(device) for i in range(len(ds_scales))]
    return {"data": data.to(device), "target": target}


def write_one_case_dataset(setup: BenchSetup, configuration: str, preprocessed: Path, seed: int = 0) -> Path:
    """nnU-Net's preprocessed folder of ``setup``'s dataset with one random patch-sized case of ``configuration``.

    Written by nnU-Net's ``nnUNetDatasetNumpy.save_case`` into
    ``preprocessed/<dataset_name>/<data_identifier>/bench_000.npz`` (+ ``.pkl``); returns that folder.
    """
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetNumpy

    manager = setup.plans_manager.get_configuration(configuration)
    folder = preprocessed / setup.plans_manager.dataset_name / manager.data_identifier
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((setup.num_input_channels, *setup.patch_size), dtype=np.float32)
    seg = rng.integers(0, setup.num_classes, (1, *setup.patch_size), dtype=np.int8)
    properties = {"spacing": list(setup.spacing), "shape_before_cropping": list(setup.patch_size)}
    nnUNetDatasetNumpy.save_case(data, seg, properties, str(folder / "bench_000"))
    return folder


@contextlib.contextmanager
def nnunet_folders_in(root: Path):
    """nnU-Net's three folder variables pointing into ``root`` for the duration of the block (restored after)."""
    from nnunet_filternet.pipeline import nnunet_runs

    with nnunet_runs.environment_set(nnunet_runs.environment(nnunet_runs.nnunet_folders(root))):
        yield


class BenchStep:
    """A trainer built by nnU-Net for the benchmark; calling it runs one training step.

    Attributes:
        trainer: the initialised trainer (its ``dataloader_train`` yields the one synthetic batch forever).
        batch: that batch.
    """

    def __init__(self, trainer, batch: dict, folder: tempfile.TemporaryDirectory):
        self.trainer = trainer
        self.batch = batch
        self.trainer.dataloader_train = itertools.repeat(batch)
        self._folder = folder  # the trainer's log and dataset live there; removed with this object

    @property
    def network(self) -> torch.nn.Module:
        """The network as the step runs it (compiled when nnU-Net compiles)."""
        return self.trainer.network

    @property
    def eager_network(self) -> torch.nn.Module:
        """The network without the ``torch.compile`` wrapper."""
        from torch._dynamo import OptimizedModule

        network = self.trainer.network
        return network._orig_mod if isinstance(network, OptimizedModule) else network

    @property
    def loss(self) -> torch.nn.Module:
        """The trainer's loss (for edge-gate trainers a ``RegionEdgeLoss`` with the gate in ``edge_loss``)."""
        return self.trainer.loss

    def __call__(self) -> float:
        """One training step, as ``run_training`` does it; returns the loss."""
        return float(self.trainer.train_step(next(self.trainer.dataloader_train))["loss"])

    def forward_backward(self) -> None:
        """Forward, loss and backward of the eager network, without the optimizer: what FLOP counting sees.

        Under ``flops.fake_tensors`` the activations and gradients are fake (the parameters' ``.grad`` too).
        """
        output = self.eager_network(self.batch["data"])
        self.loss(output, self.batch["target"]).backward()

    def parameter_count(self) -> int:
        """Parameters of the network (an edge gate's single sigma is not counted)."""
        return count_parameters(self.eager_network)

    def resident_tensors(self) -> list[torch.Tensor]:
        """Tensors alive between steps: parameters, gradients, buffers, optimizer state and the batch."""
        modules = [self.eager_network, self.loss]
        tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
        tensors += [p.grad for m in modules for p in m.parameters() if p.grad is not None]
        optimizer = self.trainer.optimizer
        tensors += [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
        target = self.batch["target"]
        tensors += [self.batch["data"], *(target if isinstance(target, list) else [target])]
        return tensors


def bench_trainer(spec: ModelSpec, setup: BenchSetup, device: torch.device, seed: int = 0) -> BenchStep:
    """``spec``'s trainer, built and initialised by nnU-Net for ``setup`` on ``device``, ready to step (call it).

    What nnU-Net prints while building (device, citation, epoch header) goes to the trainer's log file only.
    """
    from nnunet_filternet.bench.plans import variant_name

    configuration = variant_name(setup.configuration, spec.variant)
    folder = tempfile.TemporaryDirectory(prefix="filternet-bench-")
    root = Path(folder.name)
    write_one_case_dataset(setup, configuration, root / "nnUNet_preprocessed", seed)
    plans = copy.deepcopy(setup.plans)
    plans["continue_training"] = False  # nnU-Net's run_training sets it; the constructor reads it
    with nnunet_folders_in(root), contextlib.redirect_stdout(io.StringIO()):
        trainer = spec.trainer_class()(plans, configuration, FOLD, copy.deepcopy(setup.dataset_json), device)
        trainer.initialize()
        trainer.on_train_epoch_start()
    batch = synthetic_batch(setup, trainer._get_deep_supervision_scales(), device, seed)
    return BenchStep(trainer, batch, folder)
