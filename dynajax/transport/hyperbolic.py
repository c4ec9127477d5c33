"""Hyperbolic space ``H^d`` (curvature -1) in the Lorentz (hyperboloid) and Poincare-ball models.

Models and conventions:

* **Lorentz**: ``L^d = {x in R^{d+1} : <x, x>_L = -1, x_0 > 0}`` with the Minkowski product
  ``<x, y>_L = -x_0 y_0 + sum_{i >= 1} x_i y_i``; points are arrays ``[..., d + 1]``, the
  origin is ``o = (1, 0, ..., 0)``, tangent vectors at ``x`` satisfy ``<x, v>_L = 0``.
* **Poincare**: the open unit ball ``B^d`` with the metric ``lambda_x^2 |dx|^2``,
  ``lambda_x = 2 / (1 - |x|^2)``; points are arrays ``[..., d]``, the origin is ``0``.
* The isometry ``L^d -> B^d`` is ``x -> x_{1:} / (1 + x_0)`` (:func:`lorentz_to_poincare`),
  its inverse ``z -> (1 + |z|^2, 2 z) / (1 - |z|^2)`` (:func:`poincare_to_lorentz`).
* ``model`` arguments take ``"lorentz"`` or ``"poincare"``; the functions act on the last axis
  and broadcast over leading ones (``jit``/``vmap``-able, differentiable).

Distances use ``d = 2 asinh(|x - y|_L / 2)`` (Lorentz, with ``|x - y|_L^2 = <x-y, x-y>_L``) and
``d = 2 asinh(|x - y| / sqrt((1 - |x|^2)(1 - |y|^2)))`` (Poincare), equal to the textbook
``arccosh`` forms but accurate for nearby points and with the subgradient 0 at ``x = y``
(``arccosh`` has an infinite derivative at 1). Exponential and logarithmic maps use the safe
ratios ``sinh(r)/r``, ``r/sinh(r)``, ``tanh(r)/r``, ``arctanh(r)/r`` (finite at ``r = 0``).

Wrapped normal laws (Nagano et al., ICML 2019, "A wrapped normal distribution on hyperbolic
space", Algorithm 1 and eq. 5): ``v ~ N(0, Sigma)`` in ``T_o = R^d``, moved to ``T_mu`` by
parallel transport and mapped by ``exp_mu``; the density is with respect to the Riemannian
volume (the same in both models, as the isometry preserves it).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from dynajax import _validate
from dynajax._numerics import safe_sqrt
from dynajax.transport.ot import _host_plan_as

__all__ = [
    "MODELS",
    "hyperbolic_pairwise_distance",
    "hyperbolic_wasserstein",
    "lorentz_distance",
    "lorentz_exp",
    "lorentz_log",
    "lorentz_origin",
    "lorentz_to_poincare",
    "lorentz_transport",
    "minkowski_inner",
    "mobius_add",
    "poincare_distance",
    "poincare_exp",
    "poincare_log",
    "poincare_to_lorentz",
    "project_lorentz",
    "riemannian_gradient_step",
    "wrapped_normal_log_density",
    "wrapped_normal_mixture_sample",
    "wrapped_normal_sample",
]

MODELS = ("lorentz", "poincare")
LORENTZ_TOL = 1e-3  # relative tolerance of |<x, x>_L + 1| / x_0^2 for points given to checks
BALL_MARGIN = 1e-5  # Riemannian steps keep Poincare points at |x| <= 1 - BALL_MARGIN (float32)


# ---------------------------------------------------------------------------------------------
# safe scalar ratios (finite values and derivatives at 0)
# ---------------------------------------------------------------------------------------------
def _small(r, dtype):
    return jnp.abs(r) < jnp.sqrt(jnp.finfo(dtype).eps) * 10


def _sinhc(r):
    """``sinh(r) / r`` (1 at 0)."""
    small = _small(r, r.dtype)
    rs = jnp.where(small, 1.0, r)
    return jnp.where(small, 1.0 + r * r / 6.0, jnp.sinh(rs) / rs)


def _tanhc(r):
    """``tanh(r) / r`` (1 at 0)."""
    small = _small(r, r.dtype)
    rs = jnp.where(small, 1.0, r)
    return jnp.where(small, 1.0 - r * r / 3.0, jnp.tanh(rs) / rs)


def _arctanhc(r):
    """``arctanh(r) / r`` (1 at 0), for ``|r| < 1``."""
    small = _small(r, r.dtype)
    rs = jnp.where(small, 0.5, r)
    return jnp.where(small, 1.0 + r * r / 3.0, jnp.arctanh(rs) / rs)


def _sq(x):
    return jnp.sum(x * x, axis=-1)


# ---------------------------------------------------------------------------------------------
# Lorentz model
# ---------------------------------------------------------------------------------------------
def minkowski_inner(x: Float[ArrayLike, "... D"], y: Float[ArrayLike, "... D"]) -> Float[Array, "..."]:
    """``<x, y>_L = -x_0 y_0 + sum_{i >= 1} x_i y_i`` over the last axis (``D = d + 1``)."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    return jnp.sum(x[..., 1:] * y[..., 1:], axis=-1) - x[..., 0] * y[..., 0]


