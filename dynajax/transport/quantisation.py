"""Quantisation of a measure by ``N`` points: Lloyd iterations with Voronoi or Laguerre cells.

The measure ``mu`` is given by a fine sample ``x [M, d]`` (``M >> N``) with optional weights
``w [M]`` (uniform by default): draws of a sampler, or a density on a box given as a fine grid of
cell centres weighted by the density (:func:`grid_on_box`). The quantiser is ``N`` points
``y [N, d]``:

* :func:`kmeans_lloyd` (free weights): Lloyd's algorithm, i.e. k-means on the sample. Each
  point moves to the mean of its Voronoi cell; the weights are the cells' masses, and the
  energy ``E = mean_i min_j |x_i - y_j|^2`` is the ``W_2^2`` between ``mu`` and the weighted
  quantiser. Empty cells keep their point.
* :func:`laguerre_lloyd` (uniform weights ``1 / N``): the Lloyd iteration of Merigot,
  Santambrogio and Sarrazin (2021, "Non-asymptotic convergence bounds for Wasserstein
  approximation using point clouds", Algorithm 1): the optimal transport plan from ``mu`` to
  the uniform quantiser splits ``mu`` into Laguerre (power) cells of equal mass ``1 / N`` (the
  semi-discrete dual, solved here exactly on the fine sample by POT's network simplex, as
  :func:`dynajax.transport.exact_ot_plan`; no stochastic solver), and each point moves to the
  barycenter of its cell.
  The energy is ``W_2^2(mu, (1/N) sum_j delta_{y_j})``.

Both energies are non-increasing along the iterations (each step first re-solves the
assignment, which cannot raise the cost, then moves each point to the minimiser of its cell's
quadratic cost). :func:`quantisation_error` gives the ``W_2^2`` of any weighted quantiser.
Energies are in squared units of the points; the recorded energy ``k`` is the one of the
points after ``k`` updates, with the assignment re-solved.

Reference value: for the uniform measure on a square, ``N E -> 2 G = 5 / (18 sqrt 3) =
0.16038`` as ``N -> infinity`` (Fejes Toth; ``G`` the normalised second moment of the regular
hexagon, times the area ``1``; a square of side ``L`` multiplies it by ``L^2``).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from dynajax import _validate
from dynajax.transport.ot import _exact_plan, _sqdist

__all__ = [
    "HEXAGON_2G",
    "QuantisationResult",
    "grid_on_box",
    "kmeans_lloyd",
    "laguerre_lloyd",
    "quantisation_error",
]

HEXAGON_2G = 5.0 / (18.0 * math.sqrt(3.0))  # 2 G, G = 5 / (36 sqrt 3) (regular hexagon)


class QuantisationResult(NamedTuple):
    """A quantiser and its energy along the iterations.

    Attributes:
        points: ``[N, d]`` quantiser.
        weights: ``[N]`` masses (the Voronoi cells' for k-means, ``1 / N`` for Laguerre).
        energy: ``[n_iter + 1]`` ``W_2^2`` between the sample and the quantiser, from the
            initial points (entry 0) to the final ones.
    """

    points: Float[Array, "N d"]
    weights: Float[Array, " N"]
    energy: Float[Array, " n_iter_plus_1"]


def grid_on_box(
    density, low: Float[ArrayLike, " d"], high: Float[ArrayLike, " d"], n_per_axis: int
) -> tuple[Float[Array, "M d"], Float[Array, " M"]]:
    """A density on the box ``[low, high]`` as a weighted fine sample: the centres of a regular
    grid of ``n_per_axis^d`` cells and their normalised density values.

    Args:
        density: ``[M, d] -> [M]`` non-negative (unnormalised) density, traceable by jax.
        low, high: ``[d]`` corners of the box.
        n_per_axis: cells per axis.

    Returns:
        ``(points [M, d], weights [M])`` for :func:`kmeans_lloyd` / :func:`laguerre_lloyd`.
    """
    low, high = _validate.floating(low), _validate.floating(high)
    if low.ndim != 1 or low.shape != high.shape or not bool(jnp.all(high > low)):
        raise ValueError(f"low and high must be [d] with high > low, got {low} and {high}")
    n = _validate.integer(n_per_axis, "n_per_axis")
    axes = [lo + (hi - lo) * (jnp.arange(n) + 0.5) / n for lo, hi in zip(low, high)]
    pts = jnp.stack(jnp.meshgrid(*axes, indexing="ij"), -1).reshape(-1, low.shape[0])
    w = _validate.weights(jnp.asarray(density(pts)), pts.shape[0], "density(points)", pts.dtype, normalised=False)
    return pts, w / jnp.sum(w)


def _check(x, y0, n_iter, w):
    x, y0 = _validate.pair(x, y0, names=("sample", "init"), min_dtype=jnp.float32)
    if y0.shape[0] > x.shape[0]:
        raise ValueError(f"more quantisation points ({y0.shape[0]}) than sample points ({x.shape[0]})")
    w = _validate.weights(w, x.shape[0], "sample_weights", x.dtype, normalised=False)
    # None stays None (uniform): the exact solver then builds its own uniform weights
    return x, y0, _validate.integer(n_iter, "n_iter", minimum=0), None if w is None else w / jnp.sum(w)


def _voronoi(x, y, w):
    c = _sqdist(x, y)
    idx = jnp.argmin(c, axis=1)
    dmin = jnp.min(c, axis=1)
    return idx, (jnp.mean(dmin) if w is None else jnp.sum(w * dmin))


def kmeans_lloyd(
    sample: Float[ArrayLike, "M d"],
    init: Float[ArrayLike, "N d"],
    sample_weights: Float[ArrayLike, " M"] | None = None,
    *,
    n_iter: int = 50,
) -> QuantisationResult:
    """Lloyd's algorithm with Voronoi cells (k-means) on a fine sample (module doc).

    Args:
        sample: ``[M, d]`` points of the measure.
        init: ``[N, d]`` initial quantiser.
        sample_weights: ``[M]`` non-negative weights of the sample (uniform if ``None``).
        n_iter: Lloyd iterations.

    Returns:
        A :class:`QuantisationResult` (weights: the Voronoi masses).
    """
    x, y0, n_iter, w = _check(sample, init, n_iter, sample_weights)
    return _kmeans(x, y0, w, n_iter=n_iter)


@functools.partial(jax.jit, static_argnames="n_iter")
def _kmeans(x, y0, w, n_iter):
    n = y0.shape[0]
    w = jnp.full((x.shape[0],), 1.0 / x.shape[0], x.dtype) if w is None else w

    def step(y, _):
        idx, e = _voronoi(x, y, w)
        mass = jax.ops.segment_sum(w, idx, n)
        tot = jax.ops.segment_sum(w[:, None] * x, idx, n)
        y = jnp.where(mass[:, None] > 0, tot / jnp.where(mass > 0, mass, 1.0)[:, None], y)
        return y, e

    y, es = jax.lax.scan(step, y0, None, length=n_iter)
    idx, e = _voronoi(x, y, w)
    return QuantisationResult(points=y, weights=jax.ops.segment_sum(w, idx, n), energy=jnp.append(es, e))


def laguerre_lloyd(
    sample: Float[ArrayLike, "M d"],
    init: Float[ArrayLike, "N d"],
    sample_weights: Float[ArrayLike, " M"] | None = None,
    *,
    n_iter: int = 20,
) -> QuantisationResult:
    """Uniform-weight Lloyd iterations with Laguerre cells (Merigot et al. 2021; module doc).

    Each iteration solves the exact OT from the sample to ``(1/N) sum_j delta_{y_j}`` on the
    host (POT's network simplex: keep ``M`` to a few ten thousand points) and moves every
    ``y_j`` to the barycenter of the sample mass sent to it.

    Args:
        sample: ``[M, d]`` points of the measure.
        init: ``[N, d]`` initial quantiser (distinct points).
        sample_weights: ``[M]`` non-negative weights of the sample (uniform if ``None``).
        n_iter: Lloyd iterations.

    Returns:
        A :class:`QuantisationResult` (weights ``1 / N``).
    """
    x, y0, n_iter, w = _check(sample, init, n_iter, sample_weights)
    return _laguerre(x, y0, w, n_iter=n_iter)


def _ot_step(x, y, w):
    plan = _exact_plan(x, y, w, None)  # [M, N], columns of mass 1 / N
    return y.shape[0] * (plan.T @ x), jnp.sum(plan * _sqdist(x, y))


@functools.partial(jax.jit, static_argnames="n_iter")
def _laguerre(x, y0, w, n_iter):
    y, es = jax.lax.scan(lambda y, _: _ot_step(x, y, w), y0, None, length=n_iter)
    _, e = _ot_step(x, y, w)
    n = y0.shape[0]
    return QuantisationResult(points=y, weights=jnp.full((n,), 1.0 / n, y.dtype), energy=jnp.append(es, e))


def quantisation_error(
    sample: Float[ArrayLike, "M d"],
    points: Float[ArrayLike, "N d"],
    weights: Float[ArrayLike, " N"] | None = None,
    sample_weights: Float[ArrayLike, " M"] | None = None,
) -> Float[Array, ""]:
    """``W_2^2`` between the (weighted) sample and a weighted quantiser.

    With ``weights=None`` the quantiser's weights are free: the optimum is the Voronoi masses
    and the error the k-means distortion ``mean_i min_j |x_i - y_j|^2``. With weights, the exact
    OT cost (host solve, :func:`dynajax.transport.exact_w2`).

    Args:
        sample: ``[M, d]`` points of the measure.
        points: ``[N, d]`` quantiser.
        weights: ``[N]`` masses summing to one, or ``None`` (free weights).
        sample_weights: ``[M]`` non-negative weights of the sample (uniform if ``None``).

    Returns:
        Scalar ``W_2^2`` in squared units of the points.
    """
    x, y, _, a = _check(sample, points, 0, sample_weights)
    if weights is None:
        return _voronoi(x, y, a)[1]
    b = _validate.weights(weights, y.shape[0], "weights", x.dtype)
    return jnp.sum(_exact_plan(x, y, a, b) * _sqdist(x, y))
