"""Trainers in-process: sigma's ownership (optimizer group, clipping, checkpoint), losses, networks, protocol.

Every trainer here is built from the session's preprocessed tiny dataset (``nnUNetPlans_tiny``) on the CPU
and trained on synthetic batches through nnU-Net's own ``train_step``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nnunet_filternet.errors import InputError
from nnunet_filternet.labels import EDGE_WEIGHTS_KEY, PAPER_EDGE_WEIGHTS


@pytest.fixture
def make_trainer(tiny_nnunet, tmp_path, monkeypatch):
    """Build (and initialise) a trainer class on the tiny plans; results go to this test's tmp_path."""
    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_nnunet.preprocessed))
    monkeypatch.setenv("nnUNet_raw", str(tiny_nnunet.raw))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "results"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is as fast and immune to a busy machine

    def make(cls, plans_name="nnUNetPlans_tiny", initialize=True, dataset_json=None, continue_training=False):
        plans = json.loads((tiny_nnunet.dataset_folder / f"{plans_name}.json").read_text())
        plans["continue_training"] = continue_training
        if dataset_json is None:
            dataset_json = json.loads((tiny_nnunet.dataset_folder / "dataset.json").read_text())
        trainer = cls(plans, "3d_fullres", 0, dataset_json, torch.device("cpu"))
        if initialize:
            trainer.initialize()
        return trainer

    yield make
    torch.set_num_threads(threads)


def synthetic_batch(trainer, seed: int = 0) -> dict:
    """A batch as nnU-Net's loader gives it: data B 1 *patch, target (list per deep-supervision scale)."""
    g = torch.Generator().manual_seed(seed)
    patch = list(trainer.configuration_manager.patch_size)
    labels = torch.zeros(2, 1, *patch)
    labels[:, :, :, 4:20, 6:22] = 1.0
    labels[:, :, :, 18:28, 14:30] = 3.0
    data = labels + 0.3 * torch.randn(2, 1, *patch, generator=g)
    scales = trainer._get_deep_supervision_scales()
    if scales is None:
        return {"data": data, "target": labels}
    targets = []
    for scale in scales:
        size = [round(p * s) for p, s in zip(patch, scale)]
        targets.append(torch.nn.functional.interpolate(labels, size=size, mode="nearest"))
    return {"data": data, "target": targets}


def norm_layers(network) -> set[str]:
    """Class names of the normalisation layers of a network."""
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.instancenorm import _InstanceNorm

    return {type(m).__name__ for m in network.modules() if isinstance(m, (_BatchNorm, _InstanceNorm))}


def gate_param(trainer) -> torch.nn.Parameter:
    return trainer.edge_gate.log_sigma


# --- ownership of sigma ---------------------------------------------------------------------------------
def test_sigma_has_its_own_param_group_and_is_not_in_the_network(make_trainer):
    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_GROUP
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    trainer = make_trainer(nnUNetTrainerFilterNet)
    groups = trainer.optimizer.param_groups
    assert len(groups) == 2
    assert groups[1]["name"] == EDGE_GATE_GROUP and groups[1]["weight_decay"] == 0.0
    assert groups[1]["params"] == [gate_param(trainer)]
    network_ids = {id(p) for p in trainer.network.parameters()}
    assert id(gate_param(trainer)) not in network_ids
    assert all(id(p) in network_ids for p in groups[0]["params"])


def test_sigma_is_optimised_and_follows_the_lr_schedule(make_trainer):
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    trainer = make_trainer(nnUNetTrainerFilterNet)
    trainer.current_epoch = 500
    trainer.on_train_epoch_start()  # nnU-Net's poly schedule sets every group's LR
    assert trainer.optimizer.param_groups[1]["lr"] == pytest.approx(trainer.optimizer.param_groups[0]["lr"])
    assert trainer.optimizer.param_groups[1]["lr"] < trainer.initial_lr
    before = gate_param(trainer).detach().clone()
    trainer.train_step(synthetic_batch(trainer))
    assert gate_param(trainer).grad is not None and gate_param(trainer).grad.abs().item() > 0
    assert not torch.equal(gate_param(trainer).detach(), before)


