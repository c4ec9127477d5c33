"""Hyperbolic sliced-Wasserstein: geodesic (GHSW) and horospherical (HHSW) projections.

Bonet, Chapel, Drumetz and Courty (2023), "Hyperbolic sliced-Wasserstein via geodesic and
horospherical projections". A slice is a unit direction ``v in S^{d-1}`` of the tangent space
at the origin, i.e. the geodesic ``gamma_v(t) = cosh(t) o + sinh(t) (0, v)`` of ``L^d``
(``t -> tanh(t / 2) v`` in ``B^d``). Each point is mapped to a signed coordinate ``t`` on
``gamma_v`` and the 1-D ``W_p^p`` of the projected measures is averaged over slices:

* **geodesic** (GHSW, the paper's eq. 9-10 / Prop. 3): ``t = arctanh(<x_{1:}, v> / x_0)``
  (Lorentz) ``= arctanh(2 <x, v> / (1 + |x|^2))`` (Poincare), the coordinate of the
  orthogonal (geodesic) projection of ``x`` on ``gamma_v``;
* **horospherical** (HHSW, eq. 12-13, Busemann functions): ``t = -B^v(x)`` with
  ``B^v(x) = log(x_0 - <x_{1:}, v>)`` (Lorentz) ``= log(|v - x|^2 / (1 - |x|^2))`` (Poincare),
  the coordinate where the horosphere through ``x`` meets ``gamma_v``.

Both coordinates equal ``t`` on ``gamma_v(t)`` itself; the sign of ``B`` (the paper projects on
``B^v``) leaves every 1-D Wasserstein cost unchanged. Both are computed in a cancellation-free
form (``x_0 - s = (1 + |x_{1:}|^2 - s^2) / (x_0 + s)``), finite for far points.

Conventions are those of :mod:`dynajax.transport.sliced`: ``hyperbolic_sliced_wasserstein``
returns ``HSW_p^p`` (mean of the projected costs, no root, smooth, the loss to use);
``hyperbolic_sliced_wasserstein_distance`` its ``p``-th root with subgradient 0 at 0. Weights
``a [n]``, ``b [m]`` (uniform by default), ``p >= 1``, explicit ``projections [n_proj, d]``
(unit rows) or ``key`` + ``n_proj``. Points are ``[n, d + 1]`` on ``L^d`` or ``[n, d]`` in
``B^d`` (``model=``); the values agree between the two models through the isometry.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from dynajax import _validate
from dynajax._numerics import safe_root
from dynajax.transport.hyperbolic import MODELS, _check_points, poincare_to_lorentz, riemannian_gradient_step
from dynajax.transport.one_d import _compiled, _wasserstein_1d
from dynajax.transport.sliced import _directions, _sw, random_directions

__all__ = [
    "DESCENT_LOSSES",
    "PROJECTIONS",
    "hyperbolic_sliced_descent",
    "hyperbolic_projection",
    "hyperbolic_sliced_wasserstein",
    "hyperbolic_sliced_wasserstein_distance",
]

PROJECTIONS = ("geodesic", "horospherical")
DESCENT_LOSSES = ("geodesic", "horospherical", "sw-lorentz", "sw-poincare")


def _coordinates(x, th, kind, model):
    """Signed coordinates ``[k, n]`` of ``x [n, D]`` on the geodesics of ``th [k, d]``.

    One logarithm per coordinate (the cost of the elementwise work rivals the sorts').
    """
    if model == "lorentz":
        x0, xs = x[:, 0], x[:, 1:]
        s = th @ xs.T  # <x_{1:}, v>
        perp1 = 1.0 + jnp.clip(jnp.sum(xs * xs, axis=-1) - s * s, 0.0)  # 1 + |x_{1:} - s v|^2
        big = x0 + jnp.abs(s)  # x0 + |s|; x0 - |s| = perp1 / big
        small = perp1 / big
    else:
        n2 = jnp.sum(x * x, axis=-1)
        s = th @ x.T  # <x, v>
        one_m = 1.0 - n2
        # the Lorentz quantities of the image point: x0 +- |s| with x0 = (1 + |x|^2) / (1 - |x|^2)
        # and s = 2 <x, v> / (1 - |x|^2); x0 - |s| = (1 + |x_perp|_L^2) / (x0 + |s|) as above
        big = (1.0 + n2 + 2.0 * jnp.abs(s)) / one_m
        small = (1.0 + 4.0 * jnp.clip(n2 - s * s, 0.0) / (one_m * one_m)) / big
    pos = s >= 0
    sign = jnp.where(pos, 1.0, -1.0)
    if kind == "geodesic":  # arctanh(.) = sign(s) log(big / small) / 2 (big, small: x0 +- |s|)
        return sign * 0.5 * jnp.log(big / small)
    # -B^v(x) = -log(x0 - s): x0 - s is small (s >= 0) or big (s < 0)
    return -jnp.log(jnp.where(pos, small, big))


def _check(x, y, a, b, p, model, kind):
    model = _validate.choice(model, "model", MODELS)
    kind = _validate.choice(kind, "projection", PROJECTIONS)
    x, y = _check_points(x, "x", model), _check_points(y, "y", model)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: x is {x.shape}, y is {y.shape} (same model, same d)")
    dtype = jnp.result_type(x.dtype, y.dtype, jnp.float32)
    a = _validate.weights(a, x.shape[0], "a", dtype, normalised=False)
    b = _validate.weights(b, y.shape[0], "b", dtype, normalised=False)
    p = _validate.exponent(p)
    return x.astype(dtype), y.astype(dtype), a, b, p, model, kind


def _intrinsic_dim(x, model):
    return x.shape[1] - 1 if model == "lorentz" else x.shape[1]


def hyperbolic_projection(
    x: Float[ArrayLike, "n D"],
    directions: Float[ArrayLike, "k d"],
    *,
    projection: str = "geodesic",
    model: str = "lorentz",
) -> Float[Array, "k n"]:
    """Signed coordinates of the points on the slicing geodesics (module doc).

    Args:
        x: points ``[n, d + 1]`` (Lorentz) or ``[n, d]`` (Poincare).
        directions: unit directions ``[k, d]`` of the tangent space at the origin.
        projection: ``"geodesic"`` (GHSW) or ``"horospherical"`` (HHSW).
        model: ``"lorentz"`` or ``"poincare"``.

    Returns:
        ``[k, n]`` coordinates, in units of hyperbolic length (curvature -1).
    """
    model = _validate.choice(model, "model", MODELS)
    projection = _validate.choice(projection, "projection", PROJECTIONS)
    x = _check_points(x, "x", model)
    x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    th = _directions(directions, None, None, _intrinsic_dim(x, model), x.dtype)
    return _coordinates(x, th, projection, model)


def hyperbolic_sliced_wasserstein(
    x: Float[ArrayLike, "n D"],
    y: Float[ArrayLike, "m D"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    *,
    p: float = 2.0,
    projection: str = "geodesic",
    model: str = "lorentz",
    projections: Float[ArrayLike, "n_proj d"] | None = None,
    key=None,
    n_proj: int = 50,
) -> Float[Array, ""]:
    """``HSW_p^p = mean_v W_p^p(P^v#mu, P^v#nu)`` (no root; GHSW or HHSW, module doc).

    Args:
        x: source points ``[n, D]`` (``D = d + 1`` Lorentz, ``d`` Poincare).
        y: target points ``[m, D]`` of the same model.
        a: source weights ``[n]`` (uniform if ``None``).
        b: target weights ``[m]`` (uniform if ``None``).
        p: exponent ``>= 1``.
        projection: ``"geodesic"`` (GHSW) or ``"horospherical"`` (HHSW).
        model: ``"lorentz"`` or ``"poincare"``.
        projections: ``[n_proj, d]`` unit directions, or ``key`` + ``n_proj`` to draw them.
        key: PRNG key for random directions.
        n_proj: number of random directions.

    Returns:
        The scalar ``HSW_p^p`` in ``p``-th powers of hyperbolic length.
    """
    x, y, a, b, p, model, kind = _check(x, y, a, b, p, model, projection)
    th = _directions(projections, key, n_proj, _intrinsic_dim(x, model), x.dtype)
    return _HSW(x, y, a, b, th, p, kind=kind, model=model)


def _hsw(x, y, a, b, th, p, kind, model):
    xp, yp = _coordinates(x, th, kind, model), _coordinates(y, th, kind, model)
    costs = jax.vmap(lambda u, v: _wasserstein_1d(u, v, a, b, p))(xp, yp)
    return jnp.mean(costs)


def hyperbolic_sliced_wasserstein_distance(
    x: Float[ArrayLike, "n D"],
    y: Float[ArrayLike, "m D"],
    a: Float[ArrayLike, " n"] | None = None,
    b: Float[ArrayLike, " m"] | None = None,
    *,
    p: float = 2.0,
    projection: str = "geodesic",
    model: str = "lorentz",
    projections: Float[ArrayLike, "n_proj d"] | None = None,
    key=None,
    n_proj: int = 50,
) -> Float[Array, ""]:
    """``HSW_p = (HSW_p^p)^(1/p)`` (the rooted form; subgradient 0 where it vanishes)."""
    cost = hyperbolic_sliced_wasserstein(
        x, y, a, b, p=p, projection=projection, model=model, projections=projections, key=key,
        n_proj=n_proj,
    )
    return safe_root(cost, p)


def hyperbolic_sliced_descent(
    x0: Float[ArrayLike, "n d"],
    target_sampler,
    *,
    loss: str,
    n_steps: int,
    n_proj: int,
    lr: float,
    key,
    snapshot_every: int | None = None,
) -> tuple[Float[Array, "n d"], Float[Array, "n_snap n d"]]:
    """Riemannian gradient descent of a sliced loss on the Poincare ball towards a target.

    Bonet et al. (2023, Sec. 5, gradient flows): at step ``j`` a fresh target minibatch
    ``y = target_sampler(k_y)`` and ``n_proj`` fresh directions (keys from ``fold_in(key, j)``)
    give the loss ``L(x, y)``, and each particle moves by
    :func:`~dynajax.transport.hyperbolic.riemannian_gradient_step` with step ``lr * n`` (the
    gradient of a sliced cost w.r.t. one particle is ``O(1 / n)``). ``loss`` is

    * ``"geodesic"`` / ``"horospherical"``: ``GHSW_2^2`` / ``HHSW_2^2``;
    * ``"sw-lorentz"``: the Euclidean ``SW_2^2`` of the Lorentz (ambient ``R^{d+1}``) coordinates;
    * ``"sw-poincare"``: the Euclidean ``SW_2^2`` of the ball coordinates (the paper's SWl, SWp).

    Args:
        x0: initial particles ``[n, d]`` in the ball.
        target_sampler: ``key -> [m, d]`` ball points (jax-traceable).
        loss: one of ``DESCENT_LOSSES``.
        n_steps: steps ``>= 1``.
        n_proj: directions per step.
        lr: step size ``> 0`` (multiplied by ``n``).
        key: PRNG key.
        snapshot_every: record the particles every this many steps (default: only the end).

    Returns:
        ``(x, snapshots)``: final particles ``[n, d]`` and the particles at steps
        ``0, s, 2s, ..., n_steps`` (``[1 + n_steps // s, n, d]``; ``s`` must divide ``n_steps``).
    """
    loss = _validate.choice(loss, "loss", DESCENT_LOSSES)
    x0 = _check_points(x0, "x0", "poincare")
    x0 = x0.astype(jnp.result_type(x0.dtype, jnp.float32))
    n_steps = _validate.integer(n_steps, "n_steps")
    n_proj = _validate.integer(n_proj, "n_proj")
    lr = _validate.positive(lr, "lr")
    every = n_steps if snapshot_every is None else _validate.integer(snapshot_every, "snapshot_every")
    if n_steps % every:
        raise ValueError(f"snapshot_every ({every}) must divide n_steps ({n_steps})")
    if not callable(target_sampler):
        raise TypeError(f"target_sampler must be callable key -> [m, d], got {type(target_sampler).__name__}")
    x, snaps = _descent(x0, target_sampler, key, lr, loss=loss, n_proj=n_proj, n_chunks=n_steps // every, every=every)
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"particles became NaN or infinite within {n_steps} steps (lower lr)")
    return x, jnp.concatenate([x0[None], snaps])


@functools.partial(jax.jit, static_argnames=("target_sampler", "loss", "n_proj", "n_chunks", "every"))
def _descent(x0, target_sampler, key, lr, loss, n_proj, n_chunks, every):
    n, d = x0.shape

    def objective(x, y, th):
        if loss in PROJECTIONS:
            return _hsw(x, y, None, None, th, 2.0, loss, "poincare")
        if loss == "sw-poincare":
            return _sw(x, y, None, None, th, 2.0)
        return _sw(poincare_to_lorentz(x), poincare_to_lorentz(y), None, None, th, 2.0)

    def step(x, j):
        ky, kp = jax.random.split(jax.random.fold_in(key, j))
        th = random_directions(n_proj, d + (loss == "sw-lorentz"), x.dtype, key=kp)
        g = jax.grad(objective)(x, target_sampler(ky), th)
        return riemannian_gradient_step(x, g, lr * n, model="poincare"), None

    def chunk(x, c):
        x, _ = jax.lax.scan(step, x, c * every + jnp.arange(every))
        return x, x

    return jax.lax.scan(chunk, x0, jnp.arange(n_chunks))


_HSW = _compiled(_hsw, ("kind", "model"))
