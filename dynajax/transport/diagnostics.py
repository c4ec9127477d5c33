"""Diagnostics of maps and residual flows as optimal transport (thesis ch. 4).

A residual network with ``K`` Euler blocks ``x_{k+1} = x_k + r_k`` (``r_k = dt v_k(x_k)``)
is seen as a discrete flow. The functions here take arrays:

* ``states``: the points through the blocks, ``[K + 1, n, d]`` (``states[0]`` is the input
  cloud, ``states[-1]`` its image ``T(x)``), or
* ``residuals``: the block increments ``r_k``, ``[K, n, d]``.

All are pure ``jnp`` (jit/vmap/grad friendly) except :func:`optimality_gap`, which solves an
exact assignment on the host (see :func:`dynajax.transport.ot.exact_ot_plan`) and is meant
for small clouds (up to a few thousand points). Inputs go through :mod:`dynajax._validate`
(``ValueError`` on empty, mismatched or NaN inputs, non-positive ``dt``, ``n_blocks < 1``).
Square roots take the subgradient 0 at 0 (:mod:`dynajax._numerics`), so the distances
have finite gradients where they vanish.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from dynajax import _validate
from dynajax._numerics import safe_sqrt
from dynajax.transport.ot import _exact_plan, _sqdist

__all__ = [
    "OptimalityGap",
    "inverse_error",
    "kinetic_energy",
    "monge_map_distance",
    "optimality_gap",
    "path_straightness",
    "transport_cost",
]


def _check_flow(
    states: ArrayLike | None, residuals: ArrayLike | None
) -> Float[Array, "K n d"]:
    if (states is None) == (residuals is None):
        raise ValueError(
            "pass exactly one of states [K+1, n, d] or residuals [K, n, d]"
        )
    if states is not None:
        s = _validate.floating(states)
        if s.ndim != 3:
            raise ValueError(f"states must have shape [K+1, n, d]; got {s.shape}")
        if s.shape[0] < 2 or s.shape[1] == 0 or s.shape[2] == 0:
            raise ValueError(
                f"states need K+1 >= 2 steps and a non-empty cloud; got {s.shape}"
            )
        s = _validate.finite(s, "states", traced=False)
        return s[1:] - s[:-1]
    r = _validate.floating(residuals)
    if r.ndim != 3:
        raise ValueError(f"residuals must have shape [K, n, d]; got {r.shape}")
    if 0 in r.shape:
        raise ValueError(f"residuals are empty: shape {r.shape}")
    return _validate.finite(r, "residuals", traced=False)


def transport_cost(
    x: Float[ArrayLike, "n d"], tx: Float[ArrayLike, "n d"]
) -> Float[Array, ""]:
    """Static transport cost ``E ||T(x) - x||^2`` (mean over points, sum over dimensions).

    Args:
        x: input points ``[n, d]``.
        tx: their images ``T(x)``, ``[n, d]``.

    Returns:
        Scalar cost (squared units).
    """
    x, tx = _validate.pair(x, tx, same_n=True, names=("x", "tx"))
    return jnp.mean(jnp.sum((tx - x) ** 2, axis=-1))


def kinetic_energy(
    states: Float[ArrayLike, "K1 n d"] | None = None,
    *,
    residuals: Float[ArrayLike, "K n d"] | None = None,
    dt: float | None = None,
) -> Float[Array, ""]:
    """Kinetic energy of a residual flow, ``sum_k dt E||v_k||^2 = sum_k E||r_k||^2 / dt``.

    With velocities ``v_k = r_k / dt`` this is the Riemann sum of the Benamou-Brenier action
    ``int_0^1 E||v_t||^2 dt``; it is ``>= E||T(x) - x||^2 >= W2^2(alpha, T#alpha)`` when
    ``K dt = 1``, with equality for a constant-speed optimal flow.

    Args:
        states: points through the blocks ``[K + 1, n, d]`` (or give ``residuals``).
        residuals: block increments ``r_k = x_{k+1} - x_k``, ``[K, n, d]``.
        dt: time step of a block; ``1 / K`` (unit total time) if ``None``.

    Returns:
        Scalar kinetic energy (squared units per unit time).
    """
    r = _check_flow(states, residuals)
    dt = 1.0 / r.shape[0] if dt is None else _validate.positive(dt, "dt")
    return jnp.sum(jnp.mean(jnp.sum(r**2, axis=-1), axis=-1)) / dt


def path_straightness(
    states: Float[ArrayLike, "K1 n d"] | None = None,
    *,
    residuals: Float[ArrayLike, "K n d"] | None = None,
) -> Float[Array, ""]:
    """Path straightness ``K E[sum_k ||r_k||^2] / E||T(x) - x||^2 >= 1``.

    By Cauchy-Schwarz the ratio is ``>= 1``, with equality iff every particle moves on a
    straight line at constant speed (the shape of Benamou-Brenier geodesics). Ratio of
    means over points (robust to particles that barely move). ``inf``/``NaN`` if no
    particle moves at all.

    Args:
        states: points through the blocks ``[K + 1, n, d]`` (or give ``residuals``).
        residuals: block increments ``[K, n, d]``.

    Returns:
        Scalar ratio (dimensionless).
    """
    r = _check_flow(states, residuals)
    k = r.shape[0]
    path = jnp.mean(jnp.sum(r**2, axis=(0, 2)))
    disp = jnp.mean(jnp.sum(jnp.sum(r, axis=0) ** 2, axis=-1))
    return k * path / disp


def monge_map_distance(
    tx: Float[ArrayLike, "n d"],
    ref_tx: Float[ArrayLike, "n d"],
    *,
    squared: bool = False,
) -> Float[Array, ""]:
    """``L2(alpha)`` distance to a known Monge map: ``sqrt(E ||T(x) - T*(x)||^2)``.

    Args:
        tx: images of the samples by the map under study, ``[n, d]``.
        ref_tx: images of the same samples by the reference (optimal) map, ``[n, d]``
            (closed form for translations/Gaussians, e.g. ``gaussian_monge_map``, or a
            barycentric projection of an exact plan).
        squared: return the mean squared distance instead (squared units).

    Returns:
        Scalar distance (units of the points).
    """
    tx, ref_tx = _validate.pair(tx, ref_tx, same_n=True, names=("tx", "ref_tx"))
    msd = jnp.mean(jnp.sum((tx - ref_tx) ** 2, axis=-1))
    return msd if squared else safe_sqrt(msd)


class OptimalityGap(NamedTuple):
    """Result of :func:`optimality_gap`.

    Attributes:
        ratio: ``E||T(x) - x||^2 / W2^2(alpha, T#alpha)`` (``>= 1``; 1 iff ``T`` is optimal
            on the samples).
        identity_fraction: fraction of points whose optimal partner in ``T#alpha`` is their
            own image.
        transport_cost: ``E||T(x) - x||^2``.
        w2_squared: exact ``W2^2(alpha, T#alpha)`` between the empirical measures.
    """

    ratio: Float[Array, ""]
    identity_fraction: Float[Array, ""]
    transport_cost: Float[Array, ""]
    w2_squared: Float[Array, ""]


def optimality_gap(
    x: Float[ArrayLike, "n d"], tx: Float[ArrayLike, "n d"]
) -> OptimalityGap:
    """OT-optimality gap of a map against its own push-forward (exact assignment, host).

    Solves the exact assignment between ``x`` and ``T(x)`` (uniform weights,
    ``scipy.optimize.linear_sum_assignment`` via :func:`jax.pure_callback`; small clouds
    only). The ratio is differentiable in ``x`` and ``tx`` with the assignment held fixed.
    Caveat: the test has little power when displacements are small compared with the
    spacing between points (then the identity is optimal for any map).

    Args:
        x: input points ``[n, d]``.
        tx: their images ``T(x)``, ``[n, d]``.

    Returns:
        An :class:`OptimalityGap`. If ``T`` is the identity (zero cost) the ratio is
        ``NaN`` (0/0).
    """
    x, tx = _validate.pair(x, tx, same_n=True, names=("x", "tx"))
    n = x.shape[0]
    plan = _exact_plan(x, tx, None, None)
    w2 = jnp.sum(plan * _sqdist(x, tx))
    cost = jnp.mean(jnp.sum((tx - x) ** 2, axis=-1))
    ident = jnp.sum(jnp.diagonal(plan) * n > 0.5) / n
    return OptimalityGap(
        ratio=cost / w2,
        identity_fraction=ident.astype(x.dtype),
        transport_cost=cost,
        w2_squared=w2,
    )


def inverse_error(
    velocity: Callable[[Array, Array], Array],
    x: Float[ArrayLike, "n d"],
    *,
    n_blocks: int,
    dt: float | None = None,
) -> Float[Array, ""]:
    """Error of the reversed flow as an inverse: ``sqrt(E||S(T(x)) - x||^2)``.

    ``T`` is the forward Euler flow ``x_{k+1} = x_k + dt v_k(x_k)`` and ``S`` the reversed
    (backward-in-time explicit Euler) flow ``y_k = y_{k+1} - dt v_k(y_{k+1})``, k = K-1..0.
    The error is ``O(dt)`` for smooth fields and vanishes for block-wise constant fields.

    Args:
        velocity: ``velocity(k, points)`` -> velocities ``[n, d]`` of block ``k`` (``k`` is a
            traced integer scalar; the function is called on the whole cloud).
        x: input points ``[n, d]``.
        n_blocks: number of blocks ``K >= 1``.
        dt: block time step; ``1 / K`` if ``None``.

    Returns:
        Scalar root-mean-square reconstruction error (units of the points).
    """
    x = _validate.points(x, "x")
    n_blocks = _validate.integer(n_blocks, "n_blocks")
    dt = 1.0 / n_blocks if dt is None else _validate.positive(dt, "dt")
    if not callable(velocity):
        raise TypeError(f"velocity must be a function velocity(k, points), got {type(velocity).__name__}")
    ks = jnp.arange(n_blocks)

    def fwd(z, k):
        return z + dt * velocity(k, z), None

    def bwd(z, k):
        return z - dt * velocity(k, z), None

    tx, _ = jax.lax.scan(fwd, x, ks)
    sx, _ = jax.lax.scan(bwd, tx, ks[::-1])
    return safe_sqrt(jnp.mean(jnp.sum((sx - x) ** 2, axis=-1)))
