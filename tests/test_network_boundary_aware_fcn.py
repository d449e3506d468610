"""Boundary-Aware FCN: (final, region, edge) in train mode, final only in eval mode, sizes and parameters."""

from __future__ import annotations

import pytest
import torch

from nnunet_filternet.errors import FilterNetError
from nnunet_filternet.network import count_parameters
from nnunet_filternet.network.boundary_aware_fcn import BoundaryAwareFCN
from tests.test_network_filternet import PLAIN_UNET, PLANS_2D, PLANS_3D, build, conv_outputs, tiny

BA_FCN = "nnunet_filternet.network.boundary_aware_fcn.BoundaryAwareFCN"


@pytest.mark.parametrize(
    ("plans", "features", "shape"),
    [(PLANS_3D, [4, 8, 8], (4, 16, 16)), (PLANS_2D, [4, 8, 8], (16, 12))],
    ids=["3d", "2d"],
)
def test_train_returns_three_outputs_and_eval_only_the_final(plans, features, shape):
    torch.manual_seed(0)
    network = build(BA_FCN, tiny(plans, features), deep_supervision=True, num_classes=3)
    assert isinstance(network, BoundaryAwareFCN)
    x = torch.rand(2, 1, *shape)
    final, region, edge = network.train()(x)
    assert len(final) == len(region) == len(edge) == len(features) - 1
    for f, r, e in zip(final, region, edge):
        assert f.shape == r.shape == e.shape and f.shape[:2] == (2, 3)
    assert final[0].shape[2:] == shape
    assert not torch.allclose(region[0], edge[0])  # two decoders
    network.eval()
    evaluated = network(x)
    assert isinstance(evaluated, list) and len(evaluated) == len(features) - 1
    network.decoder.deep_supervision = False  # nnU-Net's set_deep_supervision_enabled(False)
    single = network(x)
    assert isinstance(single, torch.Tensor) and single.shape == (2, 3, *shape)
    torch.testing.assert_close(single, evaluated[0])
    network.train()
    final, region, edge = network(x)
    assert all(isinstance(t, torch.Tensor) for t in (final, region, edge))


@pytest.mark.parametrize("deep_supervision", [False, True])
def test_conv_feature_map_size_counts_every_conv_output(deep_supervision):
    network = build(BA_FCN, tiny(PLANS_3D, [4, 8, 8]), deep_supervision=deep_supervision).eval()
    assert network.compute_conv_feature_map_size((4, 16, 16)) == conv_outputs(network, torch.rand(1, 1, 4, 16, 16))
    assert 0 < network.compute_conv_feature_map_size((4, 8, 8)) < network.compute_conv_feature_map_size((4, 16, 16))


def test_more_parameters_than_plain_unet_and_phi_options():
    with torch.device("meta"):
        ba_fcn = build(BA_FCN, PLANS_3D)
        plain = build(PLAIN_UNET, PLANS_3D)
    assert count_parameters(ba_fcn) > count_parameters(plain)  # paper: 2.39 M vs 1.97 M
    no_phi = build(BA_FCN, {**tiny(PLANS_2D, [4, 8]), "phi_n_convs": 0})
    assert len(no_phi.fusion) == 1 and no_phi.eval()(torch.rand(1, 1, 8, 8)).shape == (1, 6, 8, 8)
    with pytest.raises(FilterNetError, match="phi_n_convs >= 0"):
        build(BA_FCN, {**tiny(PLANS_2D, [4, 8]), "phi_n_convs": -1})
