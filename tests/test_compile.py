"""``torch.compile`` of every network our trainers build and of the edge loss: one graph each, eager's numbers.

nnU-Net compiles ``self.network`` on CUDA by default (``_do_i_compile``); the networks here are built the way the
trainers build them (``build_network_architecture`` on the session's ``tiny`` plans), with deep supervision on
(nnU-Net's recipe) and off (the paper's protocol and prediction), in train mode, forward and backward.

Two backends, because inductor's C++ code generation costs about a minute per graph on this 2-core machine:

- ``aot_eager`` with ``fullgraph=True`` for every network and both deep-supervision settings: dynamo must capture
  the whole forward as one graph (any graph break raises) and AOTAutograd must trace its backward; the numbers
  are then eager's kernels, so outputs and gradients must agree to the same tolerance as below.
- ``inductor`` (generated C++ kernels) for FilterNet (our main network: Block B stages, CPU-fast norm, nnU-Net's
  decoder; without deep supervision, which halves the compile time and uses the same modules) and for the edge
  loss (the ``_ShiftedSum`` autograd function with its hand-written backward, sigma's gradient).

Tolerances: networks as ``gpu_check.compiled`` states them (outputs and gradients within 1e-4 of the largest
eager magnitude; measured <= 3e-6 and <= 5e-7), the edge loss and sigma's gradient within 1e-5 relative
(measured 1.4e-7 and 4.7e-7). Cost on this machine: see the module's timings in the report
(``pytest --durations``); select or skip them with ``-m compile`` / ``-m "not compile"``.
"""

from __future__ import annotations

import json

import pytest
import torch

from nnunet_filternet.gpu_check.compiled import OUTPUT_TOLERANCE, check_compiled, outputs_and_gradients

pytestmark = pytest.mark.compile

#: Trainers whose networks differ (BUNet builds FilterNet's network: checked below, compiled once).
NETWORK_TRAINERS = ("nnUNetTrainerFilterNet", "nnUNetTrainerUNetF", "nnUNetTrainerBoundaryAwareFCN")
EDGE_LOSS_TOLERANCE = 1e-5


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch.set_num_threads(threads)


@pytest.fixture
def build_network(tiny_nnunet):
    """``build(trainer_name, deep_supervision)``: the network that trainer builds from the tiny plans (seeded)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_filternet.training import trainers

    manager = PlansManager(json.loads((tiny_nnunet.dataset_folder / "nnUNetPlans_tiny.json").read_text()))
    configuration = manager.get_configuration("3d_fullres")

    def build(trainer_name: str, deep_supervision: bool) -> torch.nn.Module:
        torch.manual_seed(0)
        cls = getattr(trainers, trainer_name)
        network = cls.build_network_architecture(manager, configuration, 1, 6, deep_supervision)
        return network.train()

    build.patch_size = tuple(configuration.patch_size)
    return build


def test_bunet_trains_filternets_network(build_network):
    """BUNet and FilterNet build the same architecture, so compiling FilterNet's covers both."""
    for deep_supervision in (True, False):
        filternet = build_network("nnUNetTrainerFilterNet", deep_supervision)
        bunet = build_network("nnUNetTrainerBUNet", deep_supervision)
        assert type(bunet) is type(filternet) and str(bunet) == str(filternet)
        assert {k: v.shape for k, v in bunet.state_dict().items()} == {
            k: v.shape for k, v in filternet.state_dict().items()
        }


@pytest.mark.parametrize("deep_supervision", [True, False])
@pytest.mark.parametrize("trainer_name", NETWORK_TRAINERS)
def test_network_compiles_to_one_graph_with_eager_results(build_network, one_thread, trainer_name, deep_supervision):
    network = build_network(trainer_name, deep_supervision)
    x = torch.randn(2, 1, *build_network.patch_size, generator=torch.Generator().manual_seed(1))
    heads = 3 if "BoundaryAware" in trainer_name else 1  # the BA-FCN returns (final, region, edge) in train mode
    assert (len(outputs_and_gradients(network, network, x)[0]) > heads) == deep_supervision
    assert check_compiled(network, x, backend="aot_eager") == []  # fullgraph: a graph break raises


