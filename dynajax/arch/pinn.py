"""Physics-informed losses: PDE residuals of a network, boundary and data terms, Deep Ritz.

A network enters as a pointwise function ``u(x)`` of one point ``x: [d]`` (close over the
parameters: ``u = lambda x: model.apply(params, x)``), returning a scalar or ``[m]``. A PDE
is written as a residual ``residual(u, x) -> r`` that may call the differential operators
here (:func:`gradient`, :func:`laplacian`, :func:`hessian`, :func:`divergence`); the losses
``vmap`` it over collocation points. Example, Poisson ``-Lap u = g``::

    residual = lambda u, x: -laplacian(u, x) - g(x)
    loss = residual_loss(residual, u, points)

The Deep Ritz energy (E & Yu 2018) of ``-Lap u = g`` on ``Omega`` with ``u = q`` on the
boundary is the Monte-Carlo estimate of

.. math:: E(u) = |\\Omega|\\, \\mathbb E_x[\\tfrac12|\\nabla u|^2 - g u]
    + \\beta\\, |\\partial\\Omega|\\, \\mathbb E_s[(u - q)^2],

minimised by the solution (the first term is its variational form; the second a penalty).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from dynajax import _validate

__all__ = [
    "ball_volume",
    "boundary_loss",
    "data_loss",
    "deep_ritz_energy",
    "divergence",
    "gradient",
    "hessian",
    "laplacian",
    "pinn_loss",
    "residual_loss",
    "sample_ball",
    "sample_sphere",
    "sphere_area",
]

PointFn = Callable[[Float[Array, " d"]], Array]


def _scalar(u: PointFn) -> PointFn:
    return lambda x: jnp.reshape(u(x), ())


def gradient(u: PointFn, x: Float[Array, " d"]) -> Float[Array, " d"]:
    """``grad u(x)`` of a scalar-valued ``u``."""
    return jax.grad(_scalar(u))(x)


def hessian(u: PointFn, x: Float[Array, " d"]) -> Float[Array, "d d"]:
    """Hessian of a scalar-valued ``u`` at ``x`` (forward over reverse)."""
    return jax.jacfwd(jax.grad(_scalar(u)))(x)


def laplacian(u: PointFn, x: Float[Array, " d"]) -> Float[Array, ""]:
    """``sum_i d^2 u / dx_i^2`` at ``x``: ``d`` Hessian-vector products (jvp of the gradient)."""
    g = jax.grad(_scalar(u))
    eye = jnp.eye(x.shape[-1], dtype=x.dtype)
    return jnp.sum(jax.vmap(lambda e: jax.jvp(g, (x,), (e,))[1] @ e)(eye))


def divergence(v: PointFn, x: Float[Array, " d"]) -> Float[Array, ""]:
    """``sum_i d v_i / dx_i`` of a vector field ``v: [d] -> [d]``."""
    J = jax.jacfwd(v)(x)
    if J.shape != (x.shape[-1], x.shape[-1]):
        raise ValueError(f"divergence needs v: R^d -> R^d, got a Jacobian of shape {J.shape}")
    return jnp.trace(J)


def _check_points(points, name="points") -> None:
    if jnp.ndim(points) != 2:
        raise ValueError(f"{name} must be [n, d], got shape {jnp.shape(points)}")


def residual_loss(residual: Callable[[PointFn, Array], Array], u: PointFn,
                  points: Float[Array, "n d"]) -> Float[Array, ""]:
    """Mean over collocation points of the squared residual (summed over its components).

    Args:
        residual: ``residual(u, x) -> r`` (scalar or ``[m]``) for one point ``x: [d]``.
        u: the network as a pointwise function.
        points: collocation points ``[n, d]``.
    """
    _check_points(points)
    r = jax.vmap(lambda x: residual(u, x))(points)
    return jnp.mean(jnp.sum(jnp.reshape(r, (points.shape[0], -1)) ** 2, axis=-1))


def data_loss(u: PointFn, points: Float[Array, "n d"], values: Float[Array, "n ..."]) -> Float[Array, ""]:
    """Mean squared error ``mean_i ||u(x_i) - values_i||^2`` (summed over components)."""
    _check_points(points)
    if values.shape[0] != points.shape[0]:
        raise ValueError(f"values ({values.shape[0]}) and points ({points.shape[0]}) disagree in number")
    pred = jax.vmap(u)(points)
    diff = jnp.reshape(pred - jnp.reshape(values, pred.shape), (points.shape[0], -1))
    return jnp.mean(jnp.sum(diff**2, axis=-1))


boundary_loss = data_loss  # ``u = q`` on boundary points is a data term on those points


def pinn_loss(u: PointFn, residual: Callable[[PointFn, Array], Array], interior: Float[Array, "n d"], *,
              boundary: tuple[Array, Array] | None = None, data: tuple[Array, Array] | None = None,
              weights: dict[str, float] | None = None) -> tuple[Array, dict[str, Array]]:
    """``w_r * residual + w_b * boundary + w_d * data`` and the separate terms.

    Args:
        u: the network as a pointwise function.
        residual: the PDE residual ``residual(u, x)``.
        interior: collocation points ``[n, d]``.
        boundary: ``(points [n_b, d], values [n_b, ...])`` or ``None``.
        data: ``(points, values)`` observations or ``None``.
        weights: ``{"residual", "boundary", "data"}`` weights (default 1 each).

    Returns:
        ``(total, {"residual": ..., "boundary": ..., "data": ...})`` (absent terms omitted).
    """
    w = {"residual": 1.0, "boundary": 1.0, "data": 1.0, **(weights or {})}
    unknown = set(w) - {"residual", "boundary", "data"}
    if unknown:
        raise ValueError(f"unknown weight names {sorted(unknown)}; allowed: residual, boundary, data")
    terms = {"residual": residual_loss(residual, u, interior)}
    if boundary is not None:
        terms["boundary"] = boundary_loss(u, *boundary)
    if data is not None:
        terms["data"] = data_loss(u, *data)
    total = sum(w[k] * v for k, v in terms.items())
    return total, terms


def deep_ritz_energy(u: PointFn, g: Callable[[Array], Array], interior: Float[Array, "n d"], *,
                     volume: float, boundary: tuple[Array, Array] | None = None,
                     area: float = 1.0, beta: float = 100.0) -> tuple[Array, dict[str, Array]]:
    """Monte-Carlo Deep Ritz energy of ``-Lap u = g`` (module docstring).

    Args:
        u: the network as a pointwise scalar function.
        g: right-hand side, pointwise.
        interior: points drawn uniformly in the domain ``[n, d]``.
        volume: ``|Omega|`` (scales the interior mean into an integral).
        boundary: ``(points on the boundary drawn uniformly [n_b, d], values q [n_b])``.
        area: ``|boundary|``.
        beta: penalty weight of the boundary term.

    Returns:
        ``(energy, {"ritz": interior integral, "boundary": mean squared boundary misfit})``.
    """
    _check_points(interior, "interior")

    def density(x):
        gu = gradient(u, x)
        return 0.5 * jnp.sum(gu**2) - g(x) * jnp.reshape(u(x), ())

    ritz = volume * jnp.mean(jax.vmap(density)(interior))
    terms = {"ritz": ritz}
    total = ritz
    if boundary is not None:
        terms["boundary"] = boundary_loss(u, *boundary)
        total = total + beta * area * terms["boundary"]
    return total, terms


def ball_volume(d: int) -> float:
    """Volume of the unit ball in ``R^d``."""
    return math.pi ** (d / 2) / math.gamma(d / 2 + 1)


def sphere_area(d: int) -> float:
    """Surface area of the unit sphere ``S^{d-1}`` in ``R^d``."""
    return d * ball_volume(d)


def sample_sphere(n: int, d: int, dtype=jnp.float32, *, key: Array) -> Float[Array, "n d"]:
    """``n`` points uniform on the unit sphere in ``R^d``."""
    n, d = _validate.integer(n, "n"), _validate.integer(d, "d")
    x = jax.random.normal(key, (n, d), dtype)
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def sample_ball(n: int, d: int, dtype=jnp.float32, *, key: Array) -> Float[Array, "n d"]:
    """``n`` points uniform in the unit ball of ``R^d`` (direction times ``U^(1/d)``)."""
    n, d = _validate.integer(n, "n"), _validate.integer(d, "d")
    k1, k2 = jax.random.split(key)
    r = jax.random.uniform(k2, (n, 1), dtype) ** (1.0 / d)
    return sample_sphere(n, d, dtype, key=k1) * r
