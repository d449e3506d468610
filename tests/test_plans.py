"""Plans presets: written by ``filternet plans``, loadable by nnU-Net's PlansManager, building our networks."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch

from tests.tiny_dataset import run_checked


def _config(tiny, plans_name: str):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(str(tiny.dataset_folder / f"{plans_name}.json"))
    return manager, manager.get_configuration("3d_fullres")


def _cli(tiny, tmp_path, *args):
    return run_checked([sys.executable, "-m", "nnunet_filternet", "plans", *map(str, args)], tiny.env(tmp_path))


def _zeta_and_kernels(network) -> tuple[list, set]:
    """(zeta kernel of each Block B stage or None, kernels of every other conv with a kernel > 1 of the network)."""
    zeta_convs, zeta = [], []
    for s, (stage, z) in enumerate(zip(network.encoder.stages, network.encoder.block_b_kernel_sizes)):
        conv = stage.convs[1 if s else 0].conv if z is not None else None
        zeta.append(None if conv is None else list(conv.kernel_size))
        zeta_convs.append(conv)
    others = {
        tuple(m.kernel_size)
        for m in network.modules()
        if isinstance(m, torch.nn.Conv3d) and all(m is not c for c in zeta_convs) and max(m.kernel_size) > 1
    }
    return zeta, others


def _widths(network) -> tuple[list[int], list[int]]:
    """(output width of each encoder stage, output width of each decoder stage, deepest first)."""
    encoder = [stage.convs[-1].conv.out_channels for stage in network.encoder.stages]
    decoder = [stage.convs[-1].conv.out_channels for stage in network.decoder.stages]
    return encoder, decoder


def _source_plans(spacing, patch=(16, 64, 64)) -> dict:
    """nnUNetPlans.json content with a default-planner 3d_fullres configuration at ``spacing`` (z, y, x) mm."""
    from nnunet_filternet.plans.topology import plain_unet_configuration

    config = plain_unet_configuration(patch, 2, tuple(spacing))
    config["median_image_size_in_voxels"] = [2 * p for p in config["patch_size"]]
    return {"dataset_name": "Dataset999_X", "plans_name": "nnUNetPlans", "configurations": {"3d_fullres": config}}


def test_tiny_preset_is_small_coarse_and_preprocessed(tiny_nnunet):
    """The session fixture wrote it with `filternet plans --preset tiny` and preprocessed it with nnU-Net."""
    manager, config = _config(tiny_nnunet, "nnUNetPlans_tiny")
    assert manager.plans_name == "nnUNetPlans_tiny" and manager.available_configurations == ["3d_fullres", "2d"]
    assert config.spacing == pytest.approx([7.0, 1.4, 1.4], rel=1e-5)  # in-plane 0.7 mm x 2
    assert config.patch_size == [8, 32, 32]  # 8 x 48 x 48 clipped to the 12 x 32 x 32 median image
    assert config.batch_size == 2
    assert config.network_arch_init_kwargs["features_per_stage"] == [8, 16, 32, 64]
    assert config.data_identifier == "nnUNetPlans_tiny_3d_fullres"
    assert len(list((tiny_nnunet.dataset_folder / config.data_identifier).glob("*.b2nd"))) == 2 * 5


def test_paper_preset_cli(tiny_nnunet, tmp_path):
    from nnunet_filternet.network import count_parameters
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNetPaper, nnUNetTrainerUNetPaper

    out = _cli(tiny_nnunet, tmp_path, tiny_nnunet.dataset_name, "--preset", "paper").stdout
    plans_file = tiny_nnunet.dataset_folder / "nnUNetPlans_paper.json"
    assert f"wrote {plans_file}" in out and "3d_fullres: data nnUNetPlans_3d_fullres (preprocessed)" in out
    assert "nnUNetv2_train 991 3d_fullres 0 -tr nnUNetTrainerFilterNetPaper -p nnUNetPlans_paper" in out
    manager, config = _config(tiny_nnunet, "nnUNetPlans_paper")
    assert (config.patch_size, config.batch_size) == ([28, 120, 120], 2)
    assert config.network_arch_init_kwargs["norm_op"] == "torch.nn.modules.batchnorm.BatchNorm3d"
    strides = np.prod(config.pool_op_kernel_sizes, axis=0)
    assert all(p % s == 0 for p, s in zip(config.patch_size, strides))  # nnU-Net needs no padding
    kernels = config.network_arch_init_kwargs["kernel_sizes"]
    assert all(k == [3, 3, 3] for k in kernels)  # the paper's Block A, also on 7 mm slices
    network = nnUNetTrainerFilterNetPaper.build_network_architecture(manager, config, 1, 6, False)
    assert type(network).__name__ == "FilterNet"
    zeta, others = _zeta_and_kernels(network)
    assert zeta[:3] == [[7, 7, 7], [5, 5, 5], [3, 3, 3]] and set(map(str, zeta[3:])) == {"None"}
    assert others == {(3, 3, 3)}  # every other conv of encoder and decoder: Block A
    plans_widths = config.network_arch_init_kwargs["features_per_stage"]
    assert _widths(network) == ([plans_widths[0]] + [w // 2 for w in plans_widths[1:]], plans_widths[-2::-1])
    assert {type(m) for m in network.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))} == {torch.nn.ReLU}
    unet = nnUNetTrainerUNetPaper.build_network_architecture(manager, config, 1, 6, False)
    assert 0.9 * 1.97e6 <= count_parameters(unet) <= 1.1 * 1.97e6  # Table II's U-Net, +-10 %


def test_filternet_preset_is_planned_for_filternet_and_shares_data(tiny_nnunet, tmp_path):
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from nnunet_filternet.network.filternet import FilterNet
    from nnunet_filternet.training.networks import FILTERNET

    out = _cli(tiny_nnunet, tmp_path, tiny_nnunet.dataset_id, "--preset", "filternet", "--gpu-memory-gb", "0.05").stdout
    assert "3d_fullres: data nnUNetPlans_3d_fullres (preprocessed)" in out
    manager, config = _config(tiny_nnunet, "nnUNetPlans_FilterNet")
    kwargs = config.network_arch_init_kwargs
    assert config.network_arch_class_name == FILTERNET
    assert kwargs["block_b_kernel_sizes"][:3] == [[1, 7, 7], [1, 5, 5], [1, 3, 3]]
    _, default = _config(tiny_nnunet, "nnUNetPlans")
    assert config.data_identifier == default.data_identifier  # same spacing: nnU-Net's data are reused
    assert kwargs["halve_downsampled_features"] is True and "halve_decoder_features" not in kwargs

    # nnU-Net's planner shrank the patch until FilterNet's feature maps fit the (tiny) memory target
    assert np.prod(config.patch_size) < np.prod(default.patch_size)
    estimate = ExperimentPlanner.static_estimate_VRAM_usage(
        config.patch_size, 1, 6, FILTERNET, kwargs, config.network_arch_init_kwargs_req_import
    )
    assert estimate <= 560e6 * 0.05 / 8  # nnU-Net's reference value scaled to 0.05 GB, batch 2

    network = get_network_from_plans(FILTERNET, kwargs, config.network_arch_init_kwargs_req_import, 1, 6)
    assert isinstance(network, FilterNet)
    plans_widths = kwargs["features_per_stage"]
    assert _widths(network) == ([plans_widths[0]] + [w // 2 for w in plans_widths[1:]], plans_widths[-2::-1])
    assert _zeta_and_kernels(network)[0][:3] == [[1, 7, 7], [1, 5, 5], [1, 3, 3]]  # nnU-Net's 1x3x3 kernels
    with torch.no_grad():
        assert network(torch.zeros(1, 1, *config.patch_size)).shape == (1, 6, *config.patch_size)


def test_plans_cli_errors_name_what_is_wrong(tiny_nnunet, monkeypatch, capsys):
    from nnunet_filternet.cli import main

    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_nnunet.preprocessed))
    monkeypatch.setenv("nnUNet_raw", str(tiny_nnunet.raw))
    assert main(["plans", "992", "--preset", "tiny"]) == 2
    assert "cannot resolve dataset '992'" in capsys.readouterr().err
    assert main(["plans", "991", "--preset", "paper", "--source-plans", "nnUNetPlans_nope"]) == 2
    err = capsys.readouterr().err
    assert str(tiny_nnunet.dataset_folder / "nnUNetPlans_nope.json") in err and err.count("\n") == 1
    (tiny_nnunet.dataset_folder / "broken.json").write_text(json.dumps({"configurations": {"2d": {}}}))
    assert main(["plans", "991", "--preset", "tiny", "--source-plans", "broken"]) == 2
    assert "expected a 3d_fullres configuration" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("key", "value", "message", "preset"),
    [
        ("spacing", [7, 3, "x"], "expected 'spacing' to be 2 or 3 voxel sizes in mm > 0, found [7, 3, 'x']", "tiny"),
        ("spacing", [0, -1, 3], "expected 'spacing' to be 2 or 3 voxel sizes in mm > 0, found [0, -1, 3]", "paper"),
        ("spacing", None, "expected 'spacing' to be 2 or 3 voxel sizes in mm > 0, found None", "tiny"),
        ("spacing", [3, 3], "expected 'spacing', 'patch_size', 'median_image_size_in_voxels' of one length, "
                            "found {'spacing': 2, ", "paper"),
        ("median_image_size_in_voxels", None, "expected 'median_image_size_in_voxels' to be 2 or 3 voxel", "tiny"),
        ("patch_size", [0, 0, 0], "expected 'patch_size' to be 2 or 3 voxel counts > 0, found [0, 0, 0]", "paper"),
        ("patch_size", [8.5, 48, 48], "expected 'patch_size' to be 2 or 3 voxel counts > 0, found [8.5, 4", "tiny"),
        ("batch_size", -1, "expected 'batch_size' to be a whole number >= 1, found -1", "paper"),
        ("batch_size", True, "expected 'batch_size' to be a whole number >= 1, found True", "tiny"),
    ],
)  # fmt: skip
def test_source_plans_with_bad_values_are_refused_naming_file_and_key(tiny_nnunet, monkeypatch, capsys, key, value,
                                                                      message, preset):  # fmt: skip
    """A hand-edited nnUNetPlans.json: one line naming the file and the key (it was a traceback, or bad plans);
    the two presets by turns (both read the source plans through one check)."""
    from nnunet_filternet.cli import main

    monkeypatch.setenv("nnUNet_preprocessed", str(tiny_nnunet.preprocessed))
    monkeypatch.setenv("nnUNet_raw", str(tiny_nnunet.raw))
    plans = json.loads((tiny_nnunet.dataset_folder / "nnUNetPlans.json").read_text())
    plans["configurations"]["3d_fullres"][key] = value
    edited = tiny_nnunet.dataset_folder / f"edited_{preset}.json"
    edited.write_text(json.dumps(plans))
    written = set(tiny_nnunet.dataset_folder.iterdir())
    assert main(["plans", "991", "--preset", preset, "--source-plans", edited.stem]) == 2
    err = capsys.readouterr().err
    assert str(edited) in err and "configuration '3d_fullres': " + message in err and err.count("\n") == 1, err
    assert set(tiny_nnunet.dataset_folder.iterdir()) == written
    edited.unlink()


def test_tiny_spacing_coarsens_in_plane_only():
    from nnunet_filternet.plans.presets import tiny_spacing

    assert tiny_spacing([7.0, 0.7, 0.7]) == pytest.approx([7.0, 1.4, 1.4])
    assert tiny_spacing([7.0, 1.4, 1.4]) == pytest.approx([7.0, 7.0 / 3 * 0.999, 7.0 / 3 * 0.999])
    assert tiny_spacing([7.0, 2.8, 2.8]) == pytest.approx([7.0, 2.8, 2.8])  # ratio 2.5: kept as it is
    assert tiny_spacing([2.8, 2.8, 7.0]) == pytest.approx([2.8, 2.8, 7.0])  # the slice axis wherever it is
    assert tiny_spacing([5.0, 1.0, 0.5]) == pytest.approx([5.0, 5.0 / 3 * 0.999, 1.0])
    assert tiny_spacing([1.0, 1.0, 1.0]) == pytest.approx([2.0, 2.0, 2.0])  # isotropic: every axis


@pytest.mark.parametrize(
    ("spacing", "tiny_spacing_zyx", "first_kernel"),
    [((7.0, 0.7, 0.7), (7.0, 1.4, 1.4), [1, 3, 3]), ((7.0, 2.8, 2.8), (7.0, 2.8, 2.8), [1, 3, 3])],
)
def test_tiny_preset_keeps_the_slice_axis_and_nnunets_in_plane_start(spacing, tiny_spacing_zyx, first_kernel):
    from nnunet_filternet.network.from_plans import filternet_arch_kwargs
    from nnunet_filternet.plans.presets import tiny_plans

    source = _source_plans(spacing)
    assert source["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["kernel_sizes"][0] == first_kernel
    config = tiny_plans(source)["configurations"]["3d_fullres"]
    assert config["spacing"] == pytest.approx(list(tiny_spacing_zyx))
    kernels = config["architecture"]["arch_kwargs"]["kernel_sizes"]
    assert kernels[0] == first_kernel  # nnU-Net still convolves in-plane first
    zeta = filternet_arch_kwargs(config["architecture"]["arch_kwargs"])["block_b_kernel_sizes"]
    assert zeta[0] == [1, 7, 7]  # the filternet/tiny presets keep nnU-Net's anisotropic adaptation


@pytest.mark.parametrize("network", ["PlainConvUNet", "FilterNet", "BoundaryAwareFCN"])
def test_tiny_2d_configuration_is_the_3d_one_made_2d_at_the_same_voxels_per_step(network):
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_filternet.plans.presets import tiny_plans
    from nnunet_filternet.training import networks

    plans = tiny_plans(_source_plans((7.0, 0.7, 0.7)))
    three, two = plans["configurations"]["3d_fullres"], plans["configurations"]["2d"]
    assert two["data_identifier"] == "nnUNetPlans_tiny_2d"
    assert two["spacing"] == three["spacing"][1:] and two["patch_size"] == three["patch_size"][1:] == [48, 48]
    assert two["batch_size"] * 48 * 48 == three["batch_size"] * math.prod(three["patch_size"])  # same voxels
    kwargs = two["architecture"]["arch_kwargs"]
    assert kwargs["conv_op"].endswith("Conv2d") and kwargs["norm_op"].endswith("InstanceNorm2d")
    assert kwargs["features_per_stage"] == [8, 16, 32, 64] and kwargs["kernel_sizes"] == [[3, 3]] * 4
    assert kwargs["strides"] == [[1, 1], [2, 2], [2, 2], [2, 2]]
    manager = PlansManager(plans).get_configuration("2d")
    target = {n.rsplit(".", 1)[-1]: n for n in (networks.PLAIN_UNET, networks.FILTERNET, networks.BOUNDARY_AWARE_FCN)}
    net = networks.build_network_from_plans(target[network], manager, 1, 6, enable_deep_supervision=False)
    out = net(torch.zeros(2, 1, 48, 48))
    assert (out[0] if isinstance(out, tuple) else out).shape == (2, 6, 48, 48)  # BA-FCN: (regions, edges)
    if network == "FilterNet":
        assert [m.kernel_size for m in net.modules() if isinstance(m, torch.nn.Conv2d)][:1] == [(7, 7)]


def test_paper_plans_are_isotropic_3x3x3_whatever_the_spacing():
    from nnunet_filternet.network.from_plans import filternet_arch_kwargs
    from nnunet_filternet.network.receptive_field import receptive_field_gain
    from nnunet_filternet.plans.presets import paper_plans

    source = _source_plans((7.0, 0.7, 0.7), patch=(32, 192, 224))
    config = paper_plans(source)["configurations"]["3d_fullres"]
    kwargs = config["architecture"]["arch_kwargs"]
    assert kwargs["kernel_sizes"] == [[3, 3, 3]] * kwargs["n_stages"]
    assert kwargs["strides"][:3] == [[1, 1, 1], [1, 2, 2], [1, 2, 2]]  # nnU-Net's pooling, in-plane first
    zeta = filternet_arch_kwargs(kwargs)["block_b_kernel_sizes"]
    assert zeta == [[7, 7, 7], [5, 5, 5], [3, 3, 3]] + [None] * (kwargs["n_stages"] - 3)
    assert receptive_field_gain(zeta, kwargs["strides"]) == (12, 22, 22)  # z: 6 + 4 + 2, strides 1 along z
    assert source["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["kernel_sizes"][0] == [1, 3, 3]


@pytest.mark.parametrize(
    ("spacing", "widths"),
    [
        ((7.0, 0.7, 0.7), [10, 20, 40, 80, 160]),  # 2.11 M
        ((1.0, 1.0, 1.0), [19, 38, 76, 152]),  # 1.93 M (b = 20 would give 2.14 M)
        ((3.0, 0.9, 0.9), [19, 38, 76, 152]),  # 1.97 M
        ((0.8, 0.8, 4.0), [10, 20, 40, 80, 160]),
    ],
    ids=["phantom", "isotropic", "3mm_slices", "slices_last"],
)
def test_paper_preset_unet_has_table_ii_size_with_relu(spacing, widths):
    """Table II: the paper's U-Net has 1.97 M parameters; the preset's stock U-Net lands within +-10 %, any spacing."""
    from nnunet_filternet.plans.presets import paper_plans, unet_parameters

    source = _source_plans(spacing, patch=(32, 192, 224))
    kwargs = paper_plans(source)["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    features = kwargs["features_per_stage"]
    assert features == widths  # nnU-Net's rule (doubled per stage), the base closest to 1.97 M
    assert 0.9 * 1.97e6 <= unet_parameters(kwargs) <= 1.1 * 1.97e6
    assert (kwargs["nonlin"], kwargs["nonlin_kwargs"]) == ("torch.nn.ReLU", {"inplace": True})
    assert kwargs["norm_op"].endswith("BatchNorm3d") and kwargs["kernel_sizes"] == [[3, 3, 3]] * kwargs["n_stages"]
    nonlin = source["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]["nonlin"]
    assert nonlin == "torch.nn.LeakyReLU"  # the source is not modified


def test_exact_topology_keeps_the_paper_patch():
    from nnunet_filternet.plans.topology import nnunet_topology

    padded = nnunet_topology([7.0, 0.7, 0.7], (28, 120, 120))
    exact = nnunet_topology([7.0, 0.7, 0.7], (28, 120, 120), exact=True)
    assert padded["patch_size"] == [28, 128, 128]  # nnU-Net's deepest topology pads 120 to 128
    assert exact["patch_size"] == [28, 120, 120]
    assert exact["n_stages"] == len(exact["strides"]) == len(exact["kernel_sizes"])


def test_plain_unet_configuration_is_what_nnunets_planner_wrote(tiny_nnunet):  # noqa: F811
    """For the patch, batch and spacing nnU-Net's planner chose, the plans package builds the same network."""
    from nnunet_filternet.plans.topology import plain_unet_configuration

    planned = json.loads((tiny_nnunet.dataset_folder / "nnUNetPlans.json").read_text())["configurations"]
    for name in ("3d_fullres", "2d"):
        config = planned[name]
        ours = plain_unet_configuration(config["patch_size"], config["batch_size"], config["spacing"])
        assert ours["patch_size"] == config["patch_size"]
        assert ours["architecture"] == config["architecture"], name