def test_filternet_inductor_matches_eager(build_network, one_thread):
    """Without deep supervision: the same modules as with it (above), half the compile time (30 s against 60 s).

    In float64: a LeakyReLU's slope jumps from 1 to 0.01 at 0, so in float32 a voxel whose pre-activation lies
    within rounding error of 0 takes either slope depending on the order of a sum, and that one voxel moves a
    gradient by up to 1e-3 of the largest (measured on this version's FilterNet at this seed: eager float32
    against eager float64 differs by 7e-4, inductor float32 against float64 by < 1e-4). In float64
    no pre-activation comes that close, so the comparison tests the compiled kernels, not the rounding.
    """
    network = build_network("nnUNetTrainerFilterNet", False).double()
    x = torch.randn(2, 1, *build_network.patch_size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert check_compiled(network, x, backend="inductor") == []


def test_comparison_reports_a_difference():
    """``compare_to_eager`` itself: an output or a gradient off by more than the tolerance is reported."""
    from nnunet_filternet.gpu_check.compiled import GRADIENT_TOLERANCE, compare_to_eager

    outputs, gradients = [torch.ones(2, 3)], {"w": torch.ones(4), "b": torch.zeros(1)}
    assert compare_to_eager((outputs, gradients), (outputs, gradients)) == []
    off = [torch.ones(2, 3) * (1 + 2 * OUTPUT_TOLERANCE)]
    assert "output 0" in compare_to_eager((outputs, gradients), (off, gradients))[0]
    noisy = {"w": torch.ones(4), "b": torch.full((1,), 2 * GRADIENT_TOLERANCE)}
    assert "gradient of b" in compare_to_eager((outputs, gradients), (outputs, noisy))[0]


def _edge_loss_and_grads(loss_fn, loss, logits, target):
    logits = logits.detach().requires_grad_()
    loss.gate.log_sigma.grad = None
    value = loss_fn(logits, target)
    value.backward()
    return value.detach(), logits.grad, loss.gate.log_sigma.grad.clone()


def test_edge_loss_compiles_to_one_graph_and_inductor_matches_eager(one_thread):
    from nnunet_filternet.edge.gate import EdgeGate
    from nnunet_filternet.edge.loss import EdgeLoss
    from nnunet_filternet.labels import PAPER_EDGE_WEIGHTS

    gate = EdgeGate(3, (1, 2), sigma_init=1.2)
    loss = EdgeLoss(gate, PAPER_EDGE_WEIGHTS)
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2, 6, 8, 32, 32, generator=g)
    target = torch.randint(0, 6, (2, 1, 8, 32, 32), generator=g).float()  # nnU-Net's targets are floats

    explanation = torch._dynamo.explain(loss)(logits.requires_grad_(), target)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons
    torch._dynamo.reset()

    value_e, dlogits_e, dsigma_e = _edge_loss_and_grads(loss, loss, logits, target)
    compiled = torch.compile(loss, backend="inductor", fullgraph=True)
    value_c, dlogits_c, dsigma_c = _edge_loss_and_grads(compiled, loss, logits, target)
    assert value_e.item() > 0.01 and dsigma_e.abs().item() > 1e-4  # a loss and a sigma gradient worth comparing
    torch.testing.assert_close(value_c, value_e, rtol=EDGE_LOSS_TOLERANCE, atol=0)
    torch.testing.assert_close(dsigma_c, dsigma_e, rtol=EDGE_LOSS_TOLERANCE, atol=0)
    torch.testing.assert_close(dlogits_c, dlogits_e, rtol=0, atol=OUTPUT_TOLERANCE * dlogits_e.abs().max().item())
