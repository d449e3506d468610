"""EdgeGate: in-plane axes from spacing, positive trainable sigma, float32 under autocast, bad input."""

from __future__ import annotations

import pytest
import torch

from nnunet_filternet.edge.filter import lrhog_filter
from nnunet_filternet.edge.gate import EdgeGate, in_plane_axes_from_spacing
from nnunet_filternet.errors import FilterNetError


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        ((7.0, 0.7, 0.7), (1, 2)),  # the paper's data in nnU-Net order (z, y, x)
        ((0.7, 0.7, 7.0), (0, 1)),
        ((0.7, 5.0, 0.8), (0, 2)),
        ((1.0, 1.0, 1.0), None),
        ((2.0, 1.0, 1.0), None),  # below nnU-Net's threshold 3: isotropic, full 3D kernels
        ((0.7, 0.7), (0, 1)),
    ],
)
def test_in_plane_axes_from_spacing(spacing, expected):
    assert in_plane_axes_from_spacing(spacing) == expected


def test_in_plane_axes_threshold_and_errors():
    assert in_plane_axes_from_spacing((2.0, 1.0, 1.0), anisotropy_threshold=1.5) == (1, 2)
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
    torch.testing.assert_close(out, lrhog_filter(x, torch.tensor(1.0), None))
    assert out[0, 0, 2, 3, 3] != 0  # a 3D kernel spreads the response to the neighbouring slice
    assert EdgeGate(3, (1, 2))(x)[0, 0, 2, 3, 3] == 0  # the in-plane gate does not


def test_gate_computes_in_float32_under_autocast():
    gate = EdgeGate(2, None)
    x = torch.rand(1, 2, 16, 16)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = gate(x.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, lrhog_filter(x.bfloat16().float(), torch.tensor(1.0)))


def test_gate_rejects_bad_input():
    with pytest.raises(FilterNetError, match="2 spatial axes"):
        EdgeGate(2, None)(torch.rand(1, 2, 4, 8, 8))
    with pytest.raises(FilterNetError, match="sigma_init > 0"):
        EdgeGate(2, None, sigma_init=0.0)
    with pytest.raises(FilterNetError, match="in-plane axes"):
        EdgeGate(3, (0, 3))