def test_sigma_gradient_is_clipped_at_the_network_bound(make_trainer):
    from nnunet_filternet.training.edge_gate_owner import GRAD_CLIP
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    trainer = make_trainer(nnUNetTrainerFilterNet)
    for p in trainer.network.parameters():
        p.grad = None
    gate_param(trainer).grad = torch.tensor(-1000.0)
    trainer.optimizer.step()
    assert gate_param(trainer).grad.item() == pytest.approx(-GRAD_CLIP, rel=1e-5)


def test_checkpoint_round_trip_restores_sigma_and_its_optimizer_state(make_trainer, tmp_path):
    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_GROUP, EDGE_GATE_KEY
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    trainer = make_trainer(nnUNetTrainerFilterNet)
    with torch.no_grad():
        gate_param(trainer).fill_(math.log(0.8))
    trainer.train_step(synthetic_batch(trainer))
    sigma = trainer.edge_gate.sigma.item()
    momentum = trainer.optimizer.state[gate_param(trainer)]["momentum_buffer"].clone()
    path = str(tmp_path / "checkpoint.pth")
    trainer.save_checkpoint(path)
    assert EDGE_GATE_KEY in torch.load(path, map_location="cpu", weights_only=False)["optimizer_state"]

    fresh = make_trainer(nnUNetTrainerFilterNet, initialize=False)
    fresh.load_checkpoint(path)
    assert fresh.edge_gate.sigma.item() == pytest.approx(sigma, abs=0)
    assert fresh.edge_gate.sigma.item() != pytest.approx(1.0)
    groups = fresh.optimizer.state_dict()["param_groups"]
    assert [g.get("name") for g in groups] == [None, EDGE_GATE_GROUP]
    assert torch.equal(fresh.optimizer.state[gate_param(fresh)]["momentum_buffer"], momentum)


def test_checkpoint_is_written_once_and_never_read_back(make_trainer, tmp_path, monkeypatch):
    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_KEY
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    trainer = make_trainer(nnUNetTrainerFilterNet)
    path = str(tmp_path / "checkpoint.pth")
    saved, save = [], torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: saved.append((obj, f)) or save(obj, f, *a, **k))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the checkpoint was read back"))
    trainer.save_checkpoint(path)
    assert [f for _, f in saved] == [path]
    gate_state = saved[0][0]["optimizer_state"][EDGE_GATE_KEY]
    assert gate_state["log_sigma"] == gate_param(trainer).detach()
    assert EDGE_GATE_KEY not in trainer.optimizer.state_dict()  # only while nnU-Net builds a checkpoint


def test_gate_state_is_read_from_the_optimizer_state_only():
    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_KEY, gate_state_from_checkpoint

    state = {"log_sigma": torch.tensor(0.25)}
    assert gate_state_from_checkpoint({"optimizer_state": {"state": {}, EDGE_GATE_KEY: state}}) is state
    for elsewhere in ({"optimizer_state": {"state": {}}, EDGE_GATE_KEY: state}, {"network_weights": {}}):
        with pytest.raises(InputError, match=f"expected the key .{EDGE_GATE_KEY}. in its optimizer_state"):
            gate_state_from_checkpoint(elsewhere)


def test_sigma_from_a_saved_gate_state_is_the_gates_own():
    """log sigma -> exp; a direct sigma as the gate uses it (floored at MIN_DIRECT_SIGMA); no sigma -> None."""
    from nnunet_filternet.edge.gate import MIN_DIRECT_SIGMA, EdgeGate, LaplacianGate
    from nnunet_filternet.training.edge_gate_owner import sigma_from_gate_state

    assert sigma_from_gate_state({"log_sigma": torch.tensor(math.log(0.8))}) == pytest.approx(0.8, abs=1e-7)
    assert sigma_from_gate_state({"direct_sigma": torch.tensor(0.7)}) == pytest.approx(0.7, abs=1e-7)
    assert sigma_from_gate_state({"direct_sigma": torch.tensor(-0.3)}) == pytest.approx(MIN_DIRECT_SIGMA)
    assert sigma_from_gate_state(LaplacianGate(3, (1, 2)).state_dict()) is None
    trained = EdgeGate(3, (1, 2), sigma_init=1.37)
    assert sigma_from_gate_state(trained.state_dict()) == trained.sigma.item()  # bit for bit


