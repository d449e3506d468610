"""Plans presets: written by ``filternet plans``, loadable by nnU-Net's PlansManager, building our networks."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from tests.tiny_dataset import run_checked, tiny_nnunet  # noqa: F401  (session fixture)


def _config(tiny, plans_name: str):  # noqa: F811
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(str(tiny.dataset_folder / f"{plans_name}.json"))
    return manager, manager.get_configuration("3d_fullres")


def _cli(tiny, tmp_path, *args):  # noqa: F811
    return run_checked([sys.executable, "-m", "nnunet_filternet", "plans", *map(str, args)], tiny.env(tmp_path))


def test_tiny_preset_is_small_coarse_and_preprocessed(tiny_nnunet):  # noqa: F811
    """The session fixture wrote it with `filternet plans --preset tiny` and preprocessed it with nnU-Net."""
    manager, config = _config(tiny_nnunet, "nnUNetPlans_tiny")
    assert manager.plans_name == "nnUNetPlans_tiny" and manager.available_configurations == ["3d_fullres"]
    assert config.spacing == pytest.approx([7.0, 1.4, 1.4], rel=1e-5)  # in-plane 0.7 mm x 2
    assert config.patch_size == [8, 32, 32]  # 8 x 48 x 48 clipped to the 12 x 32 x 32 median image
    assert config.batch_size == 2
    assert config.network_arch_init_kwargs["features_per_stage"] == [8, 16, 32, 64]
    assert config.data_identifier == "nnUNetPlans_tiny_3d_fullres"
    assert len(list((tiny_nnunet.dataset_folder / config.data_identifier).glob("*.b2nd"))) == 2 * 5


def test_paper_preset_cli(tiny_nnunet, tmp_path):  # noqa: F811
    from nnunet_filternet.training.trainers import nnUNetTrainerFilterNetPaper

    out = _cli(tiny_nnunet, tmp_path, tiny_nnunet.dataset_name, "--preset", "paper").stdout
    plans_file = tiny_nnunet.dataset_folder / "nnUNetPlans_paper.json"
    assert f"wrote {plans_file}" in out and "3d_fullres: data nnUNetPlans_3d_fullres (preprocessed)" in out
    assert "nnUNetv2_train 991 3d_fullres 0 -tr nnUNetTrainerFilterNetPaper -p nnUNetPlans_paper" in out
    manager, config = _config(tiny_nnunet, "nnUNetPlans_paper")
    assert (config.patch_size, config.batch_size) == ([28, 120, 120], 2)
    assert config.network_arch_init_kwargs["norm_op"] == "torch.nn.modules.batchnorm.BatchNorm3d"
    strides = np.prod(config.pool_op_kernel_sizes, axis=0)
    assert all(p % s == 0 for p, s in zip(config.patch_size, strides))  # nnU-Net needs no padding
    network = nnUNetTrainerFilterNetPaper.build_network_architecture(manager, config, 1, 6, False)
    assert type(network).__name__ == "FilterNet"


def test_filternet_preset_is_planned_for_filternet_and_shares_data(tiny_nnunet, tmp_path):  # noqa: F811
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

    # nnU-Net's planner shrank the patch until FilterNet's feature maps fit the (tiny) memory target
    assert np.prod(config.patch_size) < np.prod(default.patch_size)
    estimate = ExperimentPlanner.static_estimate_VRAM_usage(
        config.patch_size, 1, 6, FILTERNET, kwargs, config.network_arch_init_kwargs_req_import
    )
    assert estimate <= 560e6 * 0.05 / 8  # nnU-Net's reference value scaled to 0.05 GB, batch 2

    network = get_network_from_plans(FILTERNET, kwargs, config.network_arch_init_kwargs_req_import, 1, 6)
    assert isinstance(network, FilterNet)
    with torch.no_grad():
        assert network(torch.zeros(1, 1, *config.patch_size)).shape == (1, 6, *config.patch_size)


def test_plans_cli_errors_name_what_is_wrong(tiny_nnunet, monkeypatch, capsys):  # noqa: F811
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


def test_tiny_spacing_keeps_the_data_anisotropic():
    from plans.presets import tiny_spacing

    assert tiny_spacing([7.0, 0.7, 0.7]) == pytest.approx([7.0, 1.4, 1.4])
    assert tiny_spacing([7.0, 1.4, 1.4]) == pytest.approx([7.0, 7.0 / 3 * 0.999, 7.0 / 3 * 0.999])
    assert tiny_spacing([1.0, 1.0, 1.0]) == pytest.approx([2.0, 2.0, 2.0])


def test_exact_topology_keeps_the_paper_patch():
    from plans.presets import nnunet_topology

    padded = nnunet_topology([7.0, 0.7, 0.7], (28, 120, 120))
    exact = nnunet_topology([7.0, 0.7, 0.7], (28, 120, 120), exact=True)
    assert padded["patch_size"] == [28, 128, 128]  # nnU-Net's deepest topology pads 120 to 128
    assert exact["patch_size"] == [28, 120, 120]
    assert exact["n_stages"] == len(exact["strides"]) == len(exact["kernel_sizes"])
