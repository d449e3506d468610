"""Edge gates: axes from spacing (nnU-Net's planner as oracle), trainable / fixed sigma, F_L, float32, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_filternet.edge.filter import gaussian_filter, laplacian_filter, rho
from nnunet_filternet.edge.gate import EdgeGate, LaplacianGate, in_plane_axes_from_spacing
from nnunet_filternet.errors import FilterNetError


def lrhog(x: torch.Tensor, sigma: torch.Tensor, axes: tuple[int, ...] | None = None) -> torch.Tensor:
    """F(x | sigma) = G(sigma) * rho(L * x) (eq. 2) composed from the filter's parts: what the gate must compute."""
    return gaussian_filter(rho(laplacian_filter(x, axes)), sigma, axes)


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        ((7.0, 0.7, 0.7), (1, 2)),  # the paper's data in nnU-Net order (z, y, x)
        ((7.0, 2.8, 2.8), (1, 2)),  # ratio 2.5: nnU-Net's first kernel is 1x3x3, so the gate is in-plane too
        ((0.7, 0.7, 7.0), (0, 1)),
        ((0.7, 5.0, 0.8), (0, 2)),
        ((1.0, 1.0, 1.0), None),
        ((1.9, 1.0, 1.0), None),  # within 2x of the finest: nnU-Net convolves in 3D from the first stage
        ((2.0, 1.0, 1.0), (1, 2)),
        ((0.7, 0.7), (0, 1)),
    ],
)
def test_in_plane_axes_from_spacing(spacing, expected):
    assert in_plane_axes_from_spacing(spacing) == expected


def test_gate_axes_are_the_axes_of_nnunets_first_convolution():
    """Oracle: nnU-Net's own planner function; the gate filters where the first stage's kernel is 3."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    rng = np.random.default_rng(0)
    spacings = [(7.0, 2.8, 2.8), (3.0, 1.0, 1.0), (1.99, 1.0, 1.0), (1.0, 2.01, 1.0), (1.0, 1.0, 1.0)]
    spacings += [tuple((rng.uniform(0.5, 1.0, 3) * rng.choice([1.0, 1.0, 2.5, 7.0], 3)).round(3)) for _ in range(60)]
    checked, kinds = 0, set()
    for spacing in spacings:
        kernels = get_pool_and_conv_props(list(spacing), [256, 256, 256], 4, 999999)[2]
        convolved = tuple(axis for axis, k in enumerate(kernels[0]) if k == 3)
        if len(convolved) == 1:  # nnU-Net convolves along one axis only: the gate has no plane
            with pytest.raises(FilterNetError, match="needs a plane"):
                in_plane_axes_from_spacing(spacing)
            continue
        assert in_plane_axes_from_spacing(spacing) == (None if len(convolved) == 3 else convolved), spacing
        checked, kinds = checked + 1, kinds | {convolved}
    assert checked >= 30 and len(kinds) >= 3  # isotropic and at least two different planes were compared


def test_in_plane_axes_errors():
    with pytest.raises(FilterNetError, match="at most one thick-slice axis"):
        in_plane_axes_from_spacing((7.0, 7.0, 0.7))
    with pytest.raises(FilterNetError, match="positive spacings"):
        in_plane_axes_from_spacing((1.0, 0.0, 1.0))
    with pytest.raises(FilterNetError, match="2 or 3"):
        in_plane_axes_from_spacing((1.0,))


def test_sigma_is_positive_trainable_and_receives_gradient():
    gate = EdgeGate(3, (1, 2), sigma_init=0.9)
    assert gate.sigma.item() == pytest.approx(0.9)
    assert list(gate.state_dict()) == ["log_sigma"]
    with torch.no_grad():
        gate.log_sigma.fill_(-10.0)  # any raw value maps to a positive sigma
    assert gate.sigma.item() > 0
    gate = EdgeGate(3, (1, 2))
    x = torch.rand(2, 3, 4, 12, 12)
    gate(x).square().sum().backward()
    assert gate.log_sigma.grad is not None and gate.log_sigma.grad.abs() > 0


def test_isotropic_3d_gate_filters_all_axes():
    """None (isotropic) resolves to all three axes inside the gate and must still run and differ per slice."""
    gate = EdgeGate(3, None)
    assert gate.axes == (0, 1, 2)
    x = torch.zeros(1, 1, 7, 7, 7)
    x[0, 0, 3, 3, 3] = 1.0
    out = gate(x)
    torch.testing.assert_close(out, lrhog(x, torch.tensor(1.0), None))
    assert out[0, 0, 2, 3, 3] != 0  # a 3D kernel spreads the response to the neighbouring slice
    assert EdgeGate(3, (1, 2))(x)[0, 0, 2, 3, 3] == 0  # the in-plane gate does not


def test_gate_computes_in_float32_under_autocast():
    gate = EdgeGate(2, None)
    x = torch.rand(1, 2, 16, 16)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = gate(x.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, lrhog(x.bfloat16().float(), torch.tensor(1.0)))


def test_gate_rejects_bad_input():
    with pytest.raises(FilterNetError, match="2 spatial axes"):
        EdgeGate(2, None)(torch.rand(1, 2, 4, 8, 8))
    with pytest.raises(FilterNetError, match="sigma_init > 0"):
        EdgeGate(2, None, sigma_init=0.0)
    with pytest.raises(FilterNetError, match="in-plane axes"):
        EdgeGate(3, (0, 3))


def test_fixed_sigma_gate_has_no_parameter_and_keeps_sigma_in_its_state():
    gate = EdgeGate(3, (1, 2), train_sigma=False)
    assert list(gate.parameters()) == [] and list(gate.state_dict()) == ["log_sigma"]
    assert gate.sigma.item() == 1.0 and not gate.sigma.requires_grad
    x = torch.rand(1, 2, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(gate(x), lrhog(x, torch.tensor(1.0, dtype=torch.float64), (1, 2)))
    trained = EdgeGate(3, (1, 2), sigma_init=0.8)
    gate.load_state_dict(trained.state_dict())  # same key: a checkpoint of either gate loads into the other
    assert gate.sigma.item() == pytest.approx(0.8)


def test_laplacian_gate_is_the_raw_laplacian():
    """F_L = L * x: negative values and values above 1 are kept (no rho), nothing is smoothed (no G)."""
    gate = LaplacianGate(3, (1, 2))
    assert gate.sigma is None and list(gate.state_dict()) == [] and list(gate.parameters()) == []
    x = torch.zeros(1, 1, 2, 7, 7, dtype=torch.float64)
    x[0, 0, 0, 3, 3] = 1.0
    out = gate(x)
    expected = torch.zeros_like(x)
    expected[0, 0, 0, 3, 3] = 4.0  # eq. 4's centre
    expected[0, 0, 0, [2, 4, 3, 3], [3, 3, 2, 4]] = -1.0
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(gate.smooth(out), out)
    with pytest.raises(FilterNetError, match="LaplacianGate: expected a B C \\+ 3 spatial"):
        gate(torch.rand(1, 1, 7, 7))
    torch.testing.assert_close(laplacian_filter(x, (1, 2)), out)


@pytest.mark.parametrize("spacing", [(7.0, 2.8, 2.8), (7.0, 0.7, 0.7), (1.5, 1.0, 1.0)])
def test_trainers_gate_follows_nnunets_first_kernel(spacing):
    """What the trainers build (build_edge_gate on a configuration) filters where nnU-Net's first kernel is 3."""
    from types import SimpleNamespace

    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    from nnunet_filternet.training.edge_gate_owner import build_edge_gate

    first_kernel = get_pool_and_conv_props(list(spacing), [32, 160, 160], 4, 999999)[2][0]
    gate = build_edge_gate(SimpleNamespace(spacing=list(spacing)))
    assert gate.axes == tuple(axis for axis, k in enumerate(first_kernel) if k == 3)