def test_continue_training_restores_sigma_and_goes_on_with_the_schedule(make_trainer, monkeypatch):
    """What ``nnUNetv2_train ... --c`` does: nnU-Net's maybe_load_checkpoint, then run_training."""
    from nnunetv2.run.run_training import maybe_load_checkpoint

    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    monkeypatch.setenv("nnUNet_n_proc_DA", "0")

    def short(trainer, num_epochs):
        trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch = num_epochs, 2, 1
        return trainer

    first = short(make_trainer(nnUNetTrainerFilterNet, initialize=False), 1)
    first.run_training()
    sigma = first.edge_gate.sigma.item()
    assert sigma != 1.0

    second = short(make_trainer(nnUNetTrainerFilterNet, initialize=False, continue_training=True), 2)
    maybe_load_checkpoint(second, continue_training=True, validation_only=False)
    assert second.current_epoch == 1 and second.edge_gate.sigma.item() == sigma
    second.run_training()
    log = open(second.log_file).read()
    assert f"edge gate: restored sigma {sigma:.6f} from the checkpoint" in log
    assert "edge gate: lambda 0.01 sigma" in log and "edge gate: lambda 0.001" not in log  # epoch 1 of 2 only
    assert second.logger.get_value("edge_sigma", None)[0] == pytest.approx(sigma)  # epoch 0 came from the checkpoint
    assert second.edge_gate.sigma.item() != sigma


def test_loading_a_checkpoint_without_gate_state_names_the_file(make_trainer, tmp_path):
    from nnunet_filternet.training.trainers import nnUNetTrainerBUNet, nnUNetTrainerFilterNet

    path = str(tmp_path / "bunet.pth")
    make_trainer(nnUNetTrainerBUNet).save_checkpoint(path)
    with pytest.raises(InputError, match="filternet_edge_gate") as info:
        make_trainer(nnUNetTrainerFilterNet, initialize=False).load_checkpoint(path)
    assert path in str(info.value)


# --- the gate each trainer builds (Table III, normalisation, axes) ----------------------------------------
def test_default_gate_is_the_papers_reading_on_the_axes_of_nnunets_first_convolution(make_trainer, tiny_nnunet):
    from nnunet_filternet.edge.gate import EdgeGate
    from nnunet_filternet.edge.kernels import DEFAULT_NORMALISATION
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet, nnUNetTrainerFilterNetPaper

    assert DEFAULT_NORMALISATION == "tau_constant"
    for plans_name in ("nnUNetPlans", "nnUNetPlans_tiny"):
        plans = json.loads((tiny_nnunet.dataset_folder / f"{plans_name}.json").read_text())
        first_kernel = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["kernel_sizes"][0]
        convolved = tuple(axis for axis, k in enumerate(first_kernel) if k > 1)
        for cls in (nnUNetTrainerFilterNet, nnUNetTrainerFilterNetPaper):
            gate = make_trainer(cls, plans_name=plans_name).edge_gate
            assert type(gate) is EdgeGate and gate.normalisation == "tau_constant"
            assert gate.axes == convolved == (1, 2), plans_name  # 7 mm slices: in-plane, like the network


