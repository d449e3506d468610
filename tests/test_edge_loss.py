"""EdgeLoss against a numpy computation by hand, the lambda schedule, and edge_targets on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_filternet.edge.gate import EdgeGate
from nnunet_filternet.edge.loss import EdgeLoss
from nnunet_filternet.edge.schedule import edge_lambda
from nnunet_filternet.edge.targets import edge_targets
from nnunet_filternet.errors import FilterNetError


def numpy_lrhog(image: np.ndarray, sigma: float) -> np.ndarray:
    """F(image | sigma) on a 2D array with explicit loops and edge (replicate) padding."""
    lap = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=float)
    i, j = np.mgrid[-2:3, -2:3]
    gauss = np.exp(-(i**2 + j**2) / (2 * sigma**2))
    gauss /= gauss.sum()
    h, w = image.shape
    padded = np.pad(image, 1, mode="edge")
    edges = np.array([[np.sum(padded[y : y + 3, x : x + 3] * lap) for x in range(w)] for y in range(h)])
    padded = np.pad(np.clip(edges, 0, 1), 2, mode="edge")
    return np.array([[np.sum(padded[y : y + 5, x : x + 5] * gauss) for x in range(w)] for y in range(h)])


def test_edge_loss_by_hand_on_a_tiny_2d_case():
    logits = np.array(
        [
            [[0.5, 1.0, -0.3, 2.0], [0.1, -1.2, 0.7, 0.0], [1.5, 0.2, -0.5, 0.3], [-0.8, 0.9, 1.1, -0.2]],
            [[-0.4, 0.3, 1.2, -1.0], [0.6, 0.8, -0.1, 1.4], [-0.7, 1.0, 0.4, -0.9], [0.2, -0.6, 0.5, 1.3]],
        ]
    )
    labels = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    weights, sigma = (0.3, 0.7), 1.3
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    expected = sum(
        w * np.mean(np.abs(numpy_lrhog((labels == n).astype(float), sigma) - numpy_lrhog(probabilities[n], sigma)))
        for n, w in enumerate(weights)
    )
    loss = EdgeLoss(EdgeGate(2, None, sigma_init=sigma), weights)
    got = loss(torch.tensor(logits[None], dtype=torch.float64), torch.tensor(labels[None, None], dtype=torch.float32))
    assert expected > 0.01
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_edge_loss_mean_over_batch_and_gradients():
    torch.manual_seed(0)
    gate = EdgeGate(3, (1, 2))
    loss = EdgeLoss(gate, [0.0, 0.5, 0.5])
    target = torch.randint(0, 3, (1, 1, 2, 8, 8))
    logits = torch.randn(1, 3, 2, 8, 8, requires_grad=True)
    single = loss(logits, target)
    doubled = loss(logits.repeat(2, 1, 1, 1, 1), target.repeat(2, 1, 1, 1, 1))
    torch.testing.assert_close(single, doubled)  # a mean: the batch size does not scale the loss
    single.backward()
    assert logits.grad.abs().sum() > 0 and gate.log_sigma.grad.abs() > 0
    perfect = 30.0 * torch.nn.functional.one_hot(target[:, 0], 3).movedim(-1, 1).float()
    assert loss(perfect, target) < 1e-6 < single


def test_edge_loss_rejects_mismatched_shapes():
    loss = EdgeLoss(EdgeGate(2, None), [0.0, 1.0])
    with pytest.raises(FilterNetError, match="expected logits B 2"):
        loss(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(FilterNetError, match="non-negative"):
        EdgeLoss(EdgeGate(2, None), [0.5, -1.0])


def test_edge_lambda_schedule():
    assert [edge_lambda(e, 30) for e in (0, 9, 10, 19, 20, 29, 35)] == pytest.approx(
        [1e-3, 1e-3, 1e-2, 1e-2, 1e-1, 1e-1, 1e-1]
    )
    assert [edge_lambda(e, 1000) for e in (333, 334, 666, 667)] == pytest.approx([1e-3, 1e-2, 1e-2, 1e-1])
    assert edge_lambda(5, 10, start=0.5, factor=0.5, n_steps=2) == pytest.approx(0.25)
    with pytest.raises(FilterNetError, match="num_epochs >= 1"):
        edge_lambda(0, 0)


def test_edge_targets_on_a_hand_made_mask():
    labels = torch.tensor(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 2, 2, 2, 2, 0],
            [0, 2, 2, 2, 2, 1],
            [0, 2, 2, 2, 2, 1],
            [0, 2, 2, 2, 2, 1],
            [0, 0, 0, 0, 1, 1],
        ]
    )[None, None]
    expected = torch.tensor(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 2, 2, 2, 2, 0],
            [0, 2, 0, 0, 2, 1],
            [0, 2, 0, 0, 2, 1],
            [0, 2, 2, 2, 2, 1],
            [0, 0, 0, 0, 1, 0],
        ]
    )[None, None]
    assert torch.equal(edge_targets(labels, None), expected)


def test_edge_targets_leave_the_coarse_axis_alone():
    labels = torch.zeros(1, 1, 3, 5, 5, dtype=torch.long)
    labels[0, 0, 1, 1:4, 1:4] = 3  # only the middle slice holds the compartment
    in_plane = edge_targets(labels, (1, 2))
    assert in_plane[0, 0, 1, 2, 2] == 0 and in_plane[0, 0, 1, 1, 1] == 3 and in_plane.sum() == 3 * 8
    assert edge_targets(labels, None)[0, 0, 1, 2, 2] == 3  # 3D neighbours along the slice axis differ


@pytest.mark.parametrize("weights", [(0.0, 0.2, 0.2, 0.15, 0.15, 0.3), (0.5, 1.0, 0.0, 2.0, 0.1, 0.3)])
@pytest.mark.parametrize("axes", [(1, 2), None])
def test_edge_loss_equals_the_definition_with_the_gate(weights, axes):
    """The fast path (one Gaussian on the difference, w = 0 classes skipped) = sum_n w_n mean|F(Y_n) - F(P_n)|."""
    torch.manual_seed(0)
    logits = (3 * torch.randn(2, 6, 5, 12, 12, dtype=torch.float64)).requires_grad_()
    target = torch.randint(0, 6, (2, 1, 5, 12, 12)).double()
    gate = EdgeGate(3, axes, sigma_init=0.8).double()
    loss = EdgeLoss(gate, weights)(logits, target)
    one_hot = torch.nn.functional.one_hot(target[:, 0].long(), 6).movedim(-1, 1).double()
    diff = (gate(one_hot) - gate(torch.softmax(logits, 1))).abs().mean(dim=(0, 2, 3, 4))
    expected = (diff * torch.tensor(weights, dtype=torch.float64)).sum()
    torch.testing.assert_close(loss, expected)
    g_fast = torch.autograd.grad(loss, (logits, gate.log_sigma), retain_graph=True)
    g_ref = torch.autograd.grad(expected, (logits, gate.log_sigma))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b)


def test_paper_weights_follow_the_label_order():
    """W = [0, 0.2, 0.2, 0.15, 0.15, 0.3] for background, TA, TP, Sol, Gas, PL (paper, Sec. II-B.3)."""
    from nnunet_filternet.labels import LABELS, PAPER_EDGE_WEIGHTS

    by_name = {"background": 0.0, "TA": 0.2, "TP": 0.2, "Sol": 0.15, "Gas": 0.15, "PL": 0.3}
    assert {name: PAPER_EDGE_WEIGHTS[value] for name, value in LABELS.items()} == by_name


def test_rho_clamps_to_zero_one():
    from nnunet_filternet.edge.filter import rho

    x = torch.tensor([-2.0, -1e-6, 0.0, 0.25, 1.0, 1.5, 4.0])
    assert rho(x).tolist() == [0.0, 0.0, 0.0, 0.25, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("shape, axes", [((2, 1, 9, 11), None), ((2, 1, 4, 9, 8), (1, 2)), ((1, 1, 5, 6, 7), None)])
@pytest.mark.parametrize("gate_kind", ["edge", "laplacian"])
def test_label_edges_are_the_gates_edges_of_the_one_hot_maps(shape, axes, gate_kind):
    """label_edges (read off the label map for the EdgeGate) = edges(one-hot), for any class subset and order."""
    from nnunet_filternet.edge.gate import LaplacianGate

    torch.manual_seed(len(shape) + shape[-1])
    n_dims = len(shape) - 2
    labels = torch.randint(0, 4, shape)
    labels[..., :3, :3] = 2  # a uniform corner: interior voxels of one class are no edge
    gate = EdgeGate(n_dims, axes) if gate_kind == "edge" else LaplacianGate(n_dims, axes)
    for classes in ([1, 2, 3], [3, 0], [2]):
        wanted = torch.tensor(classes)
        one_hot = (labels == wanted.view((1, -1) + (1,) * n_dims)).double()
        expected = gate.edges(one_hot)
        found = gate.label_edges(labels.double(), wanted, torch.float64)
        assert found.dtype == torch.float64 and found.shape == expected.shape
        torch.testing.assert_close(found, expected, rtol=0, atol=0)


@pytest.mark.parametrize("weights", [(0.0, 0.2, 0.2, 0.15, 0.15, 0.3), (0.5, 1.0, 0.0, 2.0, 0.1, 0.3)])
def test_constant_target_loss_equals_its_definition(weights):
    """constant_target: sum_n w_n mean|F(Y_n) - F(P_n)| with F(Y_n) detached, value and gradients."""
    torch.manual_seed(1)
    logits = (3 * torch.randn(2, 6, 10, 12, dtype=torch.float64)).requires_grad_()
    target = torch.randint(0, 6, (2, 1, 10, 12))
    gate = EdgeGate(2, None, sigma_init=1.1).double()
    loss = EdgeLoss(gate, weights, constant_target=True)(logits, target)
    one_hot = torch.nn.functional.one_hot(target[:, 0], 6).movedim(-1, 1).double()
    diff = (gate(one_hot).detach() - gate(torch.softmax(logits, 1))).abs().mean(dim=(0, 2, 3))
    expected = (diff * torch.tensor(weights, dtype=torch.float64)).sum()
    torch.testing.assert_close(loss, expected)
    for a, b in zip(
        torch.autograd.grad(loss, (logits, gate.log_sigma)), torch.autograd.grad(expected, (logits, gate.log_sigma))
    ):
        torch.testing.assert_close(a, b)
