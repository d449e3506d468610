"""Sigma under DDP: two CPU processes (gloo) train a DDP network and the edge gate with the trainer's helpers.

nnU-Net's DDP training needs one GPU per rank, so the trainer itself cannot run DDP on a CPU. This test runs
the exact functions its mixin uses under DDP (broadcast at start, gradient averaging in a dedicated process
group, the gate's optimizer group and clip) next to a real ``DistributedDataParallel`` network, and checks
that sigma's gradient is the mean of the ranks' gradients and that sigma stays identical on every rank.
"""

from __future__ import annotations

import torch
import torch.multiprocessing as mp


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