def test_direct_sigma_is_sigma_itself_with_the_same_kernel_and_gradient():
    """``parametrisation="direct"``: the parameter is sigma (weight decay acts on it); same forward and dF/dsigma."""
    x = torch.rand(2, 3, 4, 12, 12, dtype=torch.float64)
    direct = EdgeGate(3, (1, 2), sigma_init=0.8, parametrisation="direct").double()
    log = EdgeGate(3, (1, 2), sigma_init=0.8).double()
    with torch.no_grad():
        log.log_sigma.copy_(direct.direct_sigma.log())  # the same sigma in float64 (0.8 is not exact in float32)
    assert list(direct.state_dict()) == ["direct_sigma"] and [p for p in direct.parameters()] == [direct.direct_sigma]
    assert direct.sigma.item() == pytest.approx(0.8) and direct.direct_sigma.item() == pytest.approx(0.8)
    torch.testing.assert_close(direct(x), log(x))
    (d_direct,) = torch.autograd.grad(direct(x).square().sum(), direct.direct_sigma)
    (d_log,) = torch.autograd.grad(log(x).square().sum(), log.log_sigma)
    assert d_direct.item() == pytest.approx(d_log.item() / log.sigma.item(), rel=1e-9)  # dF/dsigma, not dF/dlog
    with torch.no_grad():
        direct.direct_sigma.fill_(-1.0)  # an overshoot below 0 keeps the kernel defined
    assert direct.sigma.item() == pytest.approx(0.05) and torch.isfinite(direct(x)).all()
    fixed = EdgeGate(3, (1, 2), train_sigma=False, parametrisation="direct")
    assert list(fixed.parameters()) == [] and list(fixed.state_dict()) == ["log_sigma"]
    with pytest.raises(FilterNetError, match="sigma parametrisation"):
        EdgeGate(3, (1, 2), parametrisation="exp")
