"""Exact optimal transport between 1-D measures, on the line and on the circle.

Pure ``jnp`` functions, ``jit``- and ``vmap``-able, differentiable with respect to the
locations (and, almost everywhere, the weights). They act on one pair of measures given
by 1-D arrays of locations; leading batch dimensions are handled by ``vmap``
(:mod:`dynajax.transport.sliced` batches over projections this way).

Host kernels on CPU
-------------------
XLA's CPU sort is about ten times slower than numpy's (jax-ml/jax#10434), and its ``atan2``
about twenty times (measured: 1.16 s vs 0.04 s on ``[200, 10^5]`` float32); sorting and circle
angles are the whole cost of sliced distances. On the CPU backend, :func:`sort`,
:func:`argsort` and :func:`circle_angle` therefore call numpy through ``jax.pure_callback``
(``jit``/``vmap``-able; :func:`sort` and :func:`circle_angle` carry their exact JVPs, so
gradients are unchanged). Other backends use the ``jnp`` versions. The environment variable
``DYNAJAX_HOST_KERNELS`` (``auto`` by default, ``0`` never, ``1`` always) overrides the
choice; it is read at trace time.

Conventions
-----------
* Every function returns the transport *cost* ``W_p^p`` (no ``p``-th root), as POT's
  ``ot.wasserstein_1d`` / ``ot.lp.wasserstein_circle`` do.
* Weights are optional (uniform by default) and must be non-negative with a positive sum;
  they are normalised to sum to one. ``p >= 1``.
* Inputs go through :mod:`dynajax._validate` (``ValueError`` naming the argument); the
  private ``_``-prefixed cores behind the public functions take validated inputs (the
  sliced distances validate once and call them per slice).
* The circle is ``S^1 ~ [0, 1)`` with the geodesic distance
  ``d(x, y) = min(|x - y|, 1 - |x - y|)`` (circumference one, POT's convention);
  locations are taken modulo one. Multiply a cost by ``(2 pi)^p`` for radians.
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from dynajax import _validate

__all__ = [
    "argsort",
    "circle_angle",
    "circle_coordinates",
    "host_kernels_enabled",
    "sort",
    "wasserstein1_circle",
    "wasserstein2_unif_circle",
    "wasserstein_1d",
    "wasserstein_circle",
]


HOST_KERNELS_ENV = "DYNAJAX_HOST_KERNELS"


def host_kernels_enabled() -> bool:
    """Whether :func:`sort`, :func:`argsort`, :func:`circle_angle` call numpy (module doc)."""
    mode = os.environ.get(HOST_KERNELS_ENV, "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        raise ValueError(f"{HOST_KERNELS_ENV} must be 'auto', '0' or '1', got {mode!r}")
    if mode == "auto":
        return jax.default_backend() == "cpu"
    return mode == "1"


def _compiled(fn, static: tuple[str, ...] = ()):
    """``fn`` compiled once per shape (and value of the ``static`` keyword arguments).

    Called eagerly, the public functions here would compile each of their small operations
    per shape, and their loops at every call. The :func:`host_kernels_enabled` switch, read
    at trace time, is part of the cache key.
    """

    @functools.partial(jax.jit, static_argnames=("host", *static))
    def run(*args, host, **kwargs):
        del host
        return fn(*args, **kwargs)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return run(*args, host=host_kernels_enabled(), **kwargs)

    return call


def _np_sort(a):
    return np.sort(np.asarray(a), axis=-1)


def _np_argsort(a):
    return np.argsort(np.asarray(a), axis=-1).astype(np.int32)


def argsort(x):
    """Indices sorting ``x [..., n]`` along its last axis (int32; ties in any order)."""
    x = jnp.asarray(x)
    if not host_kernels_enabled():
        return jnp.argsort(x, axis=-1).astype(jnp.int32)
    # integer output: no tangent, and a callback cannot be differentiated through
    return jax.pure_callback(
        _np_argsort, jax.ShapeDtypeStruct(x.shape, jnp.int32), jax.lax.stop_gradient(x),
        vmap_method="expand_dims",
    )


@jax.custom_jvp
def sort(x):
    """``x [..., n]`` sorted along its last axis; differentiable (the JVP permutes the tangent)."""
    x = jnp.asarray(x)
    if not host_kernels_enabled():
        return jnp.sort(x, axis=-1)
    return jax.pure_callback(
        _np_sort, jax.ShapeDtypeStruct(x.shape, x.dtype), x, vmap_method="expand_dims"
    )


@sort.defjvp
def _sort_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    idx = argsort(x)
    return jnp.take_along_axis(x, idx, axis=-1), jnp.take_along_axis(t, idx, axis=-1)


def _weights(w, n, dtype):
    if w is None:
        return jnp.full((n,), 1.0 / n, dtype=dtype)
    w = jnp.asarray(w, dtype=dtype)
    return w / jnp.sum(w)


def _sorted_with_cdf(x, w):
    order = argsort(x)
    xs = x[order]
    ws = w[order]
    cdf = jnp.cumsum(ws)
    return xs, cdf


def _quantile(cdf, xs, q):
    """Generalised inverse ``F^{-1}(q) = inf{x : F(x) >= q}`` of a discrete measure."""
    idx = jnp.searchsorted(cdf, q, side="left")
    return xs[jnp.clip(idx, 0, xs.shape[0] - 1)]


def _check_1d(u, v):
    if u.ndim != 1 or v.ndim != 1:
        raise ValueError(
            f"u and v must be 1-D arrays of locations (vmap for batches), got shapes {u.shape} and {v.shape}"
        )
    for name, w in (("u", u), ("v", v)):
        if w.shape[0] == 0:
            raise ValueError(f"{name} is empty: each measure needs at least one location")


def _check_measures(u, v, u_weights, v_weights):
    """Validated ``u [n]``, ``v [m]`` (common floating dtype, at least float32) and weights."""
    u = _validate.floating(u)
    v = _validate.floating(v)
    _check_1d(u, v)
    u = _validate.finite(u, "u", traced=False)
    v = _validate.finite(v, "v", traced=False)
    dtype = jnp.result_type(u.dtype, v.dtype, jnp.float32)
    u_weights = _validate.weights(u_weights, u.shape[0], "u_weights", dtype, normalised=False)
    v_weights = _validate.weights(v_weights, v.shape[0], "v_weights", dtype, normalised=False)
    return u.astype(dtype), v.astype(dtype), u_weights, v_weights


def wasserstein_1d(u, v, u_weights=None, v_weights=None, p: float = 2.0):
    """``W_p^p`` between two discrete measures on the real line (exact, quantile formula).

    ``W_p^p = int_0^1 |F_u^{-1}(q) - F_v^{-1}(q)|^p dq``, computed exactly by merging the two
    cumulative-weight grids. Uniform weights with equal sizes take a sort-and-subtract fast path.

    Args:
      u: ``[n]`` locations. v: ``[m]`` locations.
      u_weights, v_weights: optional non-negative ``[n]`` / ``[m]`` weights (normalised).
      p: ground-cost exponent, ``p >= 1``.
    Returns:
      scalar ``W_p^p`` (no root).
    """
    u, v, u_weights, v_weights = _check_measures(u, v, u_weights, v_weights)
    p = _validate.exponent(p)
    return _WASSERSTEIN_1D(u, v, u_weights, v_weights, p)


def _wasserstein_1d(u, v, u_weights, v_weights, p):
    dtype = jnp.result_type(u.dtype, v.dtype, jnp.float32)
    u = u.astype(dtype)
    v = v.astype(dtype)
    n, m = u.shape[0], v.shape[0]
    if u_weights is None and v_weights is None and n == m:
        return jnp.mean(jnp.abs(sort(u) - sort(v)) ** p)
    a = _weights(u_weights, n, dtype)
    b = _weights(v_weights, m, dtype)
    us, ucdf = _sorted_with_cdf(u, a)
    vs, vcdf = _sorted_with_cdf(v, b)
    qs = sort(jnp.concatenate([ucdf, vcdf]))
    qs = jnp.clip(qs, 0.0, 1.0)
    grid = jnp.concatenate([jnp.zeros((1,), dtype), qs])
    delta = grid[1:] - grid[:-1]
    mid = 0.5 * (grid[1:] + grid[:-1])
    diff = _quantile(ucdf, us, mid) - _quantile(vcdf, vs, mid)
    return jnp.sum(delta * jnp.abs(diff) ** p)


def _np_circle_angle(c, s):
    c, s = np.asarray(c), np.asarray(s)
    dtype = np.result_type(c.dtype, s.dtype)
    t = np.arctan2(-s, -c).astype(dtype, copy=False)  # in [-pi, pi]
    t *= dtype.type(0.5 / np.pi)
    t += dtype.type(0.5)  # in [0, 1]; 1 only for atan2 = pi exactly
    t[t >= 1] -= 1
    return t


@jax.custom_jvp
def circle_angle(c, s):
    """Coordinate in ``[0, 1)`` of the direction ``(c, s)`` (any radius; POT's convention).

    ``t = ((pi + atan2(-s, -c)) / (2 pi)) mod 1``: the angle from ``(1, 0)`` over ``2 pi``.
    ``c`` and ``s`` have the same shape. The JVP is ``(c ds - s dc) / (2 pi (c^2 + s^2))``,
    and ``0`` at ``c = s = 0``, where the angle is undefined.
    """
    c, s = jnp.asarray(c), jnp.asarray(s)
    if not host_kernels_enabled():
        return ((jnp.pi + jnp.arctan2(-s, -c)) / (2 * jnp.pi)) % 1.0
    dtype = jnp.result_type(c.dtype, s.dtype)
    return jax.pure_callback(
        _np_circle_angle, jax.ShapeDtypeStruct(jnp.broadcast_shapes(c.shape, s.shape), dtype),
        c, s, vmap_method="broadcast_all",
    )


@circle_angle.defjvp
def _circle_angle_jvp(primals, tangents):
    # At the origin (a point orthogonal to a slicing plane) the angle is undefined: its
    # tangent is taken as 0 there (double where: no 0/0 even in the discarded branch).
    (c, s), (dc, ds) = primals, tangents
    r2 = c**2 + s**2
    pos = r2 > 0
    dt = jnp.where(pos, (c * ds - s * dc) / (2 * jnp.pi * jnp.where(pos, r2, 1.0)), 0.0)
    return circle_angle(c, s), dt


def circle_coordinates(z):
    """Map points ``z[..., 2]`` of the unit circle to coordinates in ``[0, 1)`` (POT's convention).

    ``t = (pi + atan2(-z_2, -z_1)) / (2 pi)``: the angle of ``z`` measured from ``(1, 0)``,
    divided by ``2 pi`` (:func:`circle_angle`).
    """
    z = _validate.floating(z)
    if z.ndim < 1 or z.shape[-1] != 2:
        raise ValueError(f"z must have shape [..., 2] (points of the plane); got {z.shape}")
    return circle_angle(z[..., 0], z[..., 1])


def _circle_prep(u, v, u_weights, v_weights):
    u = jnp.asarray(u)
    v = jnp.asarray(v)
    dtype = jnp.result_type(u.dtype, v.dtype, jnp.float32)
    u = u.astype(dtype) % 1.0
    v = v.astype(dtype) % 1.0
    a = _weights(u_weights, u.shape[0], dtype)
    b = _weights(v_weights, v.shape[0], dtype)
    return u, v, a, b, dtype


def _circle_cost_at_shift(theta, us, ucdf, vs, vcdf, p):
    """``int_0^1 |F_u^{-1}(t) - (F_v - theta)^{-1}(t)|^p dt`` with ``F_v`` lifted periodically."""
    dtype = us.dtype
    frac = theta - jnp.floor(theta)
    # (vcdf - frac) mod 1 is a rotation of a sorted array, and merging it with the sorted
    # ucdf needs no sort: each element's rank is its index plus its rank in the other array.
    n_u, n_v = ucdf.shape[0], vcdf.shape[0]
    j = jnp.searchsorted(vcdf, frac, side="left")
    vb = jnp.roll(vcdf - frac + (jnp.arange(n_v) < j).astype(dtype), -j)
    uc = jnp.clip(ucdf, 0, 1)
    pos_u = jnp.arange(n_u) + jnp.searchsorted(vb, uc, side="left")
    pos_v = jnp.arange(n_v) + jnp.searchsorted(uc, vb, side="right")
    merged = jnp.zeros((n_u + n_v,), dtype).at[pos_u].set(uc).at[pos_v].set(vb)
    grid = jnp.concatenate([jnp.zeros((1,), dtype), merged, jnp.ones((1,), dtype)])
    delta = grid[1:] - grid[:-1]
    # Quantile indices on each merged interval without a search: on a non-empty interval
    # (grid_k, grid_{k+1}) the u-atoms below it are the u-levels among merged[:k], so
    # F_u^{-1} takes index #{u-levels in merged[:k]} (empty intervals have zero weight).
    # The same count of vb-levels, offset by j (the levels that wrapped below zero), indexes
    # the shifted v quantile; past n_v it wraps around with a lift of one turn.
    is_u = jnp.zeros((n_u + n_v,), jnp.int32).at[pos_u].set(1)
    cu = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(is_u)])
    cv = jnp.arange(n_u + n_v + 1) - cu
    iu = jnp.minimum(cu, n_u - 1)
    iv = j + cv
    wrap = iv >= n_v
    iv = jnp.where(wrap, iv - n_v, iv)
    iv = jnp.minimum(iv, n_v - 1)
    uq = us[iu]
    vq = vs[iv] + jnp.floor(theta) + wrap.astype(dtype)
    return jnp.sum(delta * jnp.abs(uq - vq) ** p)


def wasserstein_circle(
    u, v, u_weights=None, v_weights=None, p: float = 2.0, n_iter: int = 45
):
    """``W_p^p`` on the circle ``[0, 1)`` (geodesic ground cost), for any ``p >= 1``.

    Delon, Salomon & Sobolevski (2010): ``W_p^p = inf_theta int_0^1 |F_u^{-1}(t) -
    (F_v - theta)^{-1}(t)|^p dt``; the objective is convex in ``theta`` and the optimal shift lies
    in ``[-1, 1]``. We locate it by ``n_iter`` steps of a golden-section search (a fixed-length,
    ``jit``-friendly alternative to POT's ``binary_search_circle``), then evaluate the cost at the
    stop-gradient optimum (envelope theorem: gradients flow to the locations and weights).
    For ``p == 1`` prefer :func:`wasserstein1_circle` (closed form).

    Uniform weights and equal sizes (``n == m``, no weights passed) take an exact path with
    no tolerance: the cost is piecewise linear in ``theta`` with breakpoints on ``Z / n`` (see
    :func:`_circle_uniform_equal`), so the minimum is a cyclic matching of the sorted samples,
    found by a binary search over ``2n + 1`` integer shifts; ``n_iter`` (``>= 1``) is then
    unused.
    """
    u, v, u_weights, v_weights = _check_measures(u, v, u_weights, v_weights)
    p = _validate.exponent(p)
    n_iter = _validate.integer(n_iter, "n_iter")
    return _WASSERSTEIN_CIRCLE(u, v, u_weights, v_weights, p, n_iter=n_iter)


def _wasserstein_circle(u, v, u_weights, v_weights, p, n_iter=45):
    if u_weights is None and v_weights is None and jnp.shape(u) == jnp.shape(v):
        u, v, _, _, _ = _circle_prep(u, v, None, None)
        return _circle_uniform_equal(sort(u), sort(v), p)
    u, v, a, b, dtype = _circle_prep(u, v, u_weights, v_weights)
    us, ucdf = _sorted_with_cdf(u, a)
    vs, vcdf = _sorted_with_cdf(v, b)

    def f(t):
        return _circle_cost_at_shift(
            t,
            jax.lax.stop_gradient(us),
            jax.lax.stop_gradient(ucdf),
            jax.lax.stop_gradient(vs),
            jax.lax.stop_gradient(vcdf),
            p,
        )

    # Golden-section search: one cost evaluation per iteration, the bracket shrinks by
    # 1/phi each time (2 * 0.618^45 < 1e-9 for the default).
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0

    def body(_, state):
        lo, hi, m1, m2, f1, f2 = state
        left = f1 <= f2  # the minimum lies in [lo, m2]: m1 becomes the new upper probe
        lo, hi = jnp.where(left, lo, m1), jnp.where(left, m2, hi)
        new = jnp.where(left, hi - inv_phi * (hi - lo), lo + inv_phi * (hi - lo))
        f_new = f(new)
        m1, m2 = jnp.where(left, new, m2), jnp.where(left, m1, new)
        f1, f2 = jnp.where(left, f_new, f2), jnp.where(left, f1, f_new)
        return lo, hi, m1, m2, f1, f2

    lo, hi = jnp.asarray(-1.0, dtype), jnp.asarray(1.0, dtype)
    m1, m2 = hi - inv_phi * (hi - lo), lo + inv_phi * (hi - lo)
    lo, hi, *_ = jax.lax.fori_loop(0, n_iter, body, (lo, hi, m1, m2, f(m1), f(m2)))
    theta = jax.lax.stop_gradient(0.5 * (lo + hi))
    return _circle_cost_at_shift(theta, us, ucdf, vs, vcdf, p)


def _circle_uniform_equal(us, vs, p):
    """Exact circle ``W_p^p`` between ``n`` sorted uniform atoms ``us`` and ``n`` sorted ``vs``.

    With the lifted quantile ``F_v^{-1}(s + 1) = F_v^{-1}(s) + 1``, the shift cost is
    ``C(theta) = int_0^1 |F_u^{-1}(t) - F_v^{-1}(t + theta)|^p dt``. For ``theta = (k + s) / n``,
    ``0 <= s <= 1``, every interval ``(i/n, (i+1)/n]`` meets the lifted atoms ``y~_{i+k}`` on a
    length ``(1 - s) / n`` and ``y~_{i+k+1}`` on ``s / n``, so ``C`` is linear in ``s``: its minimum
    over ``[-1, 1]`` is at an integer ``k`` in ``[-n, n]``, ``C_k = mean_i |x_i - y~_{i+k}|^p``
    (``y~_j = y_{j mod n} + floor(j / n)``). ``C`` is convex (Delon, Salomon & Sobolevski 2010),
    so ``k*`` is the first ``k`` with ``C_{k+1} - C_k >= 0``: ``ceil(log2(2n + 1))`` bisection steps,
    each a contiguous O(n) slice, then the cost at ``k*`` (gradients through ``us``, ``vs``).
    """
    n = us.shape[0]
    ext = jnp.concatenate([vs - 1.0, vs, vs + 1.0])  # ext[n + j] = y~_j, j in [-n, 2n)
    ext_c = jax.lax.stop_gradient(ext)
    us_c = jax.lax.stop_gradient(us)

    def slope(k):  # C_{k+1} - C_k (times n), for k in [-n, n - 1]
        s = jax.lax.dynamic_slice(ext_c, (n + k,), (n + 1,))
        return jnp.sum(jnp.abs(us_c - s[1:]) ** p - jnp.abs(us_c - s[:-1]) ** p)

    def body(_, lohi):
        lo, hi = lohi
        mid = (lo + hi) // 2
        up = slope(jnp.minimum(mid, n - 1)) >= 0
        active = lo < hi
        return (
            jnp.where(active & ~up, mid + 1, lo),
            jnp.where(active & up, mid, hi),
        )

    n_steps = max(1, math.ceil(math.log2(2 * n + 1)))
    k, _ = jax.lax.fori_loop(0, n_steps, body, (jnp.int32(-n), jnp.int32(n)))
    match = jax.lax.dynamic_slice(ext, (n + k,), (n,))
    return jnp.mean(jnp.abs(us - match) ** p)


def wasserstein1_circle(u, v, u_weights=None, v_weights=None):
    """``W_1`` on the circle ``[0, 1)`` by the level-median closed form.

    ``W_1 = int_0^1 |F_u(t) - F_v(t) - LevMed(F_u - F_v)| dt`` (Hundrieser, Klatt & Munk 2022;
    Rabin, Delon & Gousseau 2011), where ``LevMed`` is the median of ``F_u - F_v`` under the
    uniform measure on ``[0, 1)``. Exact, no iteration.
    """
    u, v, u_weights, v_weights = _check_measures(u, v, u_weights, v_weights)
    return _WASSERSTEIN1_CIRCLE(u, v, u_weights, v_weights)


def _wasserstein1_circle(u, v, u_weights, v_weights):
    u, v, a, b, _ = _circle_prep(u, v, u_weights, v_weights)
    x = jnp.concatenate([u, v])
    w = jnp.concatenate([a, -b])
    order = argsort(x)
    xs = x[order]
    c = jnp.cumsum(w[order])  # value of F_u - F_v on [xs_k, xs_{k+1})
    # interval lengths; the last one wraps around through 0 (where F_u - F_v = 0 = c_N)
    delta = jnp.concatenate([xs[1:] - xs[:-1], (1.0 - xs[-1] + xs[0])[None]])
    c = c.at[-1].set(0.0)
    cs_order = argsort(c)
    cs = c[cs_order]
    cum = jnp.cumsum(delta[cs_order])
    idx = jnp.argmax(cum >= 0.5 * cum[-1])
    med = jax.lax.stop_gradient(cs[idx])
    return jnp.sum(delta * jnp.abs(c - med))


def wasserstein2_unif_circle(u, u_weights=None):
    """``W_2^2`` between a discrete measure on the circle ``[0, 1)`` and the uniform measure.

    Closed form of Bonet et al. (2023, Prop. 3.4, as in POT's
    ``semidiscrete_wasserstein2_unif_circle``), with ``x`` sorted and ``alpha`` their weights:
    ``sum a x^2 - (sum a x)^2 + sum a x (1 - a - 2 sum_{k<i} a_k) + 1/12``.
    """
    u, _, u_weights, _ = _check_measures(u, u, u_weights, None)
    return _WASSERSTEIN2_UNIF_CIRCLE(u, u_weights)


def _wasserstein2_unif_circle(u, u_weights):
    u = jnp.asarray(u)
    dtype = jnp.result_type(u.dtype, jnp.float32)
    u = u.astype(dtype) % 1.0
    a = _weights(u_weights, u.shape[0], dtype)
    order = argsort(u)
    x = u[order]
    a = a[order]
    before = jnp.cumsum(a) - a
    mean = jnp.sum(a * x)
    return (
        jnp.sum(a * x**2)
        - mean**2
        + jnp.sum(a * x * (1.0 - a - 2.0 * before))
        + 1.0 / 12.0
    )


# the public functions' compiled cores (see _compiled)
_WASSERSTEIN_1D = _compiled(_wasserstein_1d)
_WASSERSTEIN_CIRCLE = _compiled(_wasserstein_circle, ("n_iter",))
_WASSERSTEIN1_CIRCLE = _compiled(_wasserstein1_circle)
_WASSERSTEIN2_UNIF_CIRCLE = _compiled(_wasserstein2_unif_circle)
