"""Divergence-free regularisation and diagnostics for 2-D velocity fields.

* :func:`divergence_penalty`: ``mean_x (div v(x))^2`` of a pointwise network ``v: [2] -> [2]``
  at collocation points (autodiff, exact for the network).
* :func:`stream_velocity`: ``v = (d psi / dy, -d psi / dx)`` from a scalar ``psi``: divergence
  free by construction (a hard constraint, for comparison with the penalty).
* :func:`spectral_divergence`, :func:`spectral_curl` and :func:`energy_spectrum`: grid diagnostics on the periodic
  unit square, channels-first ``[..., 2, n, n]``, axis ``-2`` is ``x`` (the
  :mod:`dynajax.systems.navier_stokes` convention).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from dynajax.arch.pinn import divergence

__all__ = ["divergence_penalty", "energy_spectrum", "spectral_curl", "spectral_divergence", "stream_velocity"]


def divergence_penalty(v: Callable[[Array], Array], points: Float[Array, "n 2"]) -> Float[Array, ""]:
    """Mean squared divergence of ``v`` over ``points`` ``[n, d]``."""
    if jnp.ndim(points) != 2:
        raise ValueError(f"points must be [n, d], got shape {jnp.shape(points)}")
    return jnp.mean(jax.vmap(lambda x: divergence(v, x))(points) ** 2)


def stream_velocity(psi: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """The velocity ``(d psi/dy, -d psi/dx)`` of a scalar stream function ``psi: [2] -> []``."""

    def v(x):
        g = jax.grad(lambda y: jnp.reshape(psi(y), ()))(x)
        return jnp.stack([g[1], -g[0]])

    return v


def _wavenumbers(n: int):
    k = np.fft.fftfreq(n, 1.0 / n)
    k[n // 2] = 0.0 if n % 2 == 0 else k[n // 2]  # odd derivatives zero the Nyquist mode
    kx, ky = np.meshgrid(k, k, indexing="ij")
    return kx, ky


def _check_field(u) -> int:
    u = np.asarray(u)
    if u.ndim < 3 or u.shape[-3] != 2 or u.shape[-1] != u.shape[-2]:
        raise ValueError(f"u must be [..., 2, n, n], got shape {u.shape}")
    return u.shape[-1]


def spectral_divergence(u: Float[Array, "... 2 n n"]) -> Float[Array, "... n n"]:
    """``d u_x / dx + d u_y / dy`` on the periodic unit square (Fourier derivatives)."""
    n = _check_field(u)
    kx, ky = _wavenumbers(n)
    uh = jnp.fft.fft2(jnp.asarray(u))
    dh = 2j * jnp.pi * (kx * uh[..., 0, :, :] + ky * uh[..., 1, :, :])
    return jnp.real(jnp.fft.ifft2(dh))


def spectral_curl(u: Float[Array, "... 2 n n"]) -> Float[Array, "... n n"]:
    """``d u_y / dx - d u_x / dy`` on the periodic unit square (Fourier derivatives, the vorticity)."""
    n = _check_field(u)
    kx, ky = _wavenumbers(n)
    uh = jnp.fft.fft2(jnp.asarray(u))
    ch = 2j * jnp.pi * (kx * uh[..., 1, :, :] - ky * uh[..., 0, :, :])
    return jnp.real(jnp.fft.ifft2(ch))


def energy_spectrum(u: Float[Array, "... 2 n n"]) -> Float[Array, "... n_shells"]:
    """Shell-summed kinetic energy ``E(k) = sum_{|kvec| in [k-1/2, k+1/2)} |u_hat|^2 / 2``.

    Returns shells ``k = 0 .. n // 2`` (``u_hat`` normalised by ``n^2``).
    """
    n = _check_field(u)
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    shell = np.rint(np.sqrt(kx**2 + ky**2)).astype(int)
    n_shells = n // 2 + 1
    uh = jnp.fft.fft2(jnp.asarray(u)) / n**2
    e = 0.5 * jnp.sum(jnp.abs(uh) ** 2, axis=-3)  # [..., n, n]
    onehot = jnp.asarray((shell[..., None] == np.arange(n_shells)).astype(np.float64), e.dtype)
    return jnp.einsum("...ij,ijk->...k", e, onehot)