@pytest.mark.parametrize("paper", [False, True])
def test_unit_energy_trainer_trains_sigma_with_the_unit_energy_gaussian(make_trainer, paper):
    from nnunet_filternet.edge.gate import EdgeGate
    from nnunet_filternet.training import trainers
    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_GROUP

    cls = trainers.nnUNetTrainerFilterNetUnitEnergyPaper if paper else trainers.nnUNetTrainerFilterNetUnitEnergy
    trainer = make_trainer(cls)
    assert type(trainer.edge_gate) is EdgeGate and trainer.edge_gate.normalisation == "unit_energy"
    assert trainer.optimizer.param_groups[-1]["name"] == EDGE_GATE_GROUP
    trainer.num_epochs, trainer.current_epoch = 3, 2
    trainer.on_train_epoch_start()
    trainer.train_step(synthetic_batch(trainer))
    assert gate_param(trainer).grad.abs().item() > 0 and trainer.edge_gate.sigma.item() != 1.0


@pytest.mark.parametrize("paper", [False, True])
def test_sigma_decay_trainer_decays_sigma_itself_in_its_own_group(make_trainer, paper):
    """Hypothesis 1 of docs/training.md "Sigma": sigma trained as itself, weight decay 5e-4 in its own group only."""
    from nnunet_filternet.training import trainers
    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_GROUP

    cls = trainers.nnUNetTrainerFilterNetSigmaDecayPaper if paper else trainers.nnUNetTrainerFilterNetSigmaDecay
    trainer = make_trainer(cls)
    network_group, gate_group = trainer.optimizer.param_groups
    assert gate_group["name"] == EDGE_GATE_GROUP and gate_group["params"] == [trainer.edge_gate.direct_sigma]
    assert gate_group["weight_decay"] == trainers.SIGMA_WEIGHT_DECAY == 5e-4
    assert network_group["weight_decay"] == trainer.weight_decay  # the network's own (paper: 0, nnU-Net: 3e-5)
    sigma = trainer.edge_gate.direct_sigma
    with torch.no_grad():
        sigma.fill_(0.9)
    sigma.grad = torch.zeros_like(sigma)  # no edge-loss gradient: the step is the weight decay alone
    trainer.optimizer.step()
    nesterov = 1 + gate_group["momentum"] if gate_group["nesterov"] else 1  # nnU-Net: Nesterov 0.99; paper: plain
    expected = 0.9 * (1 - gate_group["lr"] * 5e-4 * nesterov)  # SGD's first step: sigma - lr (grad + wd sigma)
    assert trainer.edge_gate.sigma.item() == pytest.approx(expected, rel=1e-7) and expected < 0.9
    trainer.num_epochs, trainer.current_epoch = 3, 2  # lambda 0.1
    trainer.on_train_epoch_start()
    trainer.train_step(synthetic_batch(trainer))
    assert torch.isfinite(sigma.grad) and sigma.grad.abs().item() > 0


@pytest.mark.parametrize("paper", [False, True])
def test_constant_target_trainer_holds_the_labels_edge_map_constant(make_trainer, paper):
    from nnunet_filternet.training import trainers

    base = trainers.nnUNetTrainerFilterNetPaper if paper else trainers.nnUNetTrainerFilterNet
    cls = trainers.nnUNetTrainerFilterNetConstantTargetPaper if paper else trainers.nnUNetTrainerFilterNetConstantTarget
    grads = []
    for trainer_class in (base, cls):
        torch.manual_seed(0)
        trainer = make_trainer(trainer_class)
        assert trainer.loss.edge_loss.constant_target is (trainer_class is cls)
        trainer.num_epochs, trainer.current_epoch = 3, 2  # lambda 0.1
        trainer.on_train_epoch_start()
        trainer.train_step(synthetic_batch(trainer))
        grads.append(gate_param(trainer).grad.item())
    assert grads[0] != pytest.approx(grads[1], rel=1e-3)  # same network, batch and loss value; sigma's gradient differs


