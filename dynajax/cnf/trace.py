"""Divergences of vector fields (traces of Jacobians), by autodiff and by Hutchinson's estimator.

For comparison with the exact closed-form trace of :meth:`dynajax.cnf.Potential.grad_and_laplacian`
(the Laplacian of a potential is the divergence of its gradient field):

* :func:`autodiff_divergence` is exact: the full Jacobian by forward mode (``d`` JVPs per
  point, ``O(d)`` times one evaluation).
* :func:`hutchinson_divergence` is Hutchinson's (1990) unbiased estimator
  ``tr(J) = E[eps^T J eps]`` with ``E[eps eps^T] = I``, one JVP per probe (as FFJORD,
  Grathwohl et al. 2019): Rademacher probes (the least variance among i.i.d. probes, Hutchinson
  1990) or Gaussian ones.

A field here is ``v(x) -> [d]`` of one point ``x [d]`` (close over time and parameters); the
functions take a batch ``x [n, d]`` and ``vmap`` the field over it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from dynajax import _validate

__all__ = ["autodiff_divergence", "hutchinson_divergence"]

Field = Callable[[Float[Array, " d"]], Float[Array, " d"]]
PROBES = ("rademacher", "gaussian")


def _points(x) -> Array:
    x = _validate.points(x, "x")
    return x.astype(jnp.result_type(x.dtype, jnp.float32))


def autodiff_divergence(v: Field, x: Float[ArrayLike, "n d"]) -> Float[Array, " n"]:
    """Exact ``div v(x) = tr(dv/dx)`` per point, from the full Jacobian (``jax.jacfwd``).

    Args:
        v: field of one point, ``[d] -> [d]``.
        x: points ``[n, d]``.

    Returns:
        ``[n]`` divergences.
    """
    x = _points(x)
    return jax.vmap(lambda xi: jnp.trace(jax.jacfwd(v)(xi)))(x)


def hutchinson_divergence(
    v: Field,
    x: Float[ArrayLike, "n d"],
    *,
    key: PRNGKeyArray,
    n_probes: int = 1,
    probe: str = "rademacher",
) -> Float[Array, " n"]:
    """Hutchinson's estimate ``mean_k eps_k^T (dv/dx) eps_k`` of ``div v(x)`` per point.

    Args:
        v: field of one point, ``[d] -> [d]``.
        x: points ``[n, d]``.
        key: PRNG key of the probes (independent probes per point).
        n_probes: probes per point (``>= 1``); the variance falls as ``1 / n_probes``.
        probe: ``"rademacher"`` (entries +-1) or ``"gaussian"`` (standard normal).

    Returns:
        ``[n]`` unbiased estimates.
    """
    x = _points(x)
    n_probes = _validate.integer(n_probes, "n_probes")
    _validate.choice(probe, "probe", PROBES)
    shape = (x.shape[0], n_probes, x.shape[1])
    if probe == "rademacher":
        eps = jax.random.rademacher(key, shape, x.dtype)
    else:
        eps = jax.random.normal(key, shape, x.dtype)

    def one(xi, ei):
        jvp = jax.vmap(lambda e: jax.jvp(v, (xi,), (e,))[1])(ei)
        return jnp.mean(jnp.sum(jvp * ei, axis=-1))

    return jax.vmap(one)(x, eps)