def lorentz_origin(d: int, dtype=jnp.float32) -> Float[Array, " D"]:
    """The origin ``o = (1, 0, ..., 0)`` of ``L^d``, shape ``[d + 1]``."""
    d = _validate.integer(d, "d")
    return jnp.zeros((d + 1,), dtype).at[0].set(1.0)


def project_lorentz(x: Float[ArrayLike, "... D"]) -> Float[Array, "... D"]:
    """Lift onto ``L^d`` by recomputing ``x_0 = sqrt(1 + |x_{1:}|^2)`` (rounding repair)."""
    x = _validate.floating(x)
    return jnp.concatenate([jnp.sqrt(1.0 + _sq(x[..., 1:]))[..., None], x[..., 1:]], axis=-1)


def lorentz_distance(x: Float[ArrayLike, "... D"], y: Float[ArrayLike, "... D"]) -> Float[Array, "..."]:
    """Geodesic distance ``arccosh(-<x, y>_L)`` on ``L^d`` (as ``2 asinh(|x - y|_L / 2)``)."""
    x, y = _validate.floating(x), _validate.floating(y)
    diff = x - y
    return 2.0 * jnp.arcsinh(0.5 * safe_sqrt(minkowski_inner(diff, diff)))


def lorentz_exp(x: Float[ArrayLike, "... D"], v: Float[ArrayLike, "... D"]) -> Float[Array, "... D"]:
    """``exp_x(v) = cosh(|v|_L) x + sinh(|v|_L) v / |v|_L`` for ``v`` tangent at ``x``."""
    x, v = _validate.floating(x), _validate.floating(v)
    r = safe_sqrt(minkowski_inner(v, v))[..., None]
    return jnp.cosh(r) * x + _sinhc(r) * v


def lorentz_log(x: Float[ArrayLike, "... D"], y: Float[ArrayLike, "... D"]) -> Float[Array, "... D"]:
    """``log_x(y) = d / sinh(d) (y + <x, y>_L x)``, the tangent vector at ``x`` pointing to ``y``."""
    x, y = _validate.floating(x), _validate.floating(y)
    d = lorentz_distance(x, y)[..., None]
    w = y + minkowski_inner(x, y)[..., None] * x
    return w / _sinhc(d)


def lorentz_transport(
    x: Float[ArrayLike, "... D"], y: Float[ArrayLike, "... D"], v: Float[ArrayLike, "... D"]
) -> Float[Array, "... D"]:
    """Parallel transport of ``v in T_x`` to ``T_y`` along the geodesic:
    ``v + <y, v>_L / (1 - <x, y>_L) (x + y)``."""
    x, y, v = (_validate.floating(u) for u in (x, y, v))
    coef = minkowski_inner(y, v) / (1.0 - minkowski_inner(x, y))
    return v + coef[..., None] * (x + y)


def lorentz_to_poincare(x: Float[ArrayLike, "... D"]) -> Float[Array, "... d"]:
    """The isometry ``L^d -> B^d``: ``x -> x_{1:} / (1 + x_0)``."""
    x = _validate.floating(x)
    return x[..., 1:] / (1.0 + x[..., :1])