@pytest.mark.parametrize("paper", [False, True])
def test_fixed_sigma_trainer_keeps_sigma_at_one(make_trainer, tmp_path, paper):
    from nnunet_filternet.edge.gate import EdgeGate
    from nnunet_filternet.training import trainers
    from nnunet_filternet.training.edge_gate_owner import EDGE_GATE_GROUP, gate_state_from_checkpoint

    cls = trainers.nnUNetTrainerFilterNetFixedSigmaPaper if paper else trainers.nnUNetTrainerFilterNetFixedSigma
    trainer = make_trainer(cls)
    assert type(trainer.edge_gate) is EdgeGate and list(trainer.edge_gate.parameters()) == []
    assert EDGE_GATE_GROUP not in [g.get("name") for g in trainer.optimizer.param_groups]
    trainer.on_train_epoch_start()
    trainer.train_step(synthetic_batch(trainer))
    assert trainer.edge_gate.sigma.item() == 1.0 and trainer.loss.edge_lambda > 0
    path = str(tmp_path / "checkpoint.pth")
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    assert gate_state_from_checkpoint(checkpoint)["log_sigma"].item() == 0.0
    fresh = make_trainer(cls, initialize=False)
    fresh.load_checkpoint(path)
    assert fresh.edge_gate.sigma.item() == 1.0


@pytest.mark.parametrize("paper", [False, True])
def test_laplacian_trainer_trains_with_the_laplacian_only_gate(make_trainer, paper):
    from nnunet_filternet.edge.gate import LaplacianGate
    from nnunet_filternet.training import trainers

    cls = trainers.nnUNetTrainerFilterNetLaplacianPaper if paper else trainers.nnUNetTrainerFilterNetLaplacian
    trainer = make_trainer(cls)
    assert type(trainer.edge_gate) is LaplacianGate and trainer.edge_gate.axes == (1, 2)
    assert trainer.loss.edge_loss.gate is trainer.edge_gate
    assert len(trainer.optimizer.param_groups) == 1
    trainer.num_epochs = 3
    trainer.current_epoch = 2
    trainer.on_train_epoch_start()
    loss = trainer.train_step(synthetic_batch(trainer))["loss"]
    assert np.isfinite(loss) and trainer.loss.edge_lambda == pytest.approx(0.1)
    trainer.on_train_epoch_end([{"loss": np.array(1.0)}])
    log = open(trainer.log_file).read()
    assert "edge gate: lambda 0.1 (Laplacian only, no sigma)" in log and "sigma 1.000" not in log
    assert math.isnan(trainer.logger.get_value("edge_sigma", None)[-1])


# --- logging --------------------------------------------------------------------------------------------
def test_epoch_end_logs_lambda_and_sigma_and_draws_them(make_trainer):
    from PIL import Image

    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet, nnUNetTrainerUNet

    trainer = make_trainer(nnUNetTrainerFilterNet)
    trainer.num_epochs = 3
    for epoch in range(3):
        trainer.current_epoch = epoch
        trainer.on_epoch_start()
        trainer.on_train_epoch_start()
        with torch.no_grad():
            gate_param(trainer).fill_(math.log(0.9 - 0.01 * epoch))
        trainer.on_train_epoch_end([{"loss": np.array(1.0)}])
        for key, value in (("val_losses", 1.0), ("mean_fg_dice", 0.5), ("dice_per_class_or_region", [0.5])):
            trainer.logger.log(key, value, epoch)
        trainer.logger.log("epoch_end_timestamps", 1.0 + epoch, epoch)
    log = open(trainer.log_file).read()
    for line in ("edge gate: lambda 0.001 sigma 0.900", "lambda 0.01 sigma 0.890", "lambda 0.1 sigma 0.880"):
        assert line in log
    assert trainer.logger.get_value("edge_lambda", None) == pytest.approx([0.001, 0.01, 0.1])

    trainer.logger.plot_progress_png(trainer.output_folder)
    with Image.open(f"{trainer.output_folder}/progress.png") as image:
        with_panel = image.size
    stock = make_trainer(nnUNetTrainerUNet, initialize=False)
    stock.logger.load_checkpoint(trainer.logger.get_checkpoint())
    stock.logger.plot_progress_png(stock.output_folder)
    with Image.open(f"{stock.output_folder}/progress.png") as image:
        plain = image.size
    assert with_panel[0] == plain[0] and with_panel[1] == plain[1] + plain[1] // 3


