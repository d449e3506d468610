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


def _loss_and_grads(
    shape, axes, normalisation, constant_target, train_sigma, use_kernel, monkeypatch, *, scale=3.0,
    target_dtype=torch.float32, fraction=0.0, weights=PAPER_EDGE_WEIGHTS, logits_dtype=torch.float32,
):  # fmt: skip
    """(loss, d logits, d log sigma or None, whether the kernel ran) of one EdgeLoss call.

    ``scale`` multiplies standard normal logits; the target is a random label map of ``target_dtype`` plus
    ``fraction`` (a float target that ``.long()`` truncates)."""
    monkeypatch.setenv(native.SWITCH, "1" if use_kernel else "0")
    calls = []
    original = fused_cpu.fused_edge_loss
    monkeypatch.setattr(fused_cpu, "fused_edge_loss", lambda *a: calls.append(1) or original(*a))
    g = torch.Generator().manual_seed(sum(shape))
    logits = (scale * torch.randn(shape, generator=g)).to(logits_dtype).requires_grad_(True)
    target = (torch.randint(0, 6, (shape[0], 1, *shape[2:]), generator=g) + fraction).to(target_dtype)
    gate = EdgeGate(len(shape) - 2, axes, sigma_init=1.3, train_sigma=train_sigma, normalisation=normalisation)
    value = EdgeLoss(gate, weights, constant_target=constant_target)(logits, target)
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


def _same(fused, eager):
    assert fused[0] == pytest.approx(eager[0], rel=1e-6)
    torch.testing.assert_close(fused[1], eager[1], rtol=0, atol=1e-6 * eager[1].abs().max().item())
    assert fused[2] == pytest.approx(eager[2], rel=1e-4, abs=1e-7)


@pytest.mark.parametrize(
    ("target_dtype", "fraction"),
    [
        (torch.int16, 0.0), (torch.int32, 0.0), (torch.int64, 0.0), (torch.uint8, 0.0), (torch.int8, 0.0),
        (torch.float64, 0.7), (torch.float32, 0.7), (torch.float16, 0.0), (torch.bool, 0.0),
    ],
)  # fmt: skip
def test_the_kernel_reads_labels_of_every_dtype_as_long_does(target_dtype, fraction, monkeypatch):
    """Integer label maps are read as they are, float ones truncated like ``.long()``, others converted first."""
    case = ((2, 6, 3, 12, 10), (1, 2), "tau_constant", False, True)
    eager = _loss_and_grads(*case, False, monkeypatch, target_dtype=target_dtype, fraction=fraction)
    fused = _loss_and_grads(*case, True, monkeypatch, target_dtype=target_dtype, fraction=fraction)
    assert fused[3] == HAS_COMPILER
    _same(fused, eager)


@pytest.mark.parametrize("constant_target", [False, True])
def test_the_kernel_takes_any_set_of_classes(constant_target, monkeypatch):
    """Used classes that are not one run, and the background weighted."""
    case = ((2, 6, 3, 12, 10), (1, 2), "tau_differentiated", constant_target, True)
    weights = (0.1, 0.0, 0.2, 0.0, 0.5, 0.3)
    eager = _loss_and_grads(*case, False, monkeypatch, weights=weights)
    fused = _loss_and_grads(*case, True, monkeypatch, weights=weights)
    assert fused[3] == HAS_COMPILER
    _same(fused, eager)


@pytest.mark.parametrize("constant_target", [False, True])
def test_the_kernel_takes_saturated_logits(constant_target, monkeypatch):
    """Logits large enough that the softmax saturates (probabilities of exactly 0 and 1, exponentials below float32's
    normal range): the same loss and logits' gradient; sigma's gradient, which then rests on the signs of differences
    that are 0 up to rounding, no further from the float64 operators' than the float32 operators' is."""
    case = ((2, 6, 3, 12, 10), (1, 2), "tau_differentiated", constant_target, True)
    eager = _loss_and_grads(*case, False, monkeypatch, scale=100.0)
    fused = _loss_and_grads(*case, True, monkeypatch, scale=100.0)
    assert fused[3] == HAS_COMPILER
    _same(fused[:2] + (eager[2],), eager)
    monkeypatch.setattr(EdgeGate, "sigma", property(lambda gate: gate.log_sigma.double().exp()))
    reference = _loss_and_grads(*case, False, monkeypatch, scale=100.0, logits_dtype=torch.float64)
    assert abs(fused[2] - reference[2]) <= 2 * abs(eager[2] - reference[2]) + 1e-6 * abs(reference[2])


