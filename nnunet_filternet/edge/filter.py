"""The parts of the edge gate's operator F(x | sigma) = G(sigma) * rho(L * x), as functions.

``L`` is the discrete Laplacian, ``rho`` clamps to [0, 1] and ``G`` the normalised 5-wide Gaussian (paper
eq. 2-6); their taps come from ``kernels.py``. :class:`~nnunet_filternet.edge.gate.EdgeGate` composes them
(``edges`` = rho(L * x), ``smooth`` = G(sigma) * x), and so does the edge loss, which smooths a difference of
two edge maps once. Every channel is filtered on its own. The filtered axes are the
in-plane ones (``axes``); the others are left alone, so a volume is filtered slice by slice. Borders are padded
by replication, so the image border is not an edge.

Both kernels are applied as sums of shifted copies rather than as convolutions, each operator as one autograd
function over all filtered axes and channels at once, with its own backward:

- ``_LaplacianRho``: L * x (optionally followed by rho) in one pass: 2k x minus the 2k face neighbours, k the
  number of filtered axes. With replicate borders L is the Neumann Laplacian, a symmetric operator, so its
  backward is L again (on the gradient masked where rho clamped, exactly as ``torch.clamp``'s backward; the
  mask is kept as floats: a product with it is several times faster on the CPU than a where()).
- ``_Separable``: the normalised Gaussian is separable (the outer product of normalised 1D Gaussians), so G
  is one 5-tap pass per axis (:func:`_correlate`: shifted copies where the read stays inside the axis, the
  border voxel for the reads that fall outside it: no padded copy); its backward is the adjoint of each pass
  (:func:`_adjoint_pass`) and sigma's gradient the directional derivative of each pass along d taps / d sigma
  (``kernels.gaussian_taps_derivative``): one more pass and one dot product per axis. A depthwise
  convolution's weight gradient is costly on the CPU, and so are five dot products with shifted windows.

On the CPU (outside ``torch.compile``) the taps enter the passes as Python numbers, so a pass is a handful of
in-place additions with no 0-d tensor per tap. The result is the same as the dense kernels (tested against
scipy.ndimage).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nnunet_filternet.edge.kernels import (
    DEFAULT_NORMALISATION,
    SECOND_DIFFERENCE,
    gaussian_taps,
    gaussian_taps_derivative,
)
from nnunet_filternet.errors import FilterNetError


def resolve_axes(n_spatial_dims: int, axes: Sequence[int] | None) -> tuple[int, ...]:
    """Validate the filtered spatial axes; ``None`` means all spatial axes.

    Args:
        n_spatial_dims: number of spatial axes of the data, 2 or 3.
        axes: 0-based spatial axes to filter (two distinct axes), or None for all.

    Returns:
        The sorted tuple of filtered axes.
    """
    if n_spatial_dims not in (2, 3):
        raise FilterNetError(f"edge filter: expected 2 or 3 spatial axes, found {n_spatial_dims}")
    if axes is None:
        return tuple(range(n_spatial_dims))
    axes = tuple(sorted(int(a) for a in axes))
    if axes == tuple(range(n_spatial_dims)):  # all axes, as resolved earlier from None
        return axes
    if len(axes) != 2 or len(set(axes)) != 2 or not all(0 <= a < n_spatial_dims for a in axes):
        raise FilterNetError(
            f"edge filter: expected two distinct in-plane axes in 0..{n_spatial_dims - 1} (or None), found {axes}"
        )
    return axes


def _add_scaled(out: torch.Tensor, source: torch.Tensor, weight: torch.Tensor | float) -> None:
    """out += weight * source, in place; ``weight`` a 0-d tensor (on out's device) or a Python number."""
    if isinstance(weight, torch.Tensor):
        out.addcmul_(source, weight)
    else:
        out.add_(source, alpha=weight)


def _scalars(taps: torch.Tensor) -> list[torch.Tensor] | list[float]:
    """The taps as Python numbers on the CPU (one read, no 0-d tensor per tap), else as 0-d tensors.

    Under ``torch.compile`` they stay tensors (a read of their values would break the graph), on a GPU too
    (reading them would wait for the device and copy to the host every step), and as fake tensors (shapes
    without data: the FLOP count, ``bench/flops.py``).
    """
    from torch._subclasses.fake_tensor import is_fake

    if taps.device.type == "cpu" and not torch.compiler.is_compiling() and not is_fake(taps):
        return taps.tolist()
    return list(taps.unbind())


def equal_as_float(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """1.0 where ``a == b`` (broadcast), else 0.0, written into the float tensor ``out`` (may be ``a``) and returned.

    Eager, the comparison writes floats straight away: several times faster on the CPU than a bool result and
    its conversion (or a where() on it). Under ``torch.compile`` the plain ``(a == b).to(dtype)``, which the
    compiler fuses (inductor's CPU code generator rejects the float-output comparison).
    """
    if torch.compiler.is_compiling():
        return (a == b).to(out.dtype)
    return torch.eq(a, b, out=out)


def neumann_laplacian(x: torch.Tensor, axes: Sequence[int]) -> torch.Tensor:
    """L * x on the spatial ``axes`` with replicate borders, as a new tensor: :data:`SECOND_DIFFERENCE` per axis.

    Each axis adds its centre tap times x and its outer taps times the two face neighbours; at a border the
    missing neighbour is the voxel itself (replicate padding). With the symmetric second difference this is the
    Neumann Laplacian, a symmetric operator (its own adjoint). An axis of length 1 contributes 0.

    Args:
        x: tensor B C *spatial.
        axes: 0-based spatial axes filtered (already resolved).
    """
    before, centre, after = SECOND_DIFFERENCE
    out = x * (centre * len(axes))
    for axis in axes:
        dim, length = axis + 2, x.shape[axis + 2]
        if length > 1:
            out.narrow(dim, 1, length - 1).add_(x.narrow(dim, 0, length - 1), alpha=before)
            out.narrow(dim, 0, length - 1).add_(x.narrow(dim, 1, length - 1), alpha=after)
        out.narrow(dim, 0, 1).add_(x.narrow(dim, 0, 1), alpha=before)  # the replicated voxel before the first
        out.narrow(dim, length - 1, 1).add_(x.narrow(dim, length - 1, 1), alpha=after)  # ... and after the last
    return out


class _LaplacianRho(torch.autograd.Function):
    """y = L * x, or rho(L * x) = clamp(L * x, 0, 1) with ``clamp``, over all filtered axes in one pass.

    Backward: L is symmetric (the second difference is: its outer taps are equal), so the input gradient is L
    applied to the incoming gradient, after zeroing it where the clamp cut (outside [0, 1]; at the bounds the
    gradient passes, as in ``torch.clamp``'s backward; a NaN passes nothing). The output is not needed for
    backward: callers may change it in place.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, axes: tuple[int, ...], clamp: bool) -> torch.Tensor:
        out = neumann_laplacian(x, axes)
        ctx.axes = axes
        if not clamp:
            ctx.save_for_backward(None)
            return out
        clamped = out.clamp(0.0, 1.0)
        # 1 where L * x was in [0, 1] (unchanged by the clamp), else 0, written over L * x: a float mask, as
        # multiplying by it is several times faster on the CPU than a where() or a product with a bool mask
        ctx.save_for_backward(equal_as_float(out, clamped, out=out))
        return clamped

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (passes,) = ctx.saved_tensors
        if passes is not None:
            grad = grad * passes
        return neumann_laplacian(grad, ctx.axes), None, None


class _Separable(torch.autograd.Function):
    """y = the 1D ``taps`` applied along each of ``axes`` in turn (replicate borders), differentiable in ``x`` and in
    the scalar ``parameter`` the taps are a function of (sigma), with a hand-written backward.

    Backward, axis by axis in reverse: the adjoint of the pass (:func:`_adjoint_pass`) for the input, and when the
    parameter needs a gradient, its share of it: the dot product of the incoming gradient with the pass of
    ``taps_derivative`` (d taps / d parameter) over the pass's input, i.e. the directional derivative of the pass,
    summed over the axes (the same taps serve every axis). One extra pass and one dot per axis, instead of one dot
    product per tap (the gradient of every tap, which sigma's gradient only needs along this one direction).
    The output is not needed for backward: callers may change it in place.

    Args (of ``apply``): ``x`` (B C *spatial); ``parameter``, a 0-d tensor (only its gradient slot is used);
    ``taps`` and ``taps_derivative``, 1D tensors of odd length (dtype and device of ``x``; no autograd history;
    ``taps_derivative`` may be None when the parameter needs no gradient); ``axes``, the filtered spatial axes.
    """

    @staticmethod
    def forward(ctx, x, parameter, taps, taps_derivative, axes: tuple[int, ...]) -> torch.Tensor:
        values = _scalars(taps)
        keep_inputs = ctx.needs_input_grad[1] and taps_derivative is not None
        inputs = []
        for axis in axes:
            if keep_inputs:
                inputs.append(x)
            x = _correlate(x, values, axis + 2)
        ctx.save_for_backward(taps, taps_derivative if keep_inputs else None, *inputs)
        ctx.axes = axes
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        taps, derivative, *inputs = ctx.saved_tensors
        values = _scalars(taps)
        derivative_values = _scalars(derivative) if inputs else None
        grad_parameter = None
        for index in reversed(range(len(ctx.axes))):
            dim = ctx.axes[index] + 2
            if inputs:
                change = _correlate(inputs[index], derivative_values, dim)  # d(pass) / d parameter
                term = torch.dot(grad.reshape(-1), change.reshape(-1))
                grad_parameter = term if grad_parameter is None else grad_parameter + term
            if index > 0 or ctx.needs_input_grad[0]:
                grad = _adjoint_pass(grad, values, dim)
        return (grad if ctx.needs_input_grad[0] else None), grad_parameter, None, None, None


def _correlate(x: torch.Tensor, taps, dim: int) -> torch.Tensor:
    """One pass of ``taps`` along ``dim`` with replicate borders, as a new tensor (no padded copy).

    out[i] = sum_k taps[k] x[clamp(i + k - r, 0, n - 1)], r = len(taps) // 2: each tap adds its shifted copy of x
    where the read stays inside the axis; a read that falls j voxels before (after) the axis reads the first
    (last) voxel, so output i (n - 1 - i) adds the first (last) voxel times the sum of the taps that read before
    (after) it: taps k < r - i (k > r + i). Written for any n, also shorter than the kernel.

    Args:
        x: tensor B C *spatial.
        taps: odd number of Python numbers or 0-d tensors (``_scalars``).
        dim: the tensor dimension filtered (a spatial axis + 2).
    """
    radius, length = len(taps) // 2, x.shape[dim]
    out = x * taps[radius]
    for k, tap in enumerate(taps):
        shift = k - radius  # out[m] += tap * x[m + shift] for the outputs whose read stays inside
        inside = length - abs(shift)
        if shift != 0 and inside > 0:
            _add_scaled(out.narrow(dim, max(0, -shift), inside), x.narrow(dim, max(0, shift), inside), tap)
    for i in range(min(radius, length)):
        _add_scaled(out.narrow(dim, i, 1), x.narrow(dim, 0, 1), sum(taps[: radius - i]))
        _add_scaled(out.narrow(dim, length - 1 - i, 1), x.narrow(dim, length - 1, 1), sum(taps[radius + i + 1 :]))
    return out


def _adjoint_pass(grad: torch.Tensor, taps, dim: int) -> torch.Tensor:
    """The adjoint of one pass of ``taps`` along ``dim`` with replicate borders, applied to ``grad`` (a new tensor).

    The pass reads x[clamp(i + k - r, 0, n - 1)] with tap k into output i. Its adjoint sends grad[i] times tap k
    back to that voxel: to voxel i + k - r inside the axis; a read that fell j voxels before the axis (after it)
    lands on the first (last) voxel, which so receives grad[i] for i < r times the sum of the taps that read
    before the axis from output i (the mirror image at the end). Written for any n, also shorter than the kernel.
    """
    radius, length = len(taps) // 2, grad.shape[dim]
    out = grad * taps[radius]
    for k, tap in enumerate(taps):
        shift = radius - k  # out[m] += tap * grad[m + shift] for the outputs m + shift whose read stays inside
        inside = length - abs(shift)
        if shift != 0 and inside > 0:
            _add_scaled(out.narrow(dim, max(0, -shift), inside), grad.narrow(dim, max(0, shift), inside), tap)
    for i in range(min(radius, length)):  # output i (n - 1 - i) read before (after) the axis with taps k < r - i
        before, after = taps[0], taps[-1]
        for k in range(1, radius - i):
            before, after = before + taps[k], after + taps[-1 - k]
        _add_scaled(out.narrow(dim, 0, 1), grad.narrow(dim, i, 1), before)
        _add_scaled(out.narrow(dim, length - 1, 1), grad.narrow(dim, length - 1 - i, 1), after)
    return out


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """float64 stays float64 (gradcheck); everything else is computed in float32."""
    return x if x.dtype == torch.float64 else x.float()


def laplacian_filter(x: torch.Tensor, axes: Sequence[int] | None = None) -> torch.Tensor:
    """L * x per channel, on ``axes`` (None: all spatial axes, 3D 7-point stencil for volumes).

    Args:
        x: tensor B C *spatial (2 or 3 spatial axes).
        axes: filtered spatial axes (0-based), see ``resolve_axes``.

    Returns:
        Tensor of the same shape, float32 (float64 if ``x`` is float64).
    """
    axes = resolve_axes(x.ndim - 2, axes)
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _LaplacianRho.apply(_as_float(x), axes, False)


def laplacian_rho(x: torch.Tensor, axes: Sequence[int] | None = None) -> torch.Tensor:
    """rho(L * x) per channel, on ``axes``: ``rho(laplacian_filter(x, axes))`` in one pass (same values, gradients).

    Args:
        x: tensor B C *spatial (2 or 3 spatial axes).
        axes: filtered spatial axes (0-based), see ``resolve_axes``.

    Returns:
        Tensor of the same shape, values in [0, 1], float32 (float64 if ``x`` is float64).
    """
    axes = resolve_axes(x.ndim - 2, axes)
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _LaplacianRho.apply(_as_float(x), axes, True)


def gaussian_filter(
    x: torch.Tensor,
    sigma: torch.Tensor,
    axes: Sequence[int] | None = None,
    normalisation: str = DEFAULT_NORMALISATION,
) -> torch.Tensor:
    """G(sigma) * x per channel, on ``axes``, with the 5-wide Gaussian; differentiable in ``sigma``.

    Args:
        x: tensor B C *spatial (2 or 3 spatial axes).
        sigma: scalar tensor, standard deviation in voxels (> 0).
        axes: filtered spatial axes (0-based), see ``resolve_axes``.
        normalisation: how tau enters the kernel and sigma's gradient (``kernels.GAUSSIAN_NORMALISATIONS``).

    Returns:
        Tensor of the same shape, float32 (float64 if ``x`` is float64).
    """
    axes = resolve_axes(x.ndim - 2, axes)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = _as_float(x)
        sigma = torch.as_tensor(sigma, device=x.device).to(x.dtype)
        with torch.no_grad():
            taps = gaussian_taps(sigma, normalisation)
        derivative = None
        if sigma.requires_grad and torch.is_grad_enabled():
            derivative = gaussian_taps_derivative(taps, sigma, normalisation)
        return _Separable.apply(x, sigma, taps, derivative, axes)


def rho(x: torch.Tensor) -> torch.Tensor:
    """The paper's rho (eq. 3): x clamped to [0, 1] (a hard tanh shifted to [0, 1])."""
    return x.clamp(0.0, 1.0)