def test_telemetry_lines():
    from nnunet_filternet.network import count_parameters
    from nnunet_filternet.training.edge_gate_owner import edge_gate_log_line
    from nnunet_filternet.training.telemetry import peak_memory_line

    assert edge_gate_log_line(0.001, 1.08449) == "edge gate: lambda 0.001 sigma 1.084"
    assert edge_gate_log_line(0.1, 1.0) == "edge gate: lambda 0.1 sigma 1.000"
    assert edge_gate_log_line(0.01, None) == "edge gate: lambda 0.01 (Laplacian only, no sigma)"
    line = peak_memory_line(torch.device("cpu"))
    assert line.startswith("peak memory: ") and line.endswith(" MiB (process max RSS)")
    assert float(line.split()[2]) > 10  # a Python process with torch holds more than 10 MiB
    assert count_parameters(torch.nn.Conv3d(2, 4, 3)) == 2 * 4 * 27 + 4


# --- losses ---------------------------------------------------------------------------------------------
def test_region_edge_loss_combines_terms_on_the_full_resolution_output():
    from nnunet_filternet.training.region_edge_loss import RegionEdgeLoss

    calls = []

    def region(output, target):
        return torch.tensor(2.0)

    def edge(output, target):
        calls.append((output.shape, target.shape))
        return torch.tensor(10.0)

    loss = RegionEdgeLoss(region, edge, edge_lambda=0.1)
    outputs = [torch.zeros(1, 6, 4, 8, 8), torch.zeros(1, 6, 4, 4, 4)]
    targets = [torch.zeros(1, 1, 4, 8, 8), torch.zeros(1, 1, 4, 4, 4)]
    assert loss(outputs, targets).item() == pytest.approx(0.9 * 2.0 + 0.1 * 10.0)
    assert calls == [((1, 6, 4, 8, 8), (1, 1, 4, 8, 8))]


def test_filternet_loss_wraps_nnunet_region_loss_with_dataset_weights(make_trainer):
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    from nnunet_filternet.training.region_edge_loss import RegionEdgeLoss
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    trainer = make_trainer(nnUNetTrainerFilterNet)
    assert isinstance(trainer.loss, RegionEdgeLoss)
    assert isinstance(trainer.loss.region_loss, DeepSupervisionWrapper)
    assert trainer.loss.edge_loss.gate is trainer.edge_gate
    assert trainer.loss.edge_loss.weights.tolist() == pytest.approx(PAPER_EDGE_WEIGHTS)


def test_edge_weights_default_uniform_and_bad_length_names_the_file(make_trainer, tiny_nnunet):
    from nnunet_filternet.training.edge_weights import edge_weights_from_dataset_json
    from nnunet_filternet.training.trainers import nnUNetTrainerUNetF

    dataset_json = json.loads((tiny_nnunet.dataset_folder / "dataset.json").read_text())
    del dataset_json[EDGE_WEIGHTS_KEY]
    trainer = make_trainer(nnUNetTrainerUNetF, dataset_json=dataset_json)
    assert trainer.loss.edge_loss.weights.tolist() == pytest.approx([0.0] + [0.2] * 5)
    with pytest.raises(InputError, match="6 non-negative numbers") as info:
        edge_weights_from_dataset_json({EDGE_WEIGHTS_KEY: [0.5, 0.5]}, 6, source="/data/dataset.json")
    assert "/data/dataset.json" in str(info.value) and "[0.5, 0.5]" in str(info.value)


