"""Optimal-transport costs, plans and distances between point clouds and Gaussians.

Conventions (used by every function here):

* A point cloud is an array ``[n, d]`` (``n`` points in ``R^d``); weights are ``[n]``,
  non-negative and summing to one (``None`` means uniform). Batch with :func:`jax.vmap`.
* The ground cost is the squared Euclidean distance, so every "W2" value returned is the
  *squared* 2-Wasserstein distance ``W2^2`` (units: squared units of the points).
* Entropic OT (:func:`sinkhorn`, :func:`sinkhorn_divergence`) goes through ott-jax; no
  Sinkhorn iteration is written by hand here.
* Exact discrete OT (:func:`exact_ot_plan`, :func:`exact_w2`) solves the transport LP by
  POT's network simplex (``ot.emd``, C++; 10-15x faster than
  ``scipy.optimize.linear_sum_assignment`` on 2-D clouds of 1000-2000 points) **on the
  host** through :func:`jax.pure_callback`. It works under ``jit`` and ``vmap`` (sequentially), but it is
  meant for small clouds (a few thousand points at most); use :func:`sinkhorn` beyond. Its
  gradient treats the optimal plan as constant (envelope theorem), which is the gradient of
  ``W2^2`` wherever the optimal plan is unique.

Input validation raises :class:`ValueError` on empty, wrongly ranked, dimension-mismatched
inputs, on NaN/inf values and on negative or unnormalised weights. Value checks (NaN,
weights) run only on concrete arrays: inside ``jit``/``vmap`` only shapes are checked.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn as _ott_sinkhorn
from ott.tools import sinkhorn_divergence as _ott_sdiv

__all__ = [
    "AffineMap",
    "SinkhornResult",
    "barycentric_projection",
    "energy_distance",
    "exact_ot_plan",
    "exact_w2",
    "gaussian_monge_map",
    "gaussian_w2",
    "mmd2",
    "pairwise_sqdist",
    "sinkhorn",
    "sinkhorn_divergence",
]

_WEIGHT_TOL = 1e-5


# --------------------------------------------------------------------------- validation
def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_finite(x, name: str) -> None:
    if _is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_points(x: ArrayLike, name: str = "x") -> Array:
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a point cloud of shape [n, d]; got rank {x.ndim} shape "
            f"{x.shape} (use jax.vmap for batches)"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    _check_finite(x, name)
    return x


def _check_pair(
    x: ArrayLike, y: ArrayLike, same_n: bool = False
) -> tuple[Array, Array]:
    x = _check_points(x, "x")
    y = _check_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: x is {x.shape}, y is {y.shape}")
    if same_n and x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same number of points: {x.shape} vs {y.shape}"
        )
    dtype = jnp.result_type(x.dtype, y.dtype)
    return x.astype(dtype), y.astype(dtype)


def _check_weights(w: ArrayLike | None, n: int, name: str, dtype) -> Array:
    if w is None:
        return jnp.full((n,), 1.0 / n, dtype=dtype)
    w = jnp.asarray(w, dtype=dtype)
    if w.shape != (n,):
        raise ValueError(f"weights {name} must have shape ({n},); got {w.shape}")
    if _is_concrete(w):
        wn = np.asarray(w, dtype=np.float64)
        if not np.all(np.isfinite(wn)):
            raise ValueError(f"weights {name} contain NaN or infinite values")
        if np.any(wn < 0):
            raise ValueError(f"weights {name} must be non-negative")
        if abs(wn.sum() - 1.0) > _WEIGHT_TOL:
            raise ValueError(
                f"weights {name} must sum to 1; they sum to {wn.sum():.6g}"
            )
    return w


def _check_cov(m: ArrayLike, s: ArrayLike, name: str) -> tuple[Array, Array]:
    m = jnp.asarray(m)
    s = jnp.asarray(s)
    if not jnp.issubdtype(m.dtype, jnp.floating):
        m = m.astype(jnp.result_type(float))
    if m.ndim != 1 or m.shape[0] == 0:
        raise ValueError(f"mean {name} must have shape [d] with d >= 1; got {m.shape}")
    d = m.shape[0]
    if s.shape != (d, d):
        raise ValueError(f"covariance {name} must have shape ({d}, {d}); got {s.shape}")
    _check_finite(m, f"mean {name}")
    _check_finite(s, f"covariance {name}")
    dtype = jnp.result_type(m.dtype, s.dtype)
    return m.astype(dtype), s.astype(dtype)


# --------------------------------------------------------------------------- helpers
def pairwise_sqdist(
    x: Float[ArrayLike, "n d"], y: Float[ArrayLike, "m d"]
) -> Float[Array, "n m"]:
    """Squared Euclidean distances ``C_ij = ||x_i - y_j||^2`` (exact difference form).

    Args:
        x: points ``[n, d]``.
        y: points ``[m, d]``.

    Returns:
        ``[n, m]`` matrix of squared distances (squared units).
    """
    x, y = _check_pair(x, y)
    return _sqdist(x, y)


def _sqdist(x: Array, y: Array) -> Array:
    diff = x[:, None, :] - y[None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def _safe_norm(sq: Array) -> Array:
    """sqrt with a zero (not NaN) gradient at 0."""
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


# --------------------------------------------------------------------------- Sinkhorn
class SinkhornResult(NamedTuple):
    """Entropic OT between two clouds (ott-jax Sinkhorn, squared Euclidean cost).

    Attributes:
        cost: regularised OT cost ``<P, C> - eps H(P)`` as ott reports it
            (``reg_ot_cost``); tends to ``W2^2`` as ``epsilon -> 0``.
        transport_cost: the linear part ``<P, C>`` of the entropic plan.
        plan: the transport plan ``[n, m]`` (rows sum to ``a``, columns to ``b``).
        converged: whether Sinkhorn met its threshold within ``max_iterations``.
        n_iters: number of iterations run.
    """

    cost: Float[Array, ""]
    transport_cost: Float[Array, ""]
    plan: Float[Array, "n m"]
    converged: Bool[Array, ""]
    n_iters: Int[Array, ""]


def sinkhorn(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    *,
    epsilon: float | None = None,
    threshold: float = 1e-3,
    max_iterations: int = 2000,
) -> SinkhornResult:
    """Entropic OT cost and plan through ott-jax's Sinkhorn solver.

    Args:
        x: source points ``[n, d]``.
        y: target points ``[m, d]``.
        a: source weights ``[n]`` (uniform if ``None``).
        b: target weights ``[m]`` (uniform if ``None``).
        epsilon: entropic regularisation, in squared units of the points (ott's default,
            a fraction of the mean cost, if ``None``).
        threshold: marginal-error tolerance for convergence.
        max_iterations: iteration cap.

    Returns:
        A :class:`SinkhornResult`. Differentiable in ``x``, ``y``, ``a``, ``b``
        (implicit differentiation in ott).
    """
    x, y = _check_pair(x, y)
    a = _check_weights(a, x.shape[0], "a", x.dtype)
    b = _check_weights(b, y.shape[0], "b", x.dtype)
    return _sinkhorn_core(x, y, a, b, epsilon, threshold, max_iterations)


@functools.partial(jax.jit, static_argnames=("threshold", "max_iterations"))
def _sinkhorn_core(x, y, a, b, epsilon, threshold, max_iterations) -> SinkhornResult:
    # jitted so that repeated calls (same shapes, any epsilon) reuse one compilation
    geom = pointcloud.PointCloud(x, y, epsilon=epsilon)
    prob = linear_problem.LinearProblem(geom, a=a, b=b)
    out = _ott_sinkhorn.Sinkhorn(threshold=threshold, max_iterations=max_iterations)(
        prob
    )
    plan = out.matrix
    return SinkhornResult(
        cost=out.reg_ot_cost,
        transport_cost=jnp.sum(plan * _sqdist(x, y)),
        plan=plan,
        converged=jnp.asarray(out.converged),
        n_iters=jnp.asarray(out.n_iters),
    )


def sinkhorn_divergence(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    *,
    epsilon: float | None = None,
    threshold: float = 1e-3,
    max_iterations: int = 2000,
) -> Float[Array, ""]:
    """Debiased Sinkhorn divergence ``S_eps(a, b) = OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2``.

    Computed by ``ott.tools.sinkhorn_divergence`` (one epsilon shared by the three terms).
    It is non-negative, zero iff the measures coincide, and interpolates between
    ``W2^2`` (``epsilon -> 0``) and an MMD (``epsilon -> inf``).

    Args:
        x: source points ``[n, d]``.
        y: target points ``[m, d]``.
        a: source weights ``[n]`` (uniform if ``None``).
        b: target weights ``[m]`` (uniform if ``None``).
        epsilon: entropic regularisation (squared units); ott's default if ``None``.
        threshold: Sinkhorn tolerance of each of the three solves.
        max_iterations: iteration cap of each solve.

    Returns:
        Scalar divergence (squared units), differentiable in the inputs.
    """
    x, y = _check_pair(x, y)
    a = _check_weights(a, x.shape[0], "a", x.dtype)
    b = _check_weights(b, y.shape[0], "b", x.dtype)
    return _sinkhorn_divergence_core(x, y, a, b, epsilon, threshold, max_iterations)


@functools.partial(jax.jit, static_argnames=("threshold", "max_iterations"))
def _sinkhorn_divergence_core(x, y, a, b, epsilon, threshold, max_iterations) -> Array:
    div, _ = _ott_sdiv.sinkhorn_divergence(
        pointcloud.PointCloud,
        x,
        y,
        a=a,
        b=b,
        epsilon=epsilon,
        solve_kwargs={"threshold": threshold, "max_iterations": max_iterations},
    )
    return div


# --------------------------------------------------------------------------- exact OT
_EMD_MAX_ITER = 10**8


def _host_plan(cost: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import ot  # POT

    cost = np.ascontiguousarray(cost, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    b = b * (a.sum() / b.sum())  # exact balance for the network simplex
    plan, log = ot.emd(a, b, cost, numItermax=_EMD_MAX_ITER, log=True)
    if log["warning"] is not None:
        raise RuntimeError(f"exact OT (network simplex) failed: {log['warning']}")
    return np.maximum(plan, 0.0)


def _exact_plan(x: Array, y: Array, a: Array | None, b: Array | None) -> Array:
    n, m = x.shape[0], y.shape[0]
    a = _check_weights(a, n, "a", x.dtype)
    b = _check_weights(b, m, "b", x.dtype)
    cost = jax.lax.stop_gradient(_sqdist(x, y))
    a_c, b_c = jax.lax.stop_gradient(a), jax.lax.stop_gradient(b)

    def cb(c, aa, bb):
        return _host_plan(c, aa, bb).astype(x.dtype)

    shape = jax.ShapeDtypeStruct((n, m), x.dtype)
    return jax.pure_callback(cb, shape, cost, a_c, b_c, vmap_method="sequential")


def exact_ot_plan(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
) -> Float[Array, "n m"]:
    """Exact optimal plan for the squared Euclidean cost (host solve, small clouds).

    The transport LP is solved by POT's network simplex (``ot.emd``): equal sizes with
    uniform weights give a permutation plan ``P = perm / n`` (a vertex of the Birkhoff
    polytope). Time grows about as ``n^2`` to ``n^3``: keep clouds to a few thousand points
    and use :func:`sinkhorn` beyond. The solve runs on the host through :func:`jax.pure_callback` (jit-compatible; vmap runs
    it sequentially). The plan carries no gradient.

    Args:
        x: source points ``[n, d]``.
        y: target points ``[m, d]``.
        a: source weights ``[n]`` (uniform if ``None``).
        b: target weights ``[m]`` (uniform if ``None``).

    Returns:
        Plan ``[n, m]``; rows sum to ``a``, columns to ``b``.
    """
    x, y = _check_pair(x, y)
    return _exact_plan(x, y, a, b)


def exact_w2(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
) -> Float[Array, ""]:
    """Exact squared 2-Wasserstein distance ``W2^2`` between two discrete measures.

    ``W2^2 = sum_ij P_ij ||x_i - y_j||^2`` with ``P`` from :func:`exact_ot_plan` (host
    solve; see there for the solver choice and the size limits). Differentiable in ``x``
    and ``y`` with the plan held fixed (envelope theorem: exact where the optimal plan is
    unique); not differentiable in the weights.

    Args:
        x: source points ``[n, d]``.
        y: target points ``[m, d]``.
        a: source weights ``[n]`` (uniform if ``None``).
        b: target weights ``[m]`` (uniform if ``None``).

    Returns:
        Scalar ``W2^2`` (squared units of the points).
    """
    x, y = _check_pair(x, y)
    plan = _exact_plan(x, y, a, b)
    return jnp.sum(plan * _sqdist(x, y))


def barycentric_projection(
    plan: Float[ArrayLike, "n m"], y: Float[ArrayLike, "m d"]
) -> Float[Array, "n d"]:
    """Barycentric projection of a plan: ``T(x_i) = sum_j P_ij y_j / sum_j P_ij``.

    For a deterministic (permutation) plan this is the Monge map on the samples; for an
    entropic plan, a smoothed estimate of it. Rows with zero mass map to ``0``.

    Args:
        plan: transport plan ``[n, m]`` (non-negative).
        y: target points ``[m, d]``.

    Returns:
        Images ``[n, d]`` of the source points.
    """
    plan = jnp.asarray(plan)
    y = _check_points(y, "y")
    if plan.ndim != 2 or plan.shape[1] != y.shape[0] or plan.shape[0] == 0:
        raise ValueError(
            f"plan must have shape [n, {y.shape[0]}] with n >= 1; got {plan.shape}"
        )
    _check_finite(plan, "plan")
    if _is_concrete(plan) and bool(np.any(np.asarray(plan) < 0)):
        raise ValueError("plan must be non-negative")
    mass = jnp.sum(plan, axis=1, keepdims=True)
    safe = jnp.where(mass > 0, mass, 1.0)
    return jnp.where(mass > 0, (plan @ y) / safe, 0.0)


# --------------------------------------------------------------------------- Gaussians
def _sym(s: Array) -> Array:
    return 0.5 * (s + s.T)


def _psd_sqrt(s: Array, inverse: bool = False) -> Array:
    w, v = jnp.linalg.eigh(_sym(s))
    w = jnp.clip(w, 0.0)
    f = 1.0 / jnp.sqrt(w) if inverse else jnp.sqrt(w)
    return (v * f) @ v.T


def gaussian_w2(
    m1: Float[ArrayLike, " d"],
    s1: Float[ArrayLike, "d d"],
    m2: Float[ArrayLike, " d"],
    s2: Float[ArrayLike, "d d"],
) -> Float[Array, ""]:
    """Closed-form ``W2^2`` between ``N(m1, S1)`` and ``N(m2, S2)``.

    ``W2^2 = ||m1 - m2||^2 + tr(S1) + tr(S2) - 2 tr((S2^{1/2} S1 S2^{1/2})^{1/2})``. The
    last trace is computed as ``sum_i sqrt(lambda_i(L^T S1 L))`` with ``S2 = L L^T``
    (Cholesky), which has the same eigenvalues and keeps gradients finite even for
    repeated eigenvalues (e.g. isotropic covariances). In 1-D it reduces to
    ``(m1 - m2)^2 + (s1 - s2)^2`` with standard deviations ``s``.

    Args:
        m1: mean ``[d]`` of the first Gaussian.
        s1: covariance ``[d, d]`` (symmetric positive semi-definite).
        m2: mean ``[d]`` of the second Gaussian.
        s2: covariance ``[d, d]`` (symmetric positive definite).

    Returns:
        Scalar ``W2^2`` (squared units). Differentiable in all arguments.
    """
    m1, s1 = _check_cov(m1, s1, "1")
    m2, s2 = _check_cov(m2, s2, "2")
    if m1.shape != m2.shape:
        raise ValueError(f"dimension mismatch: means {m1.shape} and {m2.shape}")
    s1, s2 = _sym(s1), _sym(s2)
    chol = jnp.linalg.cholesky(s2)
    lam = jnp.linalg.eigvalsh(_sym(chol.T @ s1 @ chol))
    cross = jnp.sum(_safe_norm(jnp.clip(lam, 0.0)))
    mean_term = jnp.sum((m1 - m2) ** 2)
    return mean_term + jnp.trace(s1) + jnp.trace(s2) - 2.0 * cross


class AffineMap(NamedTuple):
    """Affine map ``T(x) = A x + c`` acting on points ``[..., d]`` (a JAX pytree).

    Attributes:
        matrix: ``A``, ``[d, d]``.
        offset: ``c``, ``[d]``.
    """

    matrix: Float[Array, "d d"]
    offset: Float[Array, " d"]

    def __call__(self, x: Float[ArrayLike, "... d"]) -> Float[Array, "... d"]:
        return jnp.asarray(x) @ self.matrix.T + self.offset


def gaussian_monge_map(
    m1: Float[ArrayLike, " d"],
    s1: Float[ArrayLike, "d d"],
    m2: Float[ArrayLike, " d"],
    s2: Float[ArrayLike, "d d"],
) -> AffineMap:
    """Monge (optimal) map from ``N(m1, S1)`` to ``N(m2, S2)`` for the quadratic cost.

    ``T(x) = m2 + A (x - m1)`` with
    ``A = S1^{-1/2} (S1^{1/2} S2 S1^{1/2})^{1/2} S1^{-1/2}``, symmetric positive
    (semi-)definite, so ``T`` is the gradient of the convex function
    ``x -> <x, A x>/2 + <m2 - A m1, x>`` (Brenier). Square roots by symmetric
    eigendecomposition; differentiable where the eigenvalues of ``S1`` and of
    ``S1^{1/2} S2 S1^{1/2}`` are distinct.

    Args:
        m1: source mean ``[d]``.
        s1: source covariance ``[d, d]`` (symmetric positive definite).
        m2: target mean ``[d]``.
        s2: target covariance ``[d, d]`` (symmetric positive semi-definite).

    Returns:
        The :class:`AffineMap` ``(A, m2 - A m1)``; call it on points ``[..., d]``.
    """
    m1, s1 = _check_cov(m1, s1, "1")
    m2, s2 = _check_cov(m2, s2, "2")
    if m1.shape != m2.shape:
        raise ValueError(f"dimension mismatch: means {m1.shape} and {m2.shape}")
    r1 = _psd_sqrt(s1)
    r1_inv = _psd_sqrt(s1, inverse=True)
    mid = _psd_sqrt(r1 @ _sym(s2) @ r1)
    a = _sym(r1_inv @ mid @ r1_inv)
    return AffineMap(matrix=a, offset=m2 - a @ m1)


# --------------------------------------------------------------------------- kernels
def energy_distance(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
) -> Float[Array, ""]:
    """Energy distance ``2 E||X - Y|| - E||X - X'|| - E||Y - Y'||`` (V-statistic).

    This is the *squared* form (units of distance, not squared distance);
    ``scipy.stats.energy_distance`` returns its square root (1-D only). Equal to the MMD of
    the distance kernel ``-||x - y||``; non-negative, zero iff the empirical measures agree.

    Args:
        x: points ``[n, d]``.
        y: points ``[m, d]``.
        a: weights of ``x`` ``[n]`` (uniform if ``None``).
        b: weights of ``y`` ``[m]`` (uniform if ``None``).

    Returns:
        Scalar energy distance; differentiable (zero-distance pairs have zero gradient).
    """
    x, y = _check_pair(x, y)
    a = _check_weights(a, x.shape[0], "a", x.dtype)
    b = _check_weights(b, y.shape[0], "b", x.dtype)
    return _energy_core(x, y, a, b)


@jax.jit
def _energy_core(x, y, a, b):
    dxy = _safe_norm(_sqdist(x, y))
    dxx = _safe_norm(_sqdist(x, x))
    dyy = _safe_norm(_sqdist(y, y))
    return 2.0 * a @ dxy @ b - a @ dxx @ a - b @ dyy @ b


def mmd2(
    x: Float[ArrayLike, "n d"],
    y: Float[ArrayLike, "m d"],
    bandwidths: float | Sequence[float] = 1.0,
    *,
    unbiased: bool = False,
) -> Float[Array, ""]:
    """Squared maximum mean discrepancy with a (multi-bandwidth) Gaussian RBF kernel.

    ``k(u, v) = sum_s exp(-||u - v||^2 / (2 s^2))`` over the bandwidths ``s``.
    Biased (V-statistic): ``mean K_xx + mean K_yy - 2 mean K_xy`` (``>= 0``, zero for
    identical samples). Unbiased (U-statistic, needs ``n, m >= 2``): the within-sample means
    exclude the diagonal; it is mean-zero when both samples come from the same law and can
    be negative.

    Args:
        x: samples ``[n, d]``.
        y: samples ``[m, d]``.
        bandwidths: one or several kernel bandwidths (units of the points), all ``> 0``.
        unbiased: use the unbiased estimator.

    Returns:
        Scalar ``MMD^2`` (dimensionless). Differentiable in ``x`` and ``y``.
    """
    x, y = _check_pair(x, y)
    bw = np.atleast_1d(np.asarray(bandwidths, dtype=np.float64))
    if bw.ndim != 1 or bw.size == 0 or not np.all(np.isfinite(bw)) or np.any(bw <= 0):
        raise ValueError(
            f"bandwidths must be positive finite numbers; got {bandwidths!r}"
        )
    gam = jnp.asarray(1.0 / (2.0 * bw**2), dtype=x.dtype)
    if unbiased and (x.shape[0] < 2 or y.shape[0] < 2):
        raise ValueError("the unbiased MMD needs at least 2 samples on each side")
    return _mmd2_core(x, y, gam, unbiased)


@functools.partial(jax.jit, static_argnames=("unbiased",))
def _mmd2_core(x, y, gam, unbiased):
    def k(u, v):
        d2 = _sqdist(u, v)
        return jnp.sum(jnp.exp(-d2[..., None] * gam), axis=-1)

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = x.shape[0], y.shape[0]
    if unbiased:
        exx = (jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
        eyy = (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
    else:
        exx = jnp.mean(kxx)
        eyy = jnp.mean(kyy)
    return exx + eyy - 2.0 * jnp.mean(kxy)