def test_planner_constants_are_nnunets_planner_attributes(tiny_nnunet, monkeypatch):  # noqa: F811
    """The constants plans/topology.py copies equal those of nnU-Net's planners built on a real dataset."""
    from nnunetv2.experiment_planning.experiment_planners import default_experiment_planner
    from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
        nnUNetPlannerResEncM,
    )

    from nnunet_filternet.plans import topology

    monkeypatch.setattr(default_experiment_planner, "nnUNet_raw", str(tiny_nnunet.raw))
    monkeypatch.setattr(default_experiment_planner, "nnUNet_preprocessed", str(tiny_nnunet.preprocessed))
    default = default_experiment_planner.ExperimentPlanner(tiny_nnunet.dataset_name)
    resenc = nnUNetPlannerResEncM(tiny_nnunet.dataset_name)
    assert (topology.BASE_FEATURES, topology.MAX_FEATURES_3D, topology.MAX_FEATURES_2D) == (
        default.UNet_base_num_features,
        default.UNet_max_features_3d,
        default.UNet_max_features_2d,
    )
    assert topology.MIN_FEATURE_MAP_EDGE == default.UNet_featuremap_min_edge_length
    assert set(default.UNet_blocks_per_stage_encoder) | set(default.UNet_blocks_per_stage_decoder) == {
        topology.CONVS_PER_STAGE
    }
    assert topology.RESENC_BLOCKS_PER_STAGE == tuple(resenc.UNet_blocks_per_stage_encoder)
    assert set(resenc.UNet_blocks_per_stage_decoder) == {topology.RESENC_DECODER_CONVS}
    assert topology.RESENC_UNET == f"{resenc.UNet_class.__module__}.{resenc.UNet_class.__name__}"
