"""Wasserstein barycenters: free support, fixed support (entropic), Gaussian, sliced.

The barycenter of measures ``nu_1, ..., nu_K`` with weights ``lam`` (non-negative, summing to
one; uniform by default) minimises ``sum_k lam_k W_2^2(mu, nu_k)`` (Agueh and Carlier 2011).

* :func:`free_support_barycenter`: ``N`` free points with uniform weights, the fixed point of
  Cuturi and Doucet (ICML 2014, Algorithm 2 with ``theta = 1``):
  ``X <- sum_k lam_k N P_k Y_k`` with ``P_k`` an optimal plan from ``X`` to ``nu_k``. Exact
  plans (``solver="exact"``: POT's network simplex, the algorithm of POT's
  ``ot.lp.free_support_barycenter``) or entropic ones (``solver="sinkhorn"``: ott-jax's
  ``FreeWassersteinBarycenter``, the same iteration with Sinkhorn plans).
* :func:`fixed_support_barycenter`: histograms on one common support, entropic barycenter by
  ott-jax's ``FixedBarycenter`` (iterative Bregman projections, Benamou et al. 2015; the value
  of POT's ``ot.bregman.barycenter`` with ``method="sinkhorn_log"``).
* :func:`gaussian_barycenter`: ``N(sum lam_k m_k, S)`` with ``S`` the fixed point of
  ``S = sum_k lam_k (S^{1/2} S_k S^{1/2})^{1/2}``, iterated in the form of Alvarez-Esteban, del
  Barrio, Cuesta-Albertos and Matran (2016, Theorem 4.2), which converges from any
  positive-definite start: ``S <- S^{-1/2} (sum_k lam_k (S^{1/2} S_k S^{1/2})^{1/2})^2 S^{-1/2}``.
* :func:`sliced_wasserstein_barycenter`: particles descending ``sum_k lam_k SW_2^2(x, nu_k)``
  (Bonneel, Rabin, Peyre and Pfister 2015) with fresh random directions at every step.

Build vs buy: entropic solvers are ott-jax's; exact plans are POT's (through
:func:`dynajax.transport.exact_ot_plan`); the Gaussian fixed point reuses the symmetric square
root of :mod:`dynajax.transport.ot` (ott's Gaussian tools return NaN for singular inputs).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int
from ott.geometry import pointcloud
from ott.problems.linear import barycenter_problem
from ott.solvers.linear import continuous_barycenter, discrete_barycenter, sinkhorn

from dynajax import _validate
from dynajax.transport.ot import _exact_plan, _sqdist, _sqrtm_psd, _sym
from dynajax.transport.sliced import _sw, random_directions

__all__ = [
    "BarycenterResult",
    "fixed_support_barycenter",
    "free_support_barycenter",
    "gaussian_barycenter",
    "sliced_wasserstein_barycenter",
]

SOLVERS = ("exact", "sinkhorn")


class BarycenterResult(NamedTuple):
    """A free-support barycenter.

    Attributes:
        x: barycenter points ``[N, d]`` (uniform weights ``1 / N``).
        cost: exact plans: ``sum_k lam_k W_2^2(x, nu_k)`` at the returned points; Sinkhorn: ott's
            weighted regularised cost at its last iteration.
        n_iters: iterations run.
    """

    x: Float[Array, "N d"]
    cost: Float[Array, ""]
    n_iters: Int[Array, ""]


def _check_measures(measures, weights, lam):
    if isinstance(measures, (jax.Array, np.ndarray)) and np.ndim(measures) == 3:
        measures = list(measures)
    if not isinstance(measures, Sequence) or len(measures) == 0:
        raise ValueError("measures must be a non-empty sequence of point clouds [m_k, d]")
    ys = [_validate.points(y, f"measures[{k}]") for k, y in enumerate(measures)]
    if len({y.shape[1] for y in ys}) != 1:
        raise ValueError(f"measures must share the dimension d; got shapes {[y.shape for y in ys]}")
    dtype = jnp.result_type(*[y.dtype for y in ys], jnp.float32)
    ys = [y.astype(dtype) for y in ys]
    if weights is None:
        weights = [None] * len(ys)
    if len(weights) != len(ys):
        raise ValueError(f"weights: one entry per measure ({len(ys)}), got {len(weights)}")
    bs = [_validate.weights(b, y.shape[0], f"weights[{k}]", dtype) for k, (b, y) in enumerate(zip(weights, ys))]
    lam = _validate.weights(lam, len(ys), "lam", dtype)
    return ys, bs, lam


def free_support_barycenter(
    measures: Sequence[Float[ArrayLike, "m_k d"]],
    x_init: Float[ArrayLike, "N d"],
    weights: Sequence[Float[ArrayLike, " m_k"] | None] | None = None,
    lam: Float[ArrayLike, " K"] | None = None,
    *,
    solver: str = "exact",
    n_iter: int = 100,
    tol: float = 1e-7,
    epsilon: float | None = None,
) -> BarycenterResult:
    """Free-support ``W_2`` barycenter with ``N`` uniform points (Cuturi and Doucet 2014).

    Args:
        measures: ``K`` point clouds ``[m_k, d]``.
        x_init: initial barycenter points ``[N, d]``.
        weights: per-measure point weights ``[m_k]`` (uniform where ``None``).
        lam: barycentric weights ``[K]`` (uniform if ``None``).
        solver: ``"exact"`` (POT network simplex on the host; stops when the largest squared
            displacement of a point falls below ``tol``; POT's ``stopThr`` bounds their sum) or
            ``"sinkhorn"`` (ott-jax, entropic regularisation ``epsilon`` in squared units; ``n_iter``
            outer steps).
        n_iter: maximum number of fixed-point iterations.
        tol: stopping threshold on the squared displacement (``"exact"``).
        epsilon: entropic regularisation (``"sinkhorn"``; ott's default if ``None``).

    Returns:
        A :class:`BarycenterResult`.
    """
    solver = _validate.choice(solver, "solver", SOLVERS)
    ys, bs, lam = _check_measures(measures, weights, lam)
    x = _validate.points(x_init, "x_init").astype(ys[0].dtype)
    if x.shape[1] != ys[0].shape[1]:
        raise ValueError(f"x_init has dimension {x.shape[1]}, the measures {ys[0].shape[1]}")
    n_iter = _validate.integer(n_iter, "n_iter")
    tol = _validate.positive(tol, "tol", strict=False)
    if solver == "sinkhorn":
        if epsilon is not None:
            epsilon = _validate.positive(epsilon, "epsilon")
        return _ott_free_barycenter(ys, bs, lam, x, n_iter, epsilon)
    return _exact_free(x, ys, bs, lam, tol, n_iter=n_iter)


def _exact_step(x, ys, bs, lam):
    new = jnp.zeros_like(x)
    cost = 0.0
    for y, b, l in zip(ys, bs, lam):
        plan = _exact_plan(x, y, None, b)
        new = new + l * x.shape[0] * (plan @ y)
        cost = cost + l * jnp.sum(plan * _sqdist(x, y))
    return new, cost


@functools.partial(jax.jit, static_argnames="n_iter")
def _exact_free(x, ys, bs, lam, tol, n_iter):
    def cond(state):
        _, it, moved = state
        return (it < n_iter) & (moved >= tol)

    def body(state):
        x, it, _ = state
        new, _ = _exact_step(x, ys, bs, lam)
        return new, it + 1, jnp.max(jnp.sum((new - x) ** 2, axis=-1))

    x, it, _ = jax.lax.while_loop(cond, body, (x, jnp.asarray(0), jnp.asarray(jnp.inf, x.dtype)))
    return BarycenterResult(x=x, cost=_exact_step(x, ys, bs, lam)[1], n_iters=it)


def _ott_free_barycenter(ys, bs, lam, x, n_iter, epsilon):
    m = max(y.shape[0] for y in ys)
    # ott's segmented form: pad every measure to m points with zero weights
    y = jnp.stack([jnp.pad(v, ((0, m - v.shape[0]), (0, 0))) for v in ys])
    b = jnp.stack([jnp.pad(w, (0, m - w.shape[0])) for w in bs])
    return _ott_free(y, b, lam, x, epsilon, n_iter=n_iter)


@functools.partial(jax.jit, static_argnames="n_iter")
def _ott_free(y, b, lam, x, epsilon, n_iter):
    prob = barycenter_problem.FreeBarycenterProblem(y, b, weights=lam, epsilon=epsilon)
    out = continuous_barycenter.FreeWassersteinBarycenter(
        sinkhorn.Sinkhorn(), max_iterations=n_iter, min_iterations=n_iter, threshold=0.0
    )(prob, bar_size=x.shape[0], x_init=x)
    costs = out.costs
    return BarycenterResult(x=out.x, cost=costs[-1], n_iters=jnp.asarray(n_iter))


def fixed_support_barycenter(
    histograms: Float[ArrayLike, "K n"],
    support: Float[ArrayLike, "n d"],
    lam: Float[ArrayLike, " K"] | None = None,
    *,
    epsilon: float,
    threshold: float = 1e-6,
    max_iterations: int = 5000,
) -> Float[Array, " n"]:
    """Entropic barycenter of ``K`` histograms on a common support (ott-jax ``FixedBarycenter``).

    Minimises ``sum_k lam_k OT_eps(p, h_k)`` over histograms ``p`` with the squared Euclidean
    cost on ``support`` (the iterative Bregman projections of Benamou, Carlier, Cuturi, Nenna
    and Peyre 2015; POT's ``ot.bregman.barycenter(A, M, reg=epsilon, method="sinkhorn_log")``).

    Args:
        histograms: ``[K, n]`` non-negative rows summing to one.
        support: the common support points ``[n, d]``.
        lam: barycentric weights ``[K]`` (uniform if ``None``).
        epsilon: entropic regularisation ``> 0`` in squared units of the support.
        threshold: marginal tolerance of the Bregman iterations.
        max_iterations: iteration cap.

    Returns:
        The barycenter histogram ``[n]``.
    """
    support = _validate.points(support, "support")
    dtype = jnp.result_type(support.dtype, jnp.float32)
    h = _validate.floating(histograms, dtype)
    if h.ndim != 2 or h.shape[1] != support.shape[0] or h.shape[0] == 0:
        raise ValueError(f"histograms must have shape [K, {support.shape[0]}], got {h.shape}")
    for k in range(h.shape[0]):
        _validate.weights(h[k], support.shape[0], f"histograms[{k}]", dtype)
    lam = _validate.weights(lam, h.shape[0], "lam", dtype)
    epsilon = _validate.positive(epsilon, "epsilon")
    threshold = _validate.positive(threshold, "threshold", strict=False)
    max_iterations = _validate.integer(max_iterations, "max_iterations")
    return _fixed(h.astype(dtype), support.astype(dtype), lam, epsilon, threshold, max_iterations=max_iterations)


@functools.partial(jax.jit, static_argnames="max_iterations")
def _fixed(h, support, lam, epsilon, threshold, max_iterations):
    geom = pointcloud.PointCloud(support, support, epsilon=epsilon)
    prob = barycenter_problem.FixedBarycenterProblem(geom, h, lam)
    out = discrete_barycenter.FixedBarycenter(
        threshold=threshold, max_iterations=max_iterations, inner_iterations=10
    )(prob)
    return out.histogram


def gaussian_barycenter(
    means: Float[ArrayLike, "K d"],
    covs: Float[ArrayLike, "K d d"],
    lam: Float[ArrayLike, " K"] | None = None,
    *,
    n_iter: int = 100,
) -> tuple[Float[Array, " d"], Float[Array, "d d"]]:
    """The ``W_2`` barycenter ``N(m, S)`` of Gaussians ``N(m_k, S_k)`` (module doc).

    ``m = sum_k lam_k m_k``; ``S`` by ``n_iter`` steps of the Alvarez-Esteban et al. (2016)
    fixed point from ``S_0 = sum_k lam_k S_k`` (positive definite when one ``S_k`` is).

    Args:
        means: ``[K, d]``.
        covs: ``[K, d, d]`` symmetric positive semi-definite, one of them definite.
        lam: barycentric weights ``[K]`` (uniform if ``None``).
        n_iter: fixed-point iterations.

    Returns:
        ``(m [d], S [d, d])``.
    """
    means = _validate.floating(means)
    if means.ndim != 2 or means.shape[0] == 0:
        raise ValueError(f"means must have shape [K, d], got {means.shape}")
    K, d = means.shape
    covs = _validate.floating(covs, means.dtype)
    if covs.shape != (K, d, d):
        raise ValueError(f"covs must have shape ({K}, {d}, {d}), got {covs.shape}")
    for k in range(K):
        _validate.covariance(covs[k], f"covs[{k}]", d)
    dtype = jnp.result_type(means.dtype, covs.dtype, jnp.float32)
    lam = _validate.weights(lam, K, "lam", dtype)
    n_iter = _validate.integer(n_iter, "n_iter", minimum=0)
    return _gauss_bar(means.astype(dtype), covs.astype(dtype), lam, n_iter=n_iter)


@functools.partial(jax.jit, static_argnames="n_iter")
def _gauss_bar(means, covs, lam, n_iter):
    def step(s, _):
        r = _sqrtm_psd(s)
        w, v = jnp.linalg.eigh(r)
        r_inv = (v / jnp.where(w > 0, w, 1.0)) @ v.T
        t = jnp.einsum("k,kij->ij", lam, jax.vmap(lambda c: _sqrtm_psd(_sym(r @ c @ r)))(covs))
        return _sym(r_inv @ t @ t @ r_inv), None

    s0 = jnp.einsum("k,kij->ij", lam, covs)
    s, _ = jax.lax.scan(step, s0, None, length=n_iter)
    return lam @ means, s


def sliced_wasserstein_barycenter(
    measures: Sequence[Float[ArrayLike, "m_k d"]],
    x_init: Float[ArrayLike, "N d"],
    lam: Float[ArrayLike, " K"] | None = None,
    *,
    key,
    n_steps: int = 500,
    lr: float = 1.0,
    n_proj: int = 50,
) -> Float[Array, "N d"]:
    """Sliced-Wasserstein barycenter by particle descent (Bonneel et al. 2015).

    ``x <- x - lr (N d / 2) grad_x sum_k lam_k SW_2^2(x, nu_k)`` with ``n_proj`` fresh directions
    per step (from ``fold_in(key, step)``). The gradient of one slice's ``W_2^2`` at a particle
    is ``(2 / N) (<theta, x_i> - t_i) theta`` (``t_i`` its 1-D match), and ``E[theta theta^T] =
    I / d``, so with ``lr = 1`` the expected step moves each particle to its matches.

    Args:
        measures: ``K`` point clouds ``[m_k, d]`` (uniform weights).
        x_init: initial particles ``[N, d]``.
        lam: barycentric weights ``[K]`` (uniform if ``None``).
        key: PRNG key for the directions.
        n_steps: descent steps.
        lr: step size ``> 0`` (dimensionless, module doc).
        n_proj: directions per step.

    Returns:
        The particles ``[N, d]``.
    """
    ys, _, lam = _check_measures(measures, None, lam)
    x = _validate.points(x_init, "x_init").astype(ys[0].dtype)
    if x.shape[1] != ys[0].shape[1]:
        raise ValueError(f"x_init has dimension {x.shape[1]}, the measures {ys[0].shape[1]}")
    n_steps = _validate.integer(n_steps, "n_steps")
    n_proj = _validate.integer(n_proj, "n_proj")
    lr = _validate.positive(lr, "lr")
    return _sw_bar(x, ys, lam, lr, key, n_steps=n_steps, n_proj=n_proj)


@functools.partial(jax.jit, static_argnames=("n_steps", "n_proj"))
def _sw_bar(x, ys, lam, lr, key, n_steps, n_proj):
    d = x.shape[1]

    def loss(z, th):
        return sum(l * _sw(z, y, None, None, th, 2.0) for y, l in zip(ys, lam))

    def step(z, k):
        th = random_directions(n_proj, d, z.dtype, key=jax.random.fold_in(key, k))
        return z - lr * 0.5 * z.shape[0] * d * jax.grad(loss)(z, th), None

    x, _ = jax.lax.scan(step, x, jnp.arange(n_steps))
    return x
