"""The L-rho-G operator (the edge gate) and its kernels: numpy / scipy as oracle, float64 gradcheck (input and
sigma), sigma fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from nnunet_filternet.edge.filter import gaussian_filter, laplacian_filter
from nnunet_filternet.edge.gate import EdgeGate
from nnunet_filternet.edge.kernels import DEFAULT_NORMALISATION, GAUSSIAN_SIZE, SECOND_DIFFERENCE, gaussian_taps
from nnunet_filternet.errors import FilterNetError

#: The test oracle's kernels, written out from the paper (eq. 4) and the 7-point stencil.
LAPLACIAN_2D = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=float)
LAPLACIAN_3D = np.zeros((3, 3, 3))
LAPLACIAN_3D[1, 1, 1] = 6
LAPLACIAN_3D[[0, 2, 1, 1, 1, 1], [1, 1, 0, 2, 1, 1], [1, 1, 1, 1, 0, 2]] = -1


def paper_gaussian_2d(sigma: float) -> np.ndarray:
    """kG(sigma) of eq. 5-6: a_ij = exp(-((i-3)^2 + (j-3)^2) / (2 sigma^2)) / (2 pi sigma^2), tau-normalised."""
    i, j = np.mgrid[1:6, 1:6]
    a = np.exp(-((i - 3) ** 2 + (j - 3) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)
    return a / a.sum()


def scipy_lrhog(x: np.ndarray, sigma: float, axes: tuple[int, ...]) -> np.ndarray:
    """Independent oracle on one channel: Laplacian by ndimage.convolve, Gaussian by ndimage.gaussian_filter.

    mode='nearest' is replicate padding; truncate=2/sigma gives scipy's radius-2 (5-tap) normalised Gaussian.
    """
    n = x.ndim
    if len(axes) == 3:
        laplacian = LAPLACIAN_3D
    else:
        laplacian = LAPLACIAN_2D.reshape([3 if a in axes else 1 for a in range(n)])
    edges = np.clip(ndimage.convolve(x, laplacian, mode="nearest"), 0.0, 1.0)
    return ndimage.gaussian_filter(edges, sigma, mode="nearest", truncate=2.0 / sigma, axes=axes)


def exact_gate(
    n_spatial_dims: int, axes: tuple[int, ...] | None, sigma: float, normalisation: str = DEFAULT_NORMALISATION
) -> EdgeGate:
    """The production gate in float64 with a fixed sigma of exactly ``sigma`` (the float32 log sigma rounded)."""
    gate = EdgeGate(n_spatial_dims, axes, train_sigma=False, normalisation=normalisation).double()
    with torch.no_grad():
        gate.log_sigma.fill_(math.log(sigma))
    return gate


def _dense_laplacian(n_dims: int) -> np.ndarray:
    """The operator laplacian_filter applies, as a dense kernel: its response to a unit impulse."""
    impulse = torch.zeros((1, 1) + (5,) * n_dims, dtype=torch.float64)
    impulse[(0, 0) + (2,) * n_dims] = 1.0
    response = laplacian_filter(impulse).numpy()[0, 0]
    return response[(slice(1, 4),) * n_dims]  # convolution with a symmetric kernel: the kernel itself


@pytest.mark.parametrize("normalisation", ["tau_constant", "tau_differentiated", "tau_constant_unscaled"])
@pytest.mark.parametrize("sigma", [0.6, 1.0, 1.3, 2.5])
def test_kernels_match_the_paper(normalisation, sigma):
    assert SECOND_DIFFERENCE == (-1.0, 2.0, -1.0) and GAUSSIAN_SIZE == 5
    np.testing.assert_array_equal(_dense_laplacian(2), LAPLACIAN_2D)  # eq. 4
    np.testing.assert_array_equal(_dense_laplacian(3), LAPLACIAN_3D)
    taps = gaussian_taps(torch.tensor(sigma, dtype=torch.float64), normalisation).numpy()
    np.testing.assert_allclose(np.outer(taps, taps), paper_gaussian_2d(sigma), rtol=1e-12)  # eq. 5-6
    impulse = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    impulse[0, 0, 4, 4] = 1.0
    smoothed = gaussian_filter(impulse, torch.tensor(sigma, dtype=torch.float64), None, normalisation)[0, 0]
    np.testing.assert_allclose(smoothed[2:7, 2:7].numpy(), paper_gaussian_2d(sigma), rtol=1e-12)
    assert smoothed.sum().item() == pytest.approx(1.0, abs=1e-12)  # 5 x 5 support, nothing outside


@pytest.mark.parametrize(
    ("shape", "axes", "sigma"),
    [((9, 11), None, 1.0), ((4, 9, 11), (1, 2), 1.6), ((4, 9, 11), (0, 2), 0.8), ((6, 7, 8), None, 1.2)],
)
def test_gate_matches_scipy(shape, axes, sigma):
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, *shape))  # B C *spatial, not constant
    got = exact_gate(len(shape), axes, sigma)(torch.from_numpy(x)).numpy()
    scipy_axes = tuple(range(len(shape))) if axes is None else axes
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(got[b, c], scipy_lrhog(x[b, c], sigma, scipy_axes), atol=1e-12)
    assert 0 < got.max() <= 1 and got.min() >= 0


def test_unclamped_log_matches_scipy_and_border_is_not_an_edge():
    rng = np.random.default_rng(1)
    x = rng.random((1, 1, 8, 10))
    got = gaussian_filter(laplacian_filter(torch.from_numpy(x)), torch.tensor(1.0, dtype=torch.float64)).numpy()
    lap = ndimage.convolve(x[0, 0], LAPLACIAN_2D, mode="nearest")
    expected = ndimage.gaussian_filter(lap, 1.0, mode="nearest", truncate=2.0)
    np.testing.assert_allclose(got[0, 0], expected, atol=1e-12)
    ramp = torch.arange(8.0).reshape(1, 1, 1, 8).expand(1, 1, 8, 8)  # linear in x: zero Laplacian inside
    assert laplacian_filter(ramp)[..., 1:-1].abs().max() == 0
    step = torch.zeros(1, 1, 6, 6)
    step[..., 3:] = 1.0
    lap_step = laplacian_filter(step)[0, 0]
    assert torch.all(lap_step[:, 3] == 1) and torch.all(lap_step[:, 2] == -1)
    assert lap_step[:, [0, 1, 4, 5]].abs().max() == 0  # replicate padding: no edge at the image border


def test_volume_is_filtered_slice_by_slice():
    rng = np.random.default_rng(2)
    volume = torch.from_numpy(rng.random((1, 2, 3, 10, 10)))  # three different slices along axis 0
    per_volume = exact_gate(3, (1, 2), 1.2)(volume)
    for k in range(3):
        per_slice = exact_gate(2, None, 1.2)(volume[:, :, k])
        torch.testing.assert_close(per_volume[:, :, k], per_slice, rtol=0, atol=1e-12)
    assert (exact_gate(3, None, 1.2)(volume) - per_volume).abs().max() > 1e-3  # 3D filtering differs


@pytest.mark.parametrize("normalisation", ["tau_differentiated", "unit_energy", "tau_constant"])
@pytest.mark.parametrize(("shape", "axes"), [((1, 2, 5, 6), None), ((1, 1, 4, 2, 5), (0, 2))])
def test_gradcheck_wrt_input_and_sigma(shape, axes, normalisation):
    """Exact readings: gradcheck in x and sigma. tau_constant's sigma gradient is not the forward's derivative
    by design (tested against its derivation in test_edge_sigma.py); its input gradient is."""
    torch.manual_seed(3)  # a draw whose Laplacian values stay > 1e-3 away from rho's kinks (asserted below)
    x = (0.5 * torch.rand(*shape, dtype=torch.float64)).requires_grad_()
    lap = laplacian_filter(x.detach(), axes)
    distance_to_kinks = torch.minimum(lap.abs(), (lap - 1).abs())
    assert distance_to_kinks.min() > 1e-3  # finite differences never cross rho's kinks
    assert ((lap > 0) & (lap < 1)).sum() >= 5  # the linear part of rho is exercised
    gate = EdgeGate(len(shape) - 2, axes, normalisation=normalisation).double()
    log_sigma = torch.tensor(math.log(1.3), dtype=torch.float64, requires_grad=normalisation != "tau_constant")
    check = (x, log_sigma) if log_sigma.requires_grad else (x,)

    def f(x, s=log_sigma):  # the gate with its parameter log sigma as an input: d/dsigma by the chain rule
        return torch.func.functional_call(gate, {"log_sigma": s}, (x,))

    assert torch.autograd.gradcheck(f, check, eps=1e-6, atol=1e-6)


def test_sigma_is_recovered_by_fitting():
    """With the exact gradient (tau differentiated), fitting the gate to F(labels | 1.6) recovers sigma = 1.6."""
    labels = ndimage.label(ndimage.gaussian_filter(np.random.default_rng(3).random((32, 32)), 3) > 0.5)[0]
    one_hot = torch.from_numpy(np.stack([labels == v for v in range(labels.max() + 1)])[None].astype(np.float32))
    target = EdgeGate(2, None, sigma_init=1.6, train_sigma=False)(one_hot)
    gate = EdgeGate(2, None, sigma_init=1.0, normalisation="tau_differentiated")
    optimiser = torch.optim.Adam(gate.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / 60)
    for _ in range(60):
        optimiser.zero_grad()
        (gate(one_hot) - target).abs().mean().backward()
        optimiser.step()
        schedule.step()
    assert abs(gate.sigma.item() - 1.6) < 0.05


@pytest.mark.parametrize("axes", [(0,), (0, 0), (1, 3)])
def test_bad_axes_raise(axes):
    with pytest.raises(FilterNetError, match="in-plane axes"):
        EdgeGate(3, axes)


def _replicate_padded_windows(x: torch.Tensor, taps, axis: int) -> torch.Tensor:
    """The definition of one pass: replicate-pad ``axis`` by 2, then the weighted sum of the five shifted windows."""
    length = x.shape[axis + 2]
    padded = x.movedim(axis + 2, -1)
    padded = torch.cat([padded[..., :1]] * 2 + [padded] + [padded[..., -1:]] * 2, dim=-1)
    return sum(taps[k] * padded[..., k : k + length] for k in range(5)).movedim(-1, axis + 2)


@pytest.mark.parametrize("length", [1, 2, 3, 7])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_one_pass_and_its_adjoint_even_on_axes_shorter_than_the_kernel(length, axis):
    """_correlate is the replicate-padded pass (taps not symmetric: every tap and border read is checked), and
    _adjoint_pass its adjoint: <pass(x), g> = <x, adjoint(g)>."""
    from nnunet_filternet.edge.filter import _adjoint_pass, _correlate

    torch.manual_seed(length + 10 * axis)
    shape = [1, 2, 3, 4, 5]
    shape[axis + 2] = length
    x, g = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
    taps = torch.randn(5, dtype=torch.float64).tolist()
    out = _correlate(x, taps, axis + 2)
    torch.testing.assert_close(out, _replicate_padded_windows(x, taps, axis), rtol=0, atol=1e-12)
    adjoint = _adjoint_pass(g, taps, axis + 2)
    torch.testing.assert_close((out * g).sum(), (x * adjoint).sum(), rtol=1e-12, atol=1e-12)


def _taps_of(parameter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-symmetric taps that depend smoothly on a scalar, and their derivative (a stand-in for sigma's taps)."""
    base = torch.tensor([0.1, -0.3, 1.0, 0.5, 0.2], dtype=parameter.dtype)
    direction = torch.tensor([0.4, 0.1, -0.2, 0.3, -0.5], dtype=parameter.dtype)
    square = torch.tensor([-0.2, 0.3, 0.1, 0.0, 0.6], dtype=parameter.dtype)
    p = parameter.detach()
    return base + p * direction + p**2 * square, direction + 2 * p * square