def poincare_to_lorentz(z: Float[ArrayLike, "... d"]) -> Float[Array, "... D"]:
    """The isometry ``B^d -> L^d``: ``z -> (1 + |z|^2, 2 z) / (1 - |z|^2)``."""
    z = _validate.floating(z)
    n2 = _sq(z)[..., None]
    return jnp.concatenate([1.0 + n2, 2.0 * z], axis=-1) / (1.0 - n2)


# ---------------------------------------------------------------------------------------------
# Poincare ball
# ---------------------------------------------------------------------------------------------
def poincare_distance(x: Float[ArrayLike, "... d"], y: Float[ArrayLike, "... d"]) -> Float[Array, "..."]:
    """``arccosh(1 + 2 |x - y|^2 / ((1 - |x|^2)(1 - |y|^2)))`` (as an ``asinh``, module doc)."""
    x, y = _validate.floating(x), _validate.floating(y)
    ratio = _sq(x - y) / ((1.0 - _sq(x)) * (1.0 - _sq(y)))
    return 2.0 * jnp.arcsinh(safe_sqrt(ratio))


def mobius_add(x: Float[ArrayLike, "... d"], y: Float[ArrayLike, "... d"]) -> Float[Array, "... d"]:
    """Mobius addition ``x (+) y`` of the ball (Ungar; Ganea et al., NeurIPS 2018, eq. 2)."""
    x, y = _validate.floating(x), _validate.floating(y)
    xy = jnp.sum(x * y, axis=-1, keepdims=True)
    x2, y2 = _sq(x)[..., None], _sq(y)[..., None]
    return ((1.0 + 2.0 * xy + y2) * x + (1.0 - x2) * y) / (1.0 + 2.0 * xy + x2 * y2)


def poincare_exp(x: Float[ArrayLike, "... d"], v: Float[ArrayLike, "... d"]) -> Float[Array, "... d"]:
    """``exp_x(v) = x (+) tanh(lambda_x |v| / 2) v / |v|`` (Ganea et al. 2018, Lemma 2)."""
    x, v = _validate.floating(x), _validate.floating(v)
    lam = 2.0 / (1.0 - _sq(x))[..., None]
    r = 0.5 * lam * safe_sqrt(_sq(v))[..., None]
    return mobius_add(x, _tanhc(r) * 0.5 * lam * v)


def poincare_log(x: Float[ArrayLike, "... d"], y: Float[ArrayLike, "... d"]) -> Float[Array, "... d"]:
    """``log_x(y) = (2 / lambda_x) arctanh(|w|) w / |w|`` with ``w = (-x) (+) y``."""
    x, y = _validate.floating(x), _validate.floating(y)
    w = mobius_add(-x, y)
    r = safe_sqrt(_sq(w))[..., None]
    return (1.0 - _sq(x))[..., None] * _arctanhc(r) * w


# ---------------------------------------------------------------------------------------------
# validation and the two models side by side
# ---------------------------------------------------------------------------------------------
def _check_points(x, name: str, model: str) -> Array:
    """A cloud ``[n, D]`` on ``L^d`` (``D = d + 1 >= 2``) or ``[n, d]`` in ``B^d`` (concrete check)."""
    x = _validate.points(x, name)
    if model == "lorentz":
        if x.shape[1] < 2:
            raise ValueError(f"{name}: Lorentz points need d + 1 >= 2 coordinates, got shape {x.shape}")
        if _validate.is_concrete(x):
            xn = np.asarray(x, np.float64)
            dev = np.abs(np.sum(xn[:, 1:] ** 2, -1) - xn[:, 0] ** 2 + 1.0) / xn[:, 0] ** 2
            if not (np.all(xn[:, 0] > 0) and float(np.max(dev)) <= LORENTZ_TOL):
                raise ValueError(
                    f"{name}: points are not on the hyperboloid <x, x>_L = -1, x_0 > 0 "
                    f"(max relative deviation {float(np.max(dev)):.3g} > {LORENTZ_TOL}); "
                    "see project_lorentz"
                )
    elif _validate.is_concrete(x):
        r = float(np.max(np.linalg.norm(np.asarray(x, np.float64), axis=-1)))
        if not r < 1.0:
            raise ValueError(f"{name}: Poincare points must lie in the open unit ball, max |x| = {r:.6g}")
    return x


