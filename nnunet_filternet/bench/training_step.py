"""One training step of a benchmarked model: its trainer's own code on a synthetic batch.

:func:`bench_trainer` subclasses the model's nnU-Net trainer (``nnUNetTrainer`` for stock nnU-Net, ours
for the others) and replaces only its constructor: the real one writes a log file and an output folder, and
``initialize`` needs a preprocessed dataset on disk. The replacement sets the attributes the trainer's
methods read and then does what ``initialize`` does, through the trainer's own hooks: build the network
(``build_network_architecture``), build the edge gate (edge-gate trainers, as their ``initialize`` does),
``torch.compile`` when nnU-Net would (``_do_i_compile``), ``configure_optimizers`` and ``_build_loss``. A
step is then the trainer's ``train_step``: zero_grad, autocast + GradScaler on CUDA, forward, loss,
backward, gradient clipping, optimizer step. Only the data loader is replaced, by one fixed synthetic
batch already on the device, with deep-supervision targets from nnU-Net's ``DownsampleSegForDSTransform``.
"""

from __future__ import annotations

import sys

import torch

from nnunet_filternet.bench.models import ModelSpec
from nnunet_filternet.bench.plans import BenchSetup


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


class BenchTrainerMixin:
    """Goes first in the bases of a trainer: a constructor without disk, then the trainer's own hooks."""

    def __init__(self, setup: BenchSetup, variant: str | None, device: torch.device, seed: int = 0):
        from nnunet_filternet.edge.schedule import edge_lambda
        from nnunet_filternet.training.edge_gate_owner import EdgeGateOwnerMixin, build_edge_gate

        # what nnUNetTrainer.__init__ sets and the hooks below read (its defaults)
        self.device, self.is_ddp, self.local_rank = device, False, 0
        self.plans_manager = setup.plans_manager
        self.configuration_manager = setup.configuration_manager_for(variant)
        self.dataset_json, self.label_manager = setup.dataset_json, setup.label_manager
        self.preprocessed_dataset_folder_base = None
        self.initial_lr, self.weight_decay, self.num_epochs, self.current_epoch = 1e-2, 3e-5, 1000, 0
        self.enable_deep_supervision = True
        self.grad_scaler = torch.GradScaler("cuda") if device.type == "cuda" else None
        # what initialize() does, minus the dataset
        self.num_input_channels = setup.num_input_channels
        with torch.device(device):  # built in place (also works on fake tensors, where .to() cannot swap)
            self.network = self.build_network_architecture(
                self.plans_manager,
                self.configuration_manager,
                self.num_input_channels,
                self.label_manager.num_segmentation_heads,
                self.enable_deep_supervision,
            )
            if isinstance(self, EdgeGateOwnerMixin):
                self.edge_gate = build_edge_gate(self.configuration_manager)
                self.edge_lambda = edge_lambda(self.current_epoch, self.num_epochs)
        self.eager_network = self.network
        if self._do_i_compile():
            self.network = torch.compile(self.network)
        self.optimizer, self.lr_scheduler = self.configure_optimizers()
        self.loss = self._build_loss()
        self.batch = synthetic_batch(setup, self._get_deep_supervision_scales(), device, seed)

    def print_to_log_file(self, *args, **kwargs) -> None:
        """nnU-Net's hooks log through this; the benchmark has no log file and prints to stderr."""
        print(*args, file=sys.stderr)

    def __call__(self) -> float:
        """One training step (the trainer's ``train_step``); returns the loss."""
        return float(self.train_step(self.batch)["loss"])

    def forward_backward(self) -> None:
        """Forward, loss and backward without the optimizer: what FLOP counting sees (works on fake tensors)."""
        output = self.network(self.batch["data"])
        self.loss(output, self.batch["target"]).backward()

    def parameter_count(self) -> int:
        """Parameters of the network (an edge gate's single sigma is not counted)."""
        return int(sum(p.numel() for p in self.eager_network.parameters()))

    def resident_tensors(self) -> list[torch.Tensor]:
        """Tensors alive between steps: parameters, gradients, buffers, optimizer state and the batch."""
        modules = [self.eager_network, self.loss]
        tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
        tensors += [p.grad for m in modules for p in m.parameters() if p.grad is not None]
        tensors += [v for state in self.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
        target = self.batch["target"]
        tensors += [self.batch["data"], *(target if isinstance(target, list) else [target])]
        return tensors


def bench_trainer(spec: ModelSpec, setup: BenchSetup, device: torch.device, seed: int = 0):
    """``spec``'s trainer, built for ``setup`` on ``device`` and ready to step (call it).

    Returns:
        An instance of a subclass of the trainer class with :class:`BenchTrainerMixin` first.
    """
    trainer = spec.trainer_class()
    cls = type(f"{trainer.__name__}Bench", (BenchTrainerMixin, trainer), {})
    return cls(setup, spec.variant, device, seed)
