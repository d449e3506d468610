"""Kernel builders of the edge gate: the fixed discrete Laplacian and the normalised, differentiable Gaussian.

Both return dense kernels over ``n_dims`` axes (the axes the gate filters); ``filter.py`` places them on the
right spatial axes of a tensor and applies them.
"""

from __future__ import annotations

import torch

from nnunet_filternet.errors import FilterNetError

#: Side length of the Gaussian kernel (paper: 5x5, centre at index 2).
GAUSSIAN_SIZE = 5


def _check_n_dims(n_dims: int) -> None:
    if n_dims not in (2, 3):
        raise FilterNetError(f"edge kernels: expected 2 or 3 filtered axes, found {n_dims}")


def laplacian_kernel(n_dims: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Discrete Laplacian L with a positive centre (``L * x > 0`` just inside a bright region).

    2D: ``[[0,-1,0],[-1,4,-1],[0,-1,0]]`` (paper eq. 4). 3D: the 7-point stencil (centre 6, the six face
    neighbours -1), used for isotropic data.

    Args:
        n_dims: number of filtered axes, 2 or 3.
        dtype: dtype of the kernel.
        device: device of the kernel.

    Returns:
        Tensor of shape ``(3,) * n_dims``; its entries sum to 0.
    """
    _check_n_dims(n_dims)
    kernel = torch.zeros((3,) * n_dims, dtype=dtype, device=device)
    centre = (1,) * n_dims
    kernel[centre] = 2 * n_dims
    for axis in range(n_dims):
        for offset in (0, 2):
            index = list(centre)
            index[axis] = offset
            kernel[tuple(index)] = -1
    return kernel


def gaussian_kernel(sigma: torch.Tensor, n_dims: int, size: int = GAUSSIAN_SIZE) -> torch.Tensor:
    """Gaussian kernel exp(-|r|^2 / (2 sigma^2)) sampled on a ``size``-wide grid and normalised to sum 1.

    Paper eq. 5-6 (5x5, normalised by tau). The kernel is built as the outer product of normalised 1D
    Gaussians, which equals the normalised n-D Gaussian exactly; it is differentiable with respect to
    ``sigma`` (a tensor, so it can carry gradients).

    Args:
        sigma: scalar tensor, standard deviation in voxels (> 0). Its dtype and device are the kernel's.
        n_dims: number of filtered axes, 2 or 3.
        size: odd side length of the kernel.

    Returns:
        Tensor of shape ``(size,) * n_dims`` summing to 1.
    """
    _check_n_dims(n_dims)
    g = gaussian_kernel_1d(sigma, size)
    kernel = g
    for _ in range(n_dims - 1):
        kernel = kernel[..., None] * g
    return kernel


def gaussian_kernel_1d(sigma: torch.Tensor, size: int = GAUSSIAN_SIZE) -> torch.Tensor:
    """Normalised 1D Gaussian exp(-r^2 / (2 sigma^2)), r = -size//2 .. size//2; the n-D kernel is its outer power.

    Args:
        sigma: scalar tensor, standard deviation in voxels (> 0); differentiable.
        size: odd side length.

    Returns:
        Tensor of shape ``(size,)`` summing to 1, with ``sigma``'s dtype and device.
    """
    if size < 1 or size % 2 == 0:
        raise FilterNetError(f"gaussian_kernel: expected an odd positive size, found {size}")
    sigma = torch.as_tensor(sigma)
    radius = size // 2
    r = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()