def _model(model) -> str:
    return _validate.choice(model, "model", MODELS)


def hyperbolic_pairwise_distance(
    x: Float[ArrayLike, "n D"], y: Float[ArrayLike, "m D"], *, model: str = "lorentz"
) -> Float[Array, "n m"]:
    """Geodesic distances ``[n, m]`` between two clouds of the same model."""
    model = _model(model)
    x, y = _check_points(x, "x", model), _check_points(y, "y", model)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: x is {x.shape}, y is {y.shape}")
    return _pairwise(x, y, model=model)


@functools.partial(jax.jit, static_argnames="model")
def _pairwise(x, y, model):
    dist = lorentz_distance if model == "lorentz" else poincare_distance
    return dist(x[:, None, :], y[None, :, :])


def hyperbolic_wasserstein(
    x: Float[ArrayLike, "n D"],
    y: Float[ArrayLike, "m D"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    *,
    p: float = 2.0,
    model: str = "lorentz",
) -> Float[Array, ""]:
    """Exact ``W_p^p`` with the geodesic cost ``d(x, y)^p`` (no root), by POT's network simplex.

    The plan is solved on the host (:func:`dynajax.transport.exact_ot_plan`'s solver, small
    clouds: a few thousand points) and held fixed for gradients (envelope theorem).
    """
    model = _model(model)
    p = _validate.exponent(p)
    cost = hyperbolic_pairwise_distance(x, y, model=model) ** p
    n, m = cost.shape
    dtype = cost.dtype
    a = _validate.weights(a, n, "a", dtype)
    b = _validate.weights(b, m, "b", dtype)
    plan = jax.pure_callback(
        _host_plan_as(np.dtype(dtype)), jax.ShapeDtypeStruct((n, m), dtype),
        jax.lax.stop_gradient(cost), a, b, vmap_method="sequential",
    )
    return jnp.sum(plan * cost)


def _to_lorentz(x, model):
    return x if model == "lorentz" else poincare_to_lorentz(x)


def _from_lorentz(x, model):
    return x if model == "lorentz" else lorentz_to_poincare(x)


# ---------------------------------------------------------------------------------------------
# wrapped normal laws
# ---------------------------------------------------------------------------------------------
def _check_wrapped(mu, cov, model):
    model = _model(model)
    mu = _validate.floating(mu)
    if mu.ndim != 1:
        raise ValueError(f"mu must be one point [D], got shape {mu.shape}")
    _check_points(mu[None], "mu", model)
    d = mu.shape[0] - 1 if model == "lorentz" else mu.shape[0]
    cov = _validate.covariance(cov, "cov", d, definite=True).astype(mu.dtype)
    return model, _to_lorentz(mu, model), cov, d


def wrapped_normal_sample(
    mu: Float[ArrayLike, " D"], cov: Float[ArrayLike, "d d"], n: int, *, key, model: str = "lorentz"
) -> Float[Array, "n D"]:
    """``n`` samples of the wrapped normal ``G(mu, Sigma)`` (Nagano et al. 2019, Algorithm 1).

    Args:
        mu: the mean, a point of the model (``[d + 1]`` Lorentz, ``[d]`` Poincare).
        cov: ``[d, d]`` positive-definite covariance of the tangent Gaussian at the origin.
        n: number of samples.
        key: PRNG key.
        model: ``"lorentz"`` or ``"poincare"`` (the coordinates of ``mu`` and of the output).

    Returns:
        Points ``[n, D]`` of the model.
    """
    model, mu_l, cov, d = _check_wrapped(mu, cov, model)
    n = _validate.integer(n, "n")
    return _wn_sample(mu_l, cov, key, n=n, model=model)


@functools.partial(jax.jit, static_argnames=("n", "model"))
def _wn_sample(mu_l, cov, key, n, model):
    d = cov.shape[0]
    v = jax.random.multivariate_normal(key, jnp.zeros((d,), mu_l.dtype), cov, (n,), dtype=mu_l.dtype)
    o = lorentz_origin(d, mu_l.dtype)
    v = jnp.concatenate([jnp.zeros((n, 1), mu_l.dtype), v], axis=-1)
    z = project_lorentz(lorentz_exp(mu_l, lorentz_transport(o, mu_l, v)))
    return _from_lorentz(z, model)


def wrapped_normal_mixture_sample(
    mus: Float[ArrayLike, "K D"], cov: Float[ArrayLike, "d d"], n: int, *, key, model: str = "lorentz"
) -> Float[Array, "n D"]:
    """``n`` samples of the equal-weight mixture of wrapped normals ``G(mu_k, Sigma)``."""
    mus = _validate.floating(mus)
    if mus.ndim != 2:
        raise ValueError(f"mus must have shape [K, D], got {mus.shape}")
    k_comp, k_draw = jax.random.split(key)
    draws = jnp.stack([
        wrapped_normal_sample(m, cov, n, key=jax.random.fold_in(k_draw, i), model=model)
        for i, m in enumerate(mus)
    ])
    comp = jax.random.randint(k_comp, (n,), 0, mus.shape[0])
    return draws[comp, jnp.arange(n)]


def wrapped_normal_log_density(
    x: Float[ArrayLike, "n D"], mu: Float[ArrayLike, " D"], cov: Float[ArrayLike, "d d"], *,
    model: str = "lorentz",
) -> Float[Array, " n"]:
    """Log-density of ``G(mu, Sigma)`` at ``x`` w.r.t. the Riemannian volume (Nagano et al.
    2019, eq. 5): ``log N(v; 0, Sigma) - (d - 1) log(sinh r / r)``, ``r = d(mu, x)``, ``v`` the
    parallel transport of ``log_mu(x)`` back to the origin.
    """
    model, mu_l, cov, d = _check_wrapped(mu, cov, model)
    x = _to_lorentz(_check_points(x, "x", model), model).astype(mu_l.dtype)
    if x.shape[1] != d + 1:
        raise ValueError(f"x has dimension {x.shape[1]}, mu {mu_l.shape[0]} (as Lorentz points)")
    return _wn_logpdf(x, mu_l, cov)


@jax.jit
def _wn_logpdf(x, mu_l, cov):
    d = cov.shape[0]
    u = lorentz_log(mu_l, x)
    v = lorentz_transport(mu_l, lorentz_origin(d, mu_l.dtype), u)[:, 1:]
    r = lorentz_distance(mu_l, x)
    logn = jax.scipy.stats.multivariate_normal.logpdf(v, jnp.zeros((d,), mu_l.dtype), cov)
    return logn - (d - 1) * jnp.log(_sinhc(r))


# ---------------------------------------------------------------------------------------------
# Riemannian gradient step
# ---------------------------------------------------------------------------------------------
def riemannian_gradient_step(
    x: Float[ArrayLike, "... D"], grad: Float[ArrayLike, "... D"], lr, *, model: str = "lorentz"
) -> Float[Array, "... D"]:
    """One Riemannian gradient-descent step ``exp_x(-lr grad_R f(x))`` per point.

    ``grad`` is the Euclidean gradient of ``f`` in the model's coordinates. Lorentz: the
    Riemannian gradient is the tangent projection ``h + <x, h>_L x`` of ``h = J grad``
    (``J = diag(-1, 1, ..., 1)``), and the result is lifted back onto ``L^d``
    (:func:`project_lorentz`). Poincare: ``grad_R = grad / lambda_x^2``, and the result is
    kept at ``|x| <= 1 - BALL_MARGIN``.
    """
    model = _model(model)
    lr = _validate.positive(lr, "lr", strict=False)
    return _riemannian_step(_validate.floating(x), _validate.floating(grad), lr, model=model)


@functools.partial(jax.jit, static_argnames="model")
def _riemannian_step(x, g, lr, model):
    if model == "lorentz":
        h = g.at[..., 0].multiply(-1.0)
        h = h + minkowski_inner(x, h)[..., None] * x
        return project_lorentz(lorentz_exp(x, -lr * h))
    rg = (0.25 * (1.0 - _sq(x)) ** 2)[..., None] * g
    z = poincare_exp(x, -lr * rg)
    nz = jnp.sqrt(_sq(z))[..., None]
    cap = 1.0 - BALL_MARGIN
    return jnp.where(nz > cap, z * cap / jnp.where(nz > cap, nz, 1.0), z)