def test_boundary_aware_loss_trains_on_three_outputs_and_validates_on_final(make_trainer):
    from nnunet_filternet.network.boundary_aware_fcn import BoundaryAwareFCN
    from nnunet_filternet.training.trainers import nnUNetTrainerBoundaryAwareFCN

    trainer = make_trainer(nnUNetTrainerBoundaryAwareFCN)
    assert isinstance(trainer.network, BoundaryAwareFCN)
    batch = synthetic_batch(trainer)
    trainer.network.train()
    final, region, edge = trainer.network(batch["data"])
    expected = (
        trainer.loss.region_loss(final, batch["target"])
        + trainer.loss.region_loss(region, batch["target"])
        + trainer.loss.edge_loss(edge, trainer.loss.edge_target(batch["target"]))
    )
    assert trainer.loss((final, region, edge), batch["target"]).item() == pytest.approx(expected.item())
    assert trainer.train_step(batch)["loss"] > 0
    trainer.network.eval()
    with torch.no_grad():
        out = trainer.validation_step(synthetic_batch(trainer, seed=1))
    assert out["tp_hard"].shape == (5,)


# --- networks -------------------------------------------------------------------------------------------
def test_prediction_is_a_plain_filternet_forward(make_trainer):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from nnunet_filternet.network.filternet import FilterNet
    from nnunet_filternet.network.from_plans import filternet_arch_kwargs
    from nnunet_filternet.network.norm import use_cpu_fast_instance_norms
    from nnunet_filternet.training.networks import FILTERNET
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNet

    trainer = make_trainer(nnUNetTrainerFilterNet)
    cm = trainer.configuration_manager
    assert cm.network_arch_class_name.endswith("PlainConvUNet")  # the tiny plans name nnU-Net's U-Net
    assert isinstance(trainer.network, FilterNet)
    plain = get_network_from_plans(
        FILTERNET,
        filternet_arch_kwargs(cm.network_arch_init_kwargs, cm.spacing),
        cm.network_arch_init_kwargs_req_import,
        1,
        6,
        deep_supervision=False,
    )
    plain.load_state_dict(trainer.network.state_dict())  # strict: the network holds no gate
    use_cpu_fast_instance_norms(plain)  # the kernel policy, as every trainer (and nnUNetv2_predict) builds it
    trainer.set_deep_supervision_enabled(False)
    trainer.network.eval()
    plain.eval()
    x = torch.randn(1, 1, *cm.patch_size)
    with torch.no_grad():
        assert torch.equal(trainer.network(x), plain(x))


def filternet_plans_from(plans: dict) -> dict:
    """Plans whose 3d_fullres names our FilterNet (as ``nnUNetPlans_FilterNet`` does), from plain U-Net plans."""
    from nnunet_filternet.network.from_plans import filternet_arch_kwargs
    from nnunet_filternet.training.networks import FILTERNET

    config = plans["configurations"]["3d_fullres"]
    config["architecture"]["network_class_name"] = FILTERNET
    config["architecture"]["arch_kwargs"] = filternet_arch_kwargs(config["architecture"]["arch_kwargs"])
    return plans