def test_a_nan_logit_gives_a_nan_loss_as_the_operators_do(monkeypatch):
    values = []
    for use_kernel in (False, True):
        monkeypatch.setenv(native.SWITCH, "1" if use_kernel else "0")
        logits = torch.randn(2, 6, 2, 8, 8)
        logits[1, 3, 1, 4, 4] = float("nan")
        target = torch.randint(0, 6, (2, 1, 2, 8, 8))
        values.append(EdgeLoss(EdgeGate(3, (1, 2)), PAPER_EDGE_WEIGHTS)(logits, target).item())
    assert all(v != v for v in values)  # NaN


def test_cpu_features_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx avx2 fma\n\nflags : other\n")
    assert native.cpu_features(cpuinfo) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert native.cpu_features(tmp_path / "missing") == frozenset()


def test_instruction_set_flags_only_where_the_cpu_has_them(monkeypatch):
    monkeypatch.setattr(native.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(native, "cpu_features", lambda: frozenset({"sse2", "avx2"}))
    assert native.flags() == (*native.FLAGS, "-mavx2")
    monkeypatch.setattr(native, "cpu_features", lambda: frozenset({"sse2", "avx"}))
    assert native.flags() == native.FLAGS
    monkeypatch.setattr(native.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(native, "cpu_features", lambda: frozenset({"avx2"}))
    assert native.flags() == native.FLAGS


def test_a_refused_instruction_set_falls_back_to_the_portable_build(tmp_path, monkeypatch, capsys):
    """A compiler that refuses this CPU's instruction-set flag still gives a kernel: the portable build, silently."""
    monkeypatch.setattr(native, "ISA_FLAGS", {"made-up": ("-mno-such-instruction-set-flag",)})
    monkeypatch.setattr(native.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(native, "cpu_features", lambda: frozenset({"made-up"}))
    built = native.build(tmp_path)
    if not HAS_COMPILER:
        assert built is None
        return
    assert built is not None and built.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".so"] == [built.name]
    assert capsys.readouterr().err == ""


def _stored_sigma_and_logits_grads(make_gate, upstream, monkeypatch):
    """[(d stored sigma, d logits) with the operators, the same with the kernel] of ``upstream`` x the edge loss."""
    grads = []
    for use_kernel in (False, True):
        monkeypatch.setenv(native.SWITCH, "1" if use_kernel else "0")
        g = torch.Generator().manual_seed(5)
        logits = (3 * torch.randn(2, 6, 2, 12, 10, generator=g)).requires_grad_(True)
        target = torch.randint(0, 6, (2, 1, 2, 12, 10), generator=g)
        gate = make_gate()
        (upstream * EdgeLoss(gate, PAPER_EDGE_WEIGHTS)(logits, target)).backward()
        grads.append((gate.stored_sigma()[0].grad.item(), logits.grad))
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=0, atol=1e-6 * grads[0][1].abs().max().item())
    return grads


@pytest.mark.parametrize("direct_sigma", [1.3, 0.01])  # above and below the floor MIN_DIRECT_SIGMA
def test_the_kernel_trains_a_directly_stored_sigma(direct_sigma, monkeypatch):
    """The ``direct`` parametrisation: the stored sigma's gradient as the operators give it (0 below the floor)."""
    gate = lambda: EdgeGate(3, (1, 2), sigma_init=direct_sigma, parametrisation="direct")  # noqa: E731
    (eager, _), (fused, _) = _stored_sigma_and_logits_grads(gate, 1.0, monkeypatch)
    assert fused == pytest.approx(eager, rel=1e-4, abs=1e-9)
    assert (eager == 0.0) == (direct_sigma < 0.05)


def test_the_upstream_gradient_scales_both_gradients(monkeypatch):
    """The loss enters the total scaled (lambda, nnU-Net's loss weights): d logits and d sigma follow that scale."""
    (eager, _), (fused, _) = _stored_sigma_and_logits_grads(
        lambda: EdgeGate(3, (1, 2), sigma_init=1.2), 0.37, monkeypatch
    )
    assert fused == pytest.approx(eager, rel=1e-4)


def test_stored_sigma_is_the_parameter_with_its_derivative():
    trained = EdgeGate(3, (1, 2), sigma_init=1.7)
    stored, sigma, derivative = trained.stored_sigma()
    assert stored is trained.log_sigma and sigma == pytest.approx(1.7) and derivative == pytest.approx(1.7)
    fixed = EdgeGate(3, (1, 2), sigma_init=0.8, train_sigma=False)
    assert fixed.stored_sigma()[0] is fixed.log_sigma and not fixed.log_sigma.requires_grad
    direct = EdgeGate(3, (1, 2), sigma_init=0.9, parametrisation="direct")
    assert direct.stored_sigma() == (direct.direct_sigma, pytest.approx(0.9), 1.0)
    floored = EdgeGate(3, (1, 2), sigma_init=0.01, parametrisation="direct")
    assert floored.stored_sigma()[1:] == (0.05, 0.0)