def _separable(x: torch.Tensor, parameter: torch.Tensor, axes: tuple[int, ...]) -> torch.Tensor:
    taps, derivative = _taps_of(parameter)
    from nnunet_filternet.edge.filter import _Separable

    return _Separable.apply(x, parameter, taps, derivative if parameter.requires_grad else None, axes)


def test_separable_without_parameter_gradient_keeps_no_inputs():
    x = torch.randn(1, 1, 4, 6, dtype=torch.float64, requires_grad=True)
    parameter = torch.tensor(0.7, dtype=torch.float64)  # constant taps: no gradient wanted
    out = _separable(x, parameter, (0, 1))
    assert [t for t in out.grad_fn.saved_tensors if t is not None] == [out.grad_fn.saved_tensors[0]]  # taps only
    assert torch.autograd.gradcheck(lambda x: _separable(x, parameter, (0, 1)), (x,))


@pytest.mark.parametrize("shape", [(2, 3, 1, 2, 7), (1, 2, 3, 4, 5), (2, 1, 6, 1)])
def test_separable_over_several_axes_is_the_chain_of_single_passes(shape):
    """Values: the single passes chained; gradients in x and in the taps' parameter: finite differences."""
    torch.manual_seed(len(shape) + shape[-1])
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    parameter = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    axes = tuple(range(len(shape) - 2))
    assert torch.autograd.gradcheck(lambda x, p: _separable(x, p, axes), (x, parameter))
    chained = x.detach()
    for axis in axes:
        chained = _replicate_padded_windows(chained, _taps_of(parameter)[0], axis)
    torch.testing.assert_close(_separable(x, parameter, axes), chained, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "shape, axes", [((2, 3, 1, 6), (0, 1)), ((1, 2, 3, 4, 5), (0, 1, 2)), ((1, 2, 2, 5, 4), (1, 2))]
)
def test_fused_laplacian_rho_is_rho_of_the_laplacian_in_values_and_gradient(shape, axes):
    from nnunet_filternet.edge.filter import laplacian_rho, rho

    torch.manual_seed(sum(shape))
    x = torch.rand(shape, dtype=torch.float64) * 1.5  # L x falls below 0, inside [0, 1] and above 1
    x.requires_grad_(True)
    lx = laplacian_filter(x, axes)
    assert (lx < 0).any() and (lx > 1).any() and ((lx > 0) & (lx < 1)).any()
    torch.testing.assert_close(laplacian_rho(x, axes), rho(lx), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: laplacian_rho(x, axes), (x,))
    assert torch.autograd.gradcheck(lambda x: laplacian_filter(x, axes), (x,))
    grad = torch.randn(shape, dtype=torch.float64)
    (fused,) = torch.autograd.grad(laplacian_rho(x, axes), x, grad)
    (reference,) = torch.autograd.grad(torch.clamp(lx, 0.0, 1.0), x, grad)
    torch.testing.assert_close(fused, reference, rtol=0, atol=1e-12)