@pytest.mark.parametrize(
    ("trainer_name", "network_class", "filternet_plans"),
    [
        ("nnUNetTrainerFilterNet", "FilterNet", True),
        ("nnUNetTrainerUNetF", "PlainConvUNet", True),
        ("nnUNetTrainerBoundaryAwareFCN", "BoundaryAwareFCN", True),
        ("nnUNetTrainerBUNet", "FilterNet", False),
        ("nnUNetTrainerUNet", "PlainConvUNet", False),
        ("nnUNetTrainer_2epochs_3iters_1val", "PlainConvUNet", False),  # the demo's stock nnU-Net
        ("nnUNetTrainer", "PlainConvUNet", False),  # stock nnU-Net as the benchmark builds it
    ],
)
def test_build_network_architecture_on_any_plans(tiny_nnunet, trainer_name, network_class, filternet_plans):
    """nnU-Net's predictor calls the hook on the class; FilterNet plans and default plans both work."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_filternet.training import trainers
    from nnunet_filternet.training.kernel_policy import with_kernel_policy

    plans = json.loads((tiny_nnunet.dataset_folder / "nnUNetPlans_tiny.json").read_text())
    manager = PlansManager(filternet_plans_from(plans) if filternet_plans else plans)
    cls = with_kernel_policy(getattr(trainers, trainer_name))
    net = cls.build_network_architecture(manager, manager.get_configuration("3d_fullres"), 1, 6, False)
    assert type(net).__name__ == network_class
    # the kernel policy (training/kernel_policy.py): every trainer's network takes the plans' InstanceNorm3d as
    # its CPU-fused subclass (network/norm.py)
    assert norm_layers(net) == {"CPUFastInstanceNorm3d"}
    # ... and its narrow 3D convs (at most 16 channels: the tiny plans' first stages) the channels-last subclass
    convs = {type(m).__name__ for m in net.modules() if isinstance(m, torch.nn.Conv3d)}
    assert {"CPUChannelsLastConv3d", "Conv3d"} <= convs


# --- the paper's protocol -------------------------------------------------------------------------------
def test_paper_protocol_optimizer_schedule_bn_and_loss(make_trainer):
    from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss

    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNetPaper

    trainer = make_trainer(nnUNetTrainerFilterNetPaper)
    assert (trainer.num_epochs, trainer.enable_deep_supervision) == (30, False)
    rotation, dummy_2d, crop, mirror_axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    assert rotation == pytest.approx((-math.radians(10), math.radians(10))) and mirror_axes is None
    assert trainer.inference_allowed_mirroring_axes is None
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.9
    assert isinstance(trainer.loss.region_loss, RobustCrossEntropyLoss)
    norms = norm_layers(trainer.network)
    assert norms == {"BatchNorm3d"}
    lrs = []
    for epoch in (0, 9, 10, 19, 20, 29):
        trainer.lr_scheduler.step(epoch)
        lrs += [g["lr"] for g in trainer.optimizer.param_groups]  # network and edge gate
    assert lrs == pytest.approx([1e-3] * 4 + [2e-4] * 4 + [4e-5] * 4)


@pytest.mark.parametrize(
    "trainer_name",
    [
        "nnUNetTrainerUNetPaper",
        "nnUNetTrainerBUNetPaper",
        "nnUNetTrainerUNetFPaper",
        "nnUNetTrainerBoundaryAwareFCNPaper",
    ],
)
def test_paper_variants_train(make_trainer, trainer_name):
    from nnunet_filternet.training import trainers

    trainer = make_trainer(getattr(trainers, trainer_name))
    before = [p.detach().clone() for p in trainer.network.parameters()]
    losses = [float(trainer.train_step(synthetic_batch(trainer, seed=s))["loss"]) for s in range(2)]
    assert all(np.isfinite(losses))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, trainer.network.parameters()))


# --- budget variants ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    ["nnUNetTrainerFilterNet_1epoch", "nnUNetTrainerFilterNetPaper_5epochs", "nnUNetTrainer_40epochs_40iters_4val"],
)
def test_budget_variants_are_module_attributes_made_on_first_use(name):
    import inspect
    import pickle

    from nnunet_filternet.training import trainers

    cls = getattr(trainers, name)
    assert getattr(trainers, name) is cls and vars(trainers)[name] is cls  # made once, then kept
    assert (cls.__module__, cls.__qualname__) == ("nnunet_filternet.training.trainers", name)
    assert pickle.loads(pickle.dumps(cls)) is cls
    params = list(inspect.signature(cls.__init__).parameters)
    assert params == ["self", "plans", "configuration", "fold", "dataset_json", "device"]


def test_budget_variant_sets_epochs_after_the_protocol(make_trainer):
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNetPaper_5epochs

    trainer = make_trainer(nnUNetTrainerFilterNetPaper_5epochs, initialize=False)
    assert trainer.num_epochs == 5 and trainer.initial_lr == 1e-3
    # an epochs-only budget keeps the protocol's epoch: the paper's length, computed from the split in do_split
    assert (trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (None, 50)
    assert trainer.my_init_kwargs["configuration"] == "3d_fullres"
