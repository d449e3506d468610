"""Sigma's gradient under each reading of tau (docs/training.md, "Sigma"): derivation, sign and reference values.

The oracle is written here with numpy / scipy only: Le(sigma) of a fixed 2D case computed with dense kernels,
its finite difference (the exact gradient), and the derivation's correction for the readings that hold tau
constant: Le is positively homogeneous of degree 1 in the kernel kG = t (x) t, so a reading whose taps'
derivative is dt = dt_exact + delta t adds 2 delta Le to the exact gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from nnunet_filternet.edge.gate import EdgeGate
from nnunet_filternet.edge.kernels import (
    GAUSSIAN_NORMALISATIONS,
    gaussian_taps,
    gaussian_taps_derivative,
    gaussian_taps_values,
)
from nnunet_filternet.edge.loss import EdgeLoss

R = np.arange(-2, 3, dtype=float)
WEIGHTS = (0.0, 0.5, 0.5)


def fixed_case() -> tuple[np.ndarray, np.ndarray]:
    """Labels (16, 16) with a disc (1) and a square (2); logits (3, 16, 16) of the labels shifted by one column."""
    yy, xx = np.mgrid[:16, :16]
    labels = np.zeros((16, 16), int)
    labels[(yy - 6) ** 2 + (xx - 6) ** 2 <= 16] = 1
    labels[9:15, 8:15] = 2
    logits = 4.0 * np.stack([np.roll(labels, 1, axis=1) == n for n in range(3)]).astype(float)
    return labels, logits


def numpy_taps(sigma: float, normalisation: str) -> np.ndarray:
    """The forward taps of each reading, from their definitions."""
    g = np.exp(-(R**2) / (2 * sigma**2))
    if normalisation == "unit_energy":
        g1 = np.exp(-(R**2) / 2)
        return g / np.sqrt((g**2).sum()) * np.sqrt((g1**2).sum()) / g1.sum()
    return g / g.sum()


def numpy_edge_loss(labels: np.ndarray, logits: np.ndarray, sigma: float, normalisation: str) -> float:
    """Le = sum_n w_n mean |kG * (rho(kL * Y_n) - rho(kL * P_n))| with dense scipy convolutions (replicate borders)."""
    laplacian = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=float)
    taps = numpy_taps(sigma, normalisation)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    loss = 0.0
    for n, w in enumerate(WEIGHTS):
        edges = [
            np.clip(ndimage.convolve(m, laplacian, mode="nearest"), 0, 1)
            for m in ((labels == n) * 1.0, probabilities[n])
        ]
        difference = ndimage.convolve(edges[0] - edges[1], np.outer(taps, taps), mode="nearest")
        loss += w * np.abs(difference).mean()
    return loss


def oracle_gradient(sigma: float, normalisation: str, h: float = 1e-6) -> float:
    """dLe/dsigma of a reading: finite difference of the forward + the tau-constant readings' 2 delta Le."""
    labels, logits = fixed_case()
    forward = "unit_energy" if normalisation == "unit_energy" else "tau_differentiated"
    loss = numpy_edge_loss(labels, logits, sigma, forward)
    exact = (
        numpy_edge_loss(labels, logits, sigma + h, forward) - numpy_edge_loss(labels, logits, sigma - h, forward)
    ) / (2 * h)
    t = numpy_taps(sigma, "tau_differentiated")
    mean_r2 = (t * R**2).sum()
    delta = {"tau_constant": mean_r2 / sigma**3 - 1 / sigma, "tau_constant_unscaled": mean_r2 / sigma**3}
    return exact + 2 * delta.get(normalisation, 0.0) * loss


def edge_loss_gradient(sigma: float, normalisation: str) -> tuple[float, float, float]:
    """(sigma as stored, Le, dLe/dsigma) of the fixed case through EdgeGate and EdgeLoss, in float64."""
    labels, logits = fixed_case()
    gate = EdgeGate(2, None, sigma_init=sigma, normalisation=normalisation).double()
    loss = EdgeLoss(gate, WEIGHTS)(torch.from_numpy(logits[None]), torch.from_numpy(labels[None, None]).double())
    (d_log_sigma,) = torch.autograd.grad(loss, gate.log_sigma)
    return gate.sigma.item(), loss.item(), d_log_sigma.item() / gate.sigma.item()


#: dLe/dsigma of the fixed case at sigma = 1 per reading (docs/training.md, "Sigma"), to 4 significant digits.
REFERENCE_GRADIENTS = {
    "tau_constant": -0.03298,
    "tau_differentiated": -0.02777,
    "tau_constant_unscaled": +0.03582,
    "unit_energy": +0.001570,
}


def test_every_shipped_reading_has_a_reference():
    assert set(REFERENCE_GRADIENTS) == set(GAUSSIAN_NORMALISATIONS)


@pytest.mark.parametrize("normalisation", GAUSSIAN_NORMALISATIONS)
def test_sigma_gradient_sign_and_reference_value(normalisation):
    sigma, loss, gradient = edge_loss_gradient(1.0, normalisation)
    assert sigma == 1.0 and loss == pytest.approx(numpy_edge_loss(*fixed_case(), 1.0, "tau_differentiated"), rel=1e-10)
    assert gradient == pytest.approx(REFERENCE_GRADIENTS[normalisation], rel=1e-3)


