"""The benchmark's measuring pieces on small hand-made inputs (no timing is ever asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from nnunet_filternet.bench.flops import count_flops, fake_tensors
from nnunet_filternet.bench.memory import allocation_peak, step_peak_bytes, tensor_bytes
from nnunet_filternet.bench.plans import PHANTOM_SPACING_ZYX, SIZES, builtin_plans, setup_from_plans_file
from nnunet_filternet.bench.report import place_section
from nnunet_filternet.bench.runner import paired_ratio
from nnunet_filternet.errors import InputError


def test_allocation_peak_sums_events_in_time_order():
    # in time order: +100, +50 (150), -100 (50), +200 (250), -250 (0)
    events = [(3, 200), (0, 100), (4, -250), (2, -100), (1, 50)]
    assert allocation_peak(events) == 250
    assert allocation_peak([(0, -10), (1, -5)]) == 0


def test_tensor_bytes_counts_shared_storage_once():
    a = torch.zeros(10, dtype=torch.float32)  # 40 bytes
    b = torch.zeros(3, dtype=torch.float64)  # 24 bytes
    assert tensor_bytes([a, a[2:5], a.view(2, 5), b]) == 64


def test_cpu_step_peak_is_resident_plus_step_peak():
    resident = [torch.zeros(1000, dtype=torch.float32)]  # 4000 bytes

    def step():
        x = torch.ones(250_000, dtype=torch.float32)  # 1e6 bytes, then 1e6 more for y while x lives
        y = x + 1
        return float(y[0])

    peak = step_peak_bytes(step, resident, torch.device("cpu"))
    assert 4000 + 2_000_000 <= peak < 4000 + 2_100_000


def test_count_flops_of_a_convolution_matches_the_formula():
    conv = torch.nn.Conv3d(2, 4, kernel_size=3, padding=1, bias=False)
    x = torch.randn(1, 2, 4, 4, 4)
    expected = 2 * 4 * 2 * 27 * 64  # 2 FLOPs per multiply-add, C_out * C_in * k^3 per output voxel
    assert count_flops(lambda: conv(x)) == expected
    # forward + backward: grad of input and of weight cost one more convolution each
    assert count_flops(lambda: conv(x.requires_grad_()).sum().backward()) == 3 * expected


def test_flops_on_fake_tensors_equal_real_flops():
    def make():
        conv = torch.nn.Conv2d(3, 5, kernel_size=3)
        x = torch.randn(2, 3, 10, 10)
        return lambda: conv(x).sum().backward()

    with fake_tensors():
        fake = count_flops(make())
    forward = 2 * 5 * 3 * 9 * 2 * 8 * 8  # 2 x C_out x C_in x k^2 x batch x output pixels
    assert fake == count_flops(make()) == 2 * forward  # + weight gradient; x needs no gradient


def test_edge_loss_runs_on_fake_tensors_with_a_real_sigma():
    """The FLOP count's path: the gate's real sigma meets fake inputs (its taps have no values to read)."""
    from nnunet_filternet.edge.gate import EdgeGate
    from nnunet_filternet.edge.loss import EdgeLoss

    loss = EdgeLoss(EdgeGate(2, None), (0.0, 0.5, 0.5))

    def step():
        logits = torch.randn(2, 3, 8, 8, requires_grad=True)
        loss(logits, torch.randint(0, 3, (2, 1, 8, 8))).backward()

    with fake_tensors():
        assert count_flops(step) == 0  # elementwise filtering only: no counted FLOPs, and no error


def test_paired_ratio_is_median_of_round_ratios():
    assert paired_ratio([2.0, 4.0, 6.0], [1.0, 1.0, 3.0]) == 2.0
    assert paired_ratio([], [1.0]) is None


def test_builtin_cuda_plans_follow_nnunet_topology():
    config = builtin_plans(SIZES["cuda"])["configurations"]["3d_fullres"]
    kwargs = config["architecture"]["arch_kwargs"]
    assert config["patch_size"] == [24, 160, 160]
    # 0.7 x 0.7 x 7 mm: nnU-Net pools in-plane only until z is within 2x of the in-plane spacing
    assert kwargs["strides"][:4] == [[1, 1, 1], [1, 2, 2], [1, 2, 2], [1, 2, 2]]
    assert kwargs["kernel_sizes"][0] == [1, 3, 3]
    assert kwargs["features_per_stage"] == [32, 64, 128, 256, 320, 320][: kwargs["n_stages"]]


def test_resenc_kwargs_use_residual_blocks_and_one_decoder_conv():
    from nnunet_filternet.plans.topology import resenc_kwargs

    plain = {"n_stages": 5, "n_conv_per_stage": [2] * 5, "n_conv_per_stage_decoder": [2] * 4, "conv_bias": True}
    out = resenc_kwargs(plain)
    assert out["n_blocks_per_stage"] == [1, 3, 4, 6, 6]
    assert out["n_conv_per_stage_decoder"] == [1, 1, 1, 1]
    assert "n_conv_per_stage" not in out and "n_conv_per_stage" in plain  # input untouched


def test_place_section_appends_then_replaces_only_its_own_section():
    doc = "# Benchmarks\n\nprose\n"
    doc = place_section(doc, "cpu-quick", "old cpu")
    doc = place_section(doc, "cuda", "gpu numbers")
    doc = place_section(doc, "cpu-quick", "new cpu")
    assert doc.startswith("# Benchmarks\n\nprose\n")
    assert "new cpu" in doc and "old cpu" not in doc and "gpu numbers" in doc
    assert doc.count("filternet-bench:cpu-quick:begin") == 1


def test_plans_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nnUNetPlans.json"
    with pytest.raises(InputError, match="nnUNetPlans.json.*no such file"):
        setup_from_plans_file(missing, "3d_fullres")
    plans = builtin_plans(SIZES["quick"])
    missing.write_text(json.dumps(plans))
    with pytest.raises(InputError, match=r"expected configuration '2d', found only \['3d_fullres'\]"):
        setup_from_plans_file(missing, "2d")
    plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"] = "some.ResidualEncoderUNet"
    missing.write_text(json.dumps(plans))
    with pytest.raises(InputError, match="found some.ResidualEncoderUNet"):
        setup_from_plans_file(missing, "3d_fullres")


def test_bench_trainer_is_built_by_nnunet_and_replaces_only_the_data_loader(tmp_path, capsys):
    import gc
    import math
    from pathlib import Path

    from nnunet_filternet.bench.models import MODELS
    from nnunet_filternet.bench.training_step import bench_trainer
    from nnunet_filternet.plans.topology import plain_unet_configuration
    from nnunet_filternet.training import trainers

    config = plain_unet_configuration((4, 32, 32), 2, PHANTOM_SPACING_ZYX)
    kwargs = config["architecture"]["arch_kwargs"]
    kwargs["features_per_stage"] = [4 * 2**i for i in range(kwargs["n_stages"])]
    plans = {"dataset_name": "Dataset999_Tiny", "plans_name": "nnUNetPlans", "label_manager": "LabelManager",
             "configurations": {"3d_fullres": config}}  # fmt: skip
    (tmp_path / "nnUNetPlans.json").write_text(json.dumps(plans))
    setup = setup_from_plans_file(tmp_path / "nnUNetPlans.json", "3d_fullres")
    specs = {m.name: m for m in MODELS}
    step = bench_trainer(specs["FilterNet"], setup, torch.device("cpu"))
    trainer = step.trainer
    assert type(trainer) is trainers.nnUNetTrainerFilterNet and trainer.was_initialized  # the class itself
    log = Path(trainer.log_file).read_text()
    assert "Epoch 0" in log and "Current learning rate: 0.01" in log  # nnU-Net's own epoch start, in its log
    assert trainer.loss.edge_lambda == 0.001  # the edge-gate trainer's epoch start set lambda
    assert next(trainer.dataloader_train) is step.batch
    assert math.isfinite(step())
    assert trainer.optimizer.state  # the trainer's own optimizer stepped
    assert capsys.readouterr().out == ""  # nnU-Net's prints stay out of `filternet bench --json`
    folder = Path(trainer.output_folder)
    assert folder.is_dir()
    del step, trainer
    gc.collect()
    assert not folder.exists()  # the temporary folder goes with the step
    stock = bench_trainer(specs["nnU-Net"], setup, torch.device("cpu"))
    assert type(stock.trainer).__mro__[2].__name__ == "nnUNetTrainer"
    norms = {type(m).__name__ for m in stock.network.modules() if isinstance(m, torch.nn.InstanceNorm3d)}
    assert norms == {"CPUFastInstanceNorm3d"}  # the kernel policy, as for every other model


@pytest.mark.parametrize(
    "features, time_ratio, flop_ratio, passed",
    [
        ([8, 16, 32, 64], 1.09, 0.9, True),  # small widths: at most 1.1x stock's step, whatever the FLOPs
        ([8, 16, 32, 64], 1.12, 1.2, False),
        ([32, 64, 128, 256], 0.93, 0.86, True),  # nnU-Net's widths: within 10 % of the FLOP ratio
        ([32, 64, 128, 256], 0.96, 0.86, False),
    ],
)
def test_step_target_depends_on_the_widths(features, time_ratio, flop_ratio, passed):
    from nnunet_filternet.bench.targets import edge_gate_share, step_time_follows_flops

    result = {
        "environment": {"device": "cpu"},
        "setup": {"features_per_stage": features},
        "models": [{"name": "FilterNet", "available": True, "ratios": {"step_time": time_ratio, "flops": flop_ratio}}],
        "edge_gate": {"share_of_filternet_step": 0.016},
    }
    assert step_time_follows_flops(result).passed is passed
    assert edge_gate_share(result).passed is False and "1.5%" in edge_gate_share(result).detail
