"""Sigma under DDP: two CPU processes (gloo), first with the mixin's helpers, then with the trainer itself.

nnU-Net's DDP training assumes one GPU per rank: under a process group its trainer sets ``cuda:<rank>`` as the
device and wraps the network in ``DDP(network, device_ids=[rank])``. The first test runs the exact functions
the edge-gate mixin uses under DDP (broadcast at start, gradient averaging in a dedicated process group, the
gate's optimizer group and clip) next to a real ``DistributedDataParallel`` network, and checks that sigma's
gradient is the mean of the ranks' gradients. The second runs ``nnUNetTrainerFilterNet`` itself in both ranks
(its ``initialize``, ``on_train_start``, ``on_train_epoch_start`` and several ``train_step``: the trainer's own
parameter groups, clips and optimizer) with two CPU shims only: the device set back to the CPU after
construction, and nnU-Net's name ``DDP`` bound to a wrapper that drops ``device_ids`` (CPU modules take none).
Both ranks must then hold bit-identical sigma and network weights.
"""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from tests.tiny_dataset import DATASET_ID

pytestmark = pytest.mark.e2e  # whole nnU-Net runs in subprocesses: `make test-fast` skips them

#: Training steps each rank takes in the trainer test.
STEPS = 3


def _ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    from nnunet_filternet.edge.gate import EdgeGate
    from nnunet_filternet.training.edge_gate_owner import (
        add_gate_param_group,
        average_gate_grads_across_ranks,
        broadcast_gate,
        clip_gate_grads_before_step,
    )

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    network = DistributedDataParallel(nn.Conv3d(1, 3, 3, padding=1))
    gate = EdgeGate(n_spatial_dims=3, in_plane_axes=(1, 2))
    with torch.no_grad():
        gate.log_sigma.fill_(0.3 * rank)  # ranks disagree until the broadcast
    group = dist.new_group()
    broadcast_gate(gate, src=0, group=group)
    after_broadcast = gate.log_sigma.detach().clone()
    average_gate_grads_across_ranks(gate, group)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.5, momentum=0.9)
    add_gate_param_group(optimizer, gate)
    clip_gate_grads_before_step(optimizer, gate)

    x = torch.rand(2, 1, 4, 12, 12, generator=torch.Generator().manual_seed(100 + rank)) * (rank + 1)

    def loss_of(net):
        return gate(torch.softmax(net(x), dim=1)).mean() * (rank + 1)

    local = torch.autograd.grad(loss_of(network.module), gate.log_sigma)[0]  # this rank's own gradient
    loss_of(network).backward()
    synced = gate.log_sigma.grad.detach().clone()
    optimizer.step()
    torch.save(
        {
            "after_broadcast": after_broadcast,
            "local": local,
            "synced": synced,
            "log_sigma": gate.log_sigma.detach().clone(),
            "weight": network.module.weight.detach().clone(),
        },
        f"{out_dir}/rank{rank}.pt",
    )
    dist.barrier()
    dist.destroy_process_group()


def test_sigma_gradient_is_averaged_and_sigma_stays_identical_across_ranks(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["after_broadcast"].item() == r1["after_broadcast"].item() == 0.0
    assert not torch.allclose(r0["local"], r1["local"])  # the ranks saw different data
    expected = (r0["local"] + r1["local"]) / 2
    assert torch.allclose(r0["synced"], expected, rtol=1e-5) and torch.allclose(r1["synced"], expected, rtol=1e-5)
    assert torch.equal(r0["log_sigma"], r1["log_sigma"]) and r0["log_sigma"].item() != 0.0
    assert torch.equal(r0["weight"], r1["weight"])  # DDP kept the network in sync alongside


def _trainer_ddp_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from nnunetv2.run.run_training import get_trainer_from_args
    from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as trainer_module
    from torch.nn.parallel import DistributedDataParallel

    from nnunet_filternet.gpu_check.amp import enter_epoch_of_final_lambda
    from tests.test_trainers import synthetic_batch

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    trainer_module.DDP = lambda module, device_ids=None, **kwargs: DistributedDataParallel(module, **kwargs)
    trainer = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, "nnUNetTrainerFilterNet", "nnUNetPlans_tiny")
    assert trainer.is_ddp and trainer.device == torch.device("cuda", rank)  # nnU-Net's DDP assumption
    trainer.device, trainer.grad_scaler = torch.device("cpu"), None  # as nnU-Net sets them on the CPU
    trainer.initialize()
    assert isinstance(trainer.network, DistributedDataParallel)
    with torch.no_grad():
        trainer.edge_gate.log_sigma.fill_(0.3 * rank)  # ranks disagree until on_train_start's broadcast
    trainer.on_train_start()
    enter_epoch_of_final_lambda(trainer)  # lambda 0.1: sigma's gradient is not tiny
    sigma_start = trainer.edge_gate.log_sigma.detach().clone()
    network_start = {k: v.clone() for k, v in trainer.network.module.state_dict().items()}
    losses, sigma_grads = [], []
    for step in range(STEPS):
        losses.append(float(trainer.train_step(synthetic_batch(trainer, seed=10 * rank + step))["loss"]))
        sigma_grads.append(trainer.edge_gate.log_sigma.grad.item())
    torch.save(
        {
            "sigma_start": sigma_start,
            "losses": losses,
            "sigma_grads": sigma_grads,
            "log_sigma": trainer.edge_gate.log_sigma.detach().clone(),
            "network_start": network_start,
            "network": {k: v.clone() for k, v in trainer.network.module.state_dict().items()},
            "groups": [g.get("name") for g in trainer.optimizer.param_groups],
        },
        f"{out_dir}/trainer_rank{rank}.pt",
    )
    dist.barrier()
    dist.destroy_process_group()


def test_trainer_steps_keep_sigma_and_weights_bit_identical_across_ranks(tiny_nnunet, tmp_path, monkeypatch):
    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_GROUP

    for name, value in tiny_nnunet.env(tmp_path / "results").items():
        if name.startswith("nnUNet_"):
            monkeypatch.setenv(name, value)  # the spawned ranks inherit them
    mp.spawn(_trainer_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"trainer_rank{r}.pt") for r in (0, 1))
    assert r0["groups"] == r1["groups"] == [None, EDGE_GATE_GROUP]
    assert torch.equal(r0["sigma_start"], r1["sigma_start"]) and r0["sigma_start"].item() == 0.0  # broadcast
    assert all(a != b for a, b in zip(r0["losses"], r1["losses"]))  # the ranks trained on different batches
    assert r0["sigma_grads"] == r1["sigma_grads"] and all(g != 0 for g in r0["sigma_grads"])  # averaged
    assert torch.equal(r0["log_sigma"], r1["log_sigma"]) and r0["log_sigma"].item() != 0.0  # moved, identically
    assert r0["network"].keys() == r1["network"].keys()
    assert any(not torch.equal(v, r0["network_start"][k]) for k, v in r0["network"].items())  # the weights moved
    for key, value in r0["network"].items():
        assert torch.equal(value, r1["network"][key]), key