@pytest.mark.parametrize("normalisation", GAUSSIAN_NORMALISATIONS)
@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.6])
def test_sigma_gradient_follows_the_derivation(normalisation, sigma):
    sigma, loss, gradient = edge_loss_gradient(sigma, normalisation)  # sigma as stored (float32 log_sigma)
    labels, logits = fixed_case()
    forward = "unit_energy" if normalisation == "unit_energy" else "tau_differentiated"
    assert loss == pytest.approx(numpy_edge_loss(labels, logits, sigma, forward), rel=1e-10)
    assert gradient == pytest.approx(oracle_gradient(sigma, normalisation), rel=1e-5, abs=1e-9)


def numpy_constant_target_loss(sigma_target: float, sigma: float, scale: float = 1.0) -> float:
    """Le with the labels' edge map filtered at ``sigma_target`` and the prediction's at ``sigma`` (kernel x scale)."""
    laplacian = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=float)
    labels, logits = fixed_case()
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    loss = 0.0
    for n, w in enumerate(WEIGHTS):
        filtered = []
        for mask, s, c in (((labels == n) * 1.0, sigma_target, 1.0), (probabilities[n], sigma, scale)):
            edges = np.clip(ndimage.convolve(mask, laplacian, mode="nearest"), 0, 1)
            taps = numpy_taps(s, "tau_differentiated")
            filtered.append(ndimage.convolve(edges, c * np.outer(taps, taps), mode="nearest"))
        loss += w * np.abs(filtered[0] - filtered[1]).mean()
    return loss


@pytest.mark.parametrize("normalisation", ["tau_constant", "tau_differentiated"])
@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.6])
def test_constant_target_gradient_comes_from_the_prediction_only(normalisation, sigma):
    """F(Y_n | sigma) held constant: dLe/dsigma is the derivative through the prediction's filtering alone (plus,
    for tau held constant, 2 delta x the derivative along the prediction's kernel scale); Le is unchanged."""
    labels, logits = fixed_case()
    gate = EdgeGate(2, None, sigma_init=sigma, normalisation=normalisation).double()
    loss = EdgeLoss(gate, WEIGHTS, constant_target=True)
    value = loss(torch.from_numpy(logits[None]), torch.from_numpy(labels[None, None]).double())
    (d_log_sigma,) = torch.autograd.grad(value, gate.log_sigma)
    sigma = gate.sigma.item()
    h = 1e-6
    exact = (numpy_constant_target_loss(sigma, sigma + h) - numpy_constant_target_loss(sigma, sigma - h)) / (2 * h)
    along_scale = (
        numpy_constant_target_loss(sigma, sigma, 1 + h) - numpy_constant_target_loss(sigma, sigma, 1 - h)
    ) / (2 * h)
    t = numpy_taps(sigma, "tau_differentiated")
    delta = (t * R**2).sum() / sigma**3 - 1 / sigma if normalisation == "tau_constant" else 0.0
    assert value.item() == pytest.approx(numpy_edge_loss(labels, logits, sigma, "tau_differentiated"), rel=1e-10)
    assert d_log_sigma.item() / sigma == pytest.approx(exact + 2 * delta * along_scale, rel=1e-5, abs=1e-9)
    assert d_log_sigma.item() / sigma != pytest.approx(edge_loss_gradient(sigma, normalisation)[2], rel=0.05)


@pytest.mark.parametrize("sigma", [0.6, 1.0, 1.7])
def test_taps_derivative_per_reading(sigma):
    """d taps / d sigma of each reading against its closed form (t = the sum-1 taps, <r^2> = sum t r^2)."""
    s = torch.tensor(sigma, dtype=torch.float64, requires_grad=True)
    t = numpy_taps(sigma, "tau_differentiated")
    mean_r2 = (t * R**2).sum()
    u = numpy_taps(sigma, "unit_energy")
    expected = {
        "tau_differentiated": t * (R**2 - mean_r2) / sigma**3,
        "tau_constant": t * (R**2 / sigma**3 - 1 / sigma),  # eq. 6's 1 / (sqrt(2 pi) sigma) per axis, tau fixed
        "tau_constant_unscaled": t * R**2 / sigma**3,
        "unit_energy": u * (R**2 - (u**2 * R**2).sum() / (u**2).sum()) / sigma**3,
    }
    for normalisation in GAUSSIAN_NORMALISATIONS:
        taps = gaussian_taps(s, normalisation)
        np.testing.assert_allclose(taps.detach().numpy(), numpy_taps(sigma, normalisation), rtol=1e-12)
        jacobian = np.array([torch.autograd.grad(taps[k], s, retain_graph=True)[0].item() for k in range(5)])
        np.testing.assert_allclose(jacobian, expected[normalisation], rtol=1e-9, atol=1e-12, err_msg=normalisation)
        closed_form = gaussian_taps_derivative(taps, s, normalisation).numpy()  # what the gate's backward uses
        np.testing.assert_allclose(closed_form, expected[normalisation], rtol=1e-9, atol=1e-12, err_msg=normalisation)
        values, derivative = gaussian_taps_values(sigma, normalisation)  # the same in floats: the fused CPU kernel's
        np.testing.assert_allclose(values, numpy_taps(sigma, normalisation), rtol=1e-12, err_msg=normalisation)
        np.testing.assert_allclose(derivative, expected[normalisation], rtol=1e-9, atol=1e-12, err_msg=normalisation)
