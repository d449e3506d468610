"""The fused CPU kernel of the edge loss (edge/fused_cpu.py, edge/native) against the PyTorch operators.

The PyTorch operators are themselves checked against scipy and by gradcheck (test_edge_filter.py,
test_edge_sigma.py); here the kernel must give the same loss and the same gradients (probabilities' and sigma's)
for every reading of tau, with and without a constant target, a trained or a fixed sigma, 2D images and 3D
volumes filtered in plane, axes shorter than the kernel; it must only be used where it computes that, and be
built once per source and compiler.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from nnunet_filternet.edge import fused_cpu, native
from nnunet_filternet.edge.gate import EdgeGate, LaplacianGate
from nnunet_filternet.edge.kernels import GAUSSIAN_NORMALISATIONS
from nnunet_filternet.edge.loss import EdgeLoss
from nnunet_filternet.labels import PAPER_EDGE_WEIGHTS

HAS_COMPILER = any(shutil.which(c) for c in ("cc", "gcc"))


def test_the_kernel_is_built_where_a_compiler_is(monkeypatch):
    """With a C compiler the kernel loads; turned off, or with no compiler, nothing is built and None comes back."""
    assert (native.library() is not None) == HAS_COMPILER
    monkeypatch.setenv(native.SWITCH, "0")
    assert native.library() is None


def test_no_compiler_builds_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert native.build(tmp_path / "cache") is None
    assert not (tmp_path / "cache").exists()


def test_a_build_is_kept_per_source(tmp_path, monkeypatch):
    first = native.build(tmp_path)
    if not HAS_COMPILER:
        assert first is None and not any(tmp_path.iterdir())
        return
    stamp = first.stat().st_mtime_ns
    assert native.build(tmp_path) == first and first.stat().st_mtime_ns == stamp  # reused, not rebuilt
    changed = tmp_path / "src" / "gate_kernel.c"
    changed.parent.mkdir()
    changed.write_text(native.SOURCE.read_text() + "\n/* another source */\n")
    monkeypatch.setattr(native, "SOURCE", changed)
    second = native.build(tmp_path)
    assert second != first and second.is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".so") == sorted([first.name, second.name])


def _loss_and_grads(shape, axes, normalisation, constant_target, train_sigma, use_kernel, monkeypatch):
    """(loss, d logits, d log sigma or None, whether the kernel ran) of one EdgeLoss call."""
    monkeypatch.setenv(native.SWITCH, "1" if use_kernel else "0")
    calls = []
    original = fused_cpu.fused_edge_loss
    monkeypatch.setattr(fused_cpu, "fused_edge_loss", lambda *a: calls.append(1) or original(*a))
    g = torch.Generator().manual_seed(sum(shape))
    logits = (3 * torch.randn(shape, generator=g)).requires_grad_(True)
    target = torch.randint(0, 6, (shape[0], 1, *shape[2:]), generator=g).float()
    gate = EdgeGate(len(shape) - 2, axes, sigma_init=1.3, train_sigma=train_sigma, normalisation=normalisation)
    value = EdgeLoss(gate, PAPER_EDGE_WEIGHTS, constant_target=constant_target)(logits, target)
    value.backward()
    sigma_grad = gate.log_sigma.grad.item() if train_sigma else None
    return value.item(), logits.grad, sigma_grad, bool(calls)


@pytest.mark.parametrize("normalisation", GAUSSIAN_NORMALISATIONS)
@pytest.mark.parametrize(
    ("shape", "axes"),
    [((2, 6, 3, 16, 16), (1, 2)), ((4, 6, 12, 10), None), ((2, 6, 3, 1, 2), (1, 2)), ((1, 6, 2, 3), None)],
)
@pytest.mark.parametrize(("constant_target", "train_sigma"), [(False, True), (True, True), (False, False)])
def test_the_kernel_computes_what_the_operators_compute(
    shape, axes, normalisation, constant_target, train_sigma, monkeypatch
):
    eager = _loss_and_grads(shape, axes, normalisation, constant_target, train_sigma, False, monkeypatch)
    fused = _loss_and_grads(shape, axes, normalisation, constant_target, train_sigma, True, monkeypatch)
    assert fused[3] == HAS_COMPILER and not eager[3]  # the kernel ran where it exists, and only where asked to
    assert fused[0] == pytest.approx(eager[0], rel=1e-6)
    torch.testing.assert_close(fused[1], eager[1], rtol=0, atol=1e-6 * eager[1].abs().max().item())
    if train_sigma:
        assert abs(eager[2]) > 1e-4 or min(shape[-2:]) < 5  # (a sum-1 kernel on short axes hardly depends on sigma)
        assert fused[2] == pytest.approx(eager[2], rel=1e-4, abs=1e-7)


def test_the_kernel_is_used_only_where_it_computes_the_same(monkeypatch):
    monkeypatch.setenv(native.SWITCH, "1")
    p = torch.rand(2, 5, 3, 8, 8)
    in_plane = EdgeGate(3, (1, 2))
    assert fused_cpu.applies(in_plane, p) == HAS_COMPILER
    assert not fused_cpu.applies(in_plane, p.double())  # float64 (gradcheck): the operators
    assert not fused_cpu.applies(EdgeGate(3, None), p)  # a 3D kernel on all axes
    assert not fused_cpu.applies(EdgeGate(3, (0, 2)), p)  # a plane that is not the last two axes
    assert not fused_cpu.applies(LaplacianGate(3, (1, 2)), p)  # Table III's Laplacian-only gate
    assert not fused_cpu.applies(in_plane, p.transpose(3, 4))  # a class block that is not contiguous
    monkeypatch.setenv(native.SWITCH, "0")
    assert not fused_cpu.applies(in_plane, p)
