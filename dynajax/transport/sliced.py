"""Sliced distances: sliced, max-sliced and spherical sliced Wasserstein, sliced Gromov-Wasserstein.

Pure ``jnp`` functions of one pair of point clouds ``x [n, d]``, ``y [m, d]`` with optional
non-negative weights ``a [n]``, ``b [m]`` (uniform by default, normalised); they ``jit``,
``vmap`` over batches of clouds, and differentiate with respect to the points.

Projections are explicit (``projections=``) or drawn from ``key`` (``n_proj`` of them):

* Euclidean slices: unit directions ``[n_proj, d]`` (rows; POT takes ``[d, n_proj]``).
* Spherical slices: 2-planes ``[n_proj, d, 2]`` with orthonormal columns (Stiefel, as POT).

Root convention (the ``p``-th root is chosen by name):

* ``sliced_wasserstein`` returns ``SW_p^p = E_theta W_p^p(theta#mu, theta#nu)``, the mean of
  the projected costs, with no root (ott-jax's sliced Wasserstein also returns the mean
  cost, unrooted); ``sliced_wasserstein_distance`` returns ``SW_p = (SW_p^p)^(1/p)``, which is
  what POT's ``ot.sliced_wasserstein_distance`` returns. The same pairing holds for
  ``max_sliced_wasserstein[_distance]`` and ``spherical_sliced_wasserstein[_distance]``.
  The unrooted form is smooth at zero and is the one to use as a loss.
* Spherical slices use circle coordinates in ``[0, 1)`` (circumference one, POT's convention),
  so spherical costs are POT's; multiply ``SSW_p^p`` by ``(2 pi)^p`` for radians.

Gradients at degenerate points: the rooted ``*_distance`` forms take the subgradient 0 where
the distance is 0 (coinciding clouds: a minimum), and a point orthogonal to a spherical
slicing plane (whose projection on the circle is undefined) contributes a zero gradient
through that slice (:mod:`dynajax._numerics`).

Inputs go through :mod:`dynajax._validate`: ``ValueError`` naming the argument for
``p < 1``, ``n_proj < 1``, negative or all-zero weights, NaN/inf points or projections,
empty or mismatched clouds, points off the sphere for the spherical distances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dynajax import _validate
from dynajax._numerics import safe_root
from dynajax.transport.one_d import (
    _circle_uniform_equal,
    _compiled,
    _wasserstein1_circle,
    _wasserstein2_unif_circle,
    _wasserstein_1d,
    _wasserstein_circle,
    circle_angle,
    host_kernels_enabled,
    sort,
)

__all__ = [
    "max_sliced_wasserstein",
    "max_sliced_wasserstein_distance",
    "random_directions",
    "random_stiefel",
    "sliced_gromov_wasserstein",
    "sliced_wasserstein",
    "sliced_wasserstein_distance",
    "spherical_sliced_wasserstein",
    "spherical_sliced_wasserstein_distance",
    "spherical_sliced_wasserstein_unif",
]

SPHERE_TOL = 1e-4


# ---------------------------------------------------------------------------------------------
# projections and validation
# ---------------------------------------------------------------------------------------------
def random_directions(n_proj: int, d: int, dtype=jnp.float32, *, key):
    """``n_proj`` directions uniform on ``S^{d-1}``, shape ``[n_proj, d]``."""
    n_proj = _validate.integer(n_proj, "n_proj")
    d = _validate.integer(d, "d")
    z = jax.random.normal(key, (n_proj, d), dtype)
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def random_stiefel(n_proj: int, d: int, dtype=jnp.float32, *, key):
    """``n_proj`` uniform 2-frames of ``R^d`` (Stiefel ``V_{d,2}``), shape ``[n_proj, d, 2]``.

    QR of Gaussian ``d x 2`` matrices with the signs of ``R``'s diagonal fixed, so the law is
    exactly uniform (Haar).
    """
    n_proj = _validate.integer(n_proj, "n_proj")
    d = _validate.integer(d, "d")
    if d < 2:
        raise ValueError(f"spherical slices need d >= 2, got d={d}")
    z = jax.random.normal(key, (n_proj, d, 2), dtype)
    q, r = jnp.linalg.qr(z)
    s = jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))
    s = jnp.where(s == 0, 1.0, s)
    return q * s[:, None, :]


def _check_cloud(x, w, name: str, wname: str, sphere: bool = False):
    x = _validate.points(x, name)
    if sphere:
        x = _validate.unit_norm(x, name, SPHERE_TOL)
    dtype = jnp.result_type(x.dtype, jnp.float32)
    w = _validate.weights(w, x.shape[0], wname, dtype, normalised=False)
    return x.astype(dtype), w


def _check_pair(x, y, a, b, p, sphere=False):
    """Validated clouds (one dtype, at least float32), weights and exponent of a distance."""
    x, a = _check_cloud(x, a, "x", "a", sphere)
    y, b = _check_cloud(y, b, "y", "b", sphere)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"dimension mismatch: x is {x.shape}, y is {y.shape} (the last axis is the dimension d)"
        )
    dtype = jnp.result_type(x.dtype, y.dtype)
    # the spherical distances choose their algorithm by p, so p must be known there
    p = _validate.exponent(p, concrete=sphere)
    return x.astype(dtype), y.astype(dtype), a, b, p


def _check_projections(projections, key, n_proj, shape, dtype):
    """Explicit ``projections`` of the given trailing ``shape``, or ``key``/``n_proj``."""
    where = ", ".join(str(k) for k in shape)
    if projections is None:
        if key is None:
            raise ValueError(
                f"pass either projections=[n_proj, {where}] or key= (with n_proj=)"
            )
        return None
    projections = _validate.floating(projections, dtype).astype(dtype)
    if projections.ndim != 1 + len(shape) or projections.shape[1:] != shape:
        raise ValueError(
            f"projections must have shape [n_proj, {where}], got {projections.shape}"
        )
    if projections.shape[0] == 0:
        raise ValueError("projections is empty: give at least one slice")
    return _validate.finite(projections, "projections", traced=False)


def _directions(projections, key, n_proj, d, dtype):
    th = _check_projections(projections, key, n_proj, (d,), dtype)
    return random_directions(n_proj, d, dtype, key=key) if th is None else th


def _planes(projections, key, n_proj, d, dtype):
    planes = _check_projections(projections, key, n_proj, (d, 2), dtype)
    return random_stiefel(n_proj, d, dtype, key=key) if planes is None else planes


def _projected_costs(xp, yp, a, b, p):
    """``W_p^p`` per projection; ``xp [n_proj, n]``, ``yp [n_proj, m]``."""
    return jax.vmap(lambda u, v: _wasserstein_1d(u, v, a, b, p))(xp, yp)


# ---------------------------------------------------------------------------------------------
# sliced Wasserstein
# ---------------------------------------------------------------------------------------------
def sliced_wasserstein(
    x,
    y,
    a=None,
    b=None,
    *,
    p: float = 2.0,
    projections=None,
    key=None,
    n_proj: int = 50,
):
    """``SW_p^p(mu, nu) = mean_theta W_p^p(<theta, x>, <theta, y>)`` (no root; see module doc).

    Args:
      x: source points ``[n, d]``.
      y: target points ``[m, d]``.
      a: source weights ``[n]`` (uniform if ``None``).
      b: target weights ``[m]`` (uniform if ``None``).
      p: exponent ``>= 1``.
      projections: ``[n_proj, d]`` unit directions, or ``key`` + ``n_proj`` to draw them.

    Returns:
      The scalar ``SW_p^p``, in ``p``-th powers of the units of the points.
    """
    x, y, a, b, p = _check_pair(x, y, a, b, p)
    th = _directions(projections, key, n_proj, x.shape[1], x.dtype)
    return _SW(x, y, a, b, th, p)


def _sw(x, y, a, b, th, p):
    return jnp.mean(_projected_costs(th @ x.T, th @ y.T, a, b, p))


def sliced_wasserstein_distance(
    x,
    y,
    a=None,
    b=None,
    *,
    p: float = 2.0,
    projections=None,
    key=None,
    n_proj: int = 50,
):
    """``SW_p = (SW_p^p)^(1/p)``: the value POT's ``ot.sliced_wasserstein_distance`` returns.

    Its gradient is the subgradient 0 where ``SW_p = 0`` (e.g. coinciding clouds).
    """
    cost = sliced_wasserstein(x, y, a, b, p=p, projections=projections, key=key, n_proj=n_proj)
    return safe_root(cost, p)


def max_sliced_wasserstein(
    x,
    y,
    a=None,
    b=None,
    *,
    p: float = 2.0,
    projections=None,
    key=None,
    n_proj: int = 50,
    n_steps: int = 200,
    step_size: float = 0.1,
):
    """``max-SW_p^p = max_{theta in S^{d-1}} W_p^p(<theta, x>, <theta, y>)`` (no root).

    Starts from the best of the candidate directions (``projections`` or ``n_proj`` random ones
    from ``key``), then ``n_steps`` of projected (Riemannian) gradient ascent on the sphere with
    normalised steps ``step_size / sqrt(k + 1)``, keeping the best direction seen; the result
    is therefore never below the best candidate. With ``n_steps=0`` it is the maximum over the
    candidates (POT's ``ot.max_sliced_wasserstein_distance`` convention, unrooted).
    Gradients w.r.t. the points are taken at the stop-gradient optimal direction (envelope
    theorem).
    """
    x, y, a, b, p = _check_pair(x, y, a, b, p)
    th = _directions(projections, key, n_proj, x.shape[1], x.dtype)
    n_steps = _validate.integer(n_steps, "n_steps", minimum=0)
    step_size = _validate.positive(step_size, "step_size")
    return _MAX_SW(x, y, a, b, th, p, step_size, n_steps=n_steps)


def _max_sw(x, y, a, b, th, p, step_size, n_steps):
    best_t = _best_direction(
        jax.lax.stop_gradient(x), jax.lax.stop_gradient(y), a, b, th, p, step_size, n_steps
    )
    return _wasserstein_1d(x @ best_t, y @ best_t, a, b, p)


def _best_direction(xs, ys, a, b, th, p, step_size, n_steps):
    """The ascent of :func:`max_sliced_wasserstein`: the best direction seen."""

    def cost(t):
        return _wasserstein_1d(xs @ t, ys @ t, a, b, p)

    vals = _projected_costs(th @ xs.T, th @ ys.T, a, b, p)
    i = jnp.argmax(vals)
    t0, v0 = th[i], vals[i]
    vg = jax.value_and_grad(cost)

    def body(k, carry):
        t, best_t, best_v = carry
        v, g = vg(t)
        better = v > best_v
        best_t = jnp.where(better, t, best_t)
        best_v = jnp.where(better, v, best_v)
        g = g - jnp.dot(g, t) * t
        gn = jnp.linalg.norm(g)
        lr = step_size / jnp.sqrt(k + 1.0)
        t = t + lr * g / jnp.where(gn > 0, gn, 1.0)
        return t / jnp.linalg.norm(t), best_t, best_v

    t, best_t, best_v = jax.lax.fori_loop(0, n_steps, body, (t0, t0, v0))
    v_last = cost(t)
    return jax.lax.stop_gradient(jnp.where(v_last > best_v, t, best_t))


def max_sliced_wasserstein_distance(
    x,
    y,
    a=None,
    b=None,
    *,
    p: float = 2.0,
    projections=None,
    key=None,
    n_proj: int = 50,
    n_steps: int = 200,
    step_size: float = 0.1,
):
    """``max-SW_p = (max-SW_p^p)^(1/p)`` (POT's rooted convention); subgradient 0 at 0."""
    cost = max_sliced_wasserstein(
        x,
        y,
        a,
        b,
        p=p,
        projections=projections,
        key=key,
        n_proj=n_proj,
        n_steps=n_steps,
        step_size=step_size,
    )
    return safe_root(cost, p)


# ---------------------------------------------------------------------------------------------
# spherical sliced Wasserstein (Bonet et al., ICLR 2023)
# ---------------------------------------------------------------------------------------------
def _to_circle(x, planes):
    """Project ``x [n, d]`` on the great circles of ``planes [k, d, 2]``: coordinates ``[k, n]``."""
    c = planes[:, :, 0] @ x.T  # [k, n], contiguous per slice
    s = planes[:, :, 1] @ x.T
    # the angle does not depend on |(c, s)|, so no normalisation onto S^1 is needed
    return circle_angle(c, s)


def spherical_sliced_wasserstein(
    x,
    y,
    a=None,
    b=None,
    *,
    p: float = 2.0,
    projections=None,
    key=None,
    n_proj: int = 50,
    n_iter: int = 45,
):
    """``SSW_p^p = mean_U W_p^p(P^U#mu, P^U#nu)`` on ``S^{d-1}`` (no root; circle of length one).

    ``P^U(x) = U^T x / |U^T x|`` for 2-frames ``U`` (``projections [n_proj, d, 2]`` or ``key``).
    ``p == 1`` uses the level-median closed form. Other ``p``: with uniform weights and
    ``n == m`` (no ``a``/``b``), the exact cyclic-matching minimum of
    :func:`dynajax.transport.one_d.wasserstein_circle` (bisection over the ``2n + 1`` integer
    shifts of the sorted samples; ``n_iter`` unused); otherwise its golden-section search over
    the shift (``n_iter`` steps). Points must lie on the unit sphere.
    """
    x, y, a, b, p = _check_pair(x, y, a, b, p, sphere=True)
    n_iter = _validate.integer(n_iter, "n_iter")
    U = _planes(projections, key, n_proj, x.shape[1], x.dtype)
    return _SSW(x, y, a, b, U, p=float(p), n_iter=n_iter)


def _ssw(x, y, a, b, U, p, n_iter):
    """The cost of :func:`spherical_sliced_wasserstein`; ``p`` (static) picks the algorithm."""
    xc, yc = _to_circle(x, U), _to_circle(y, U)
    if p == 1:
        costs = jax.vmap(lambda u, v: _wasserstein1_circle(u, v, a, b))(xc, yc)
    elif a is None and b is None and x.shape[0] == y.shape[0]:
        # exact cyclic-matching path. On CPU one slice at a time, so that its bisection over
        # integer shifts runs in cache (5x faster than vmap at n = 1e5); elsewhere batched.
        xs, ys = sort(xc), sort(yc)
        one = lambda uv: _circle_uniform_equal(uv[0], uv[1], p)
        costs = jax.lax.map(one, (xs, ys)) if host_kernels_enabled() else jax.vmap(one)((xs, ys))
    else:
        costs = jax.vmap(
            lambda u, v: _wasserstein_circle(u, v, a, b, p, n_iter)
        )(xc, yc)
    return jnp.mean(costs)


def spherical_sliced_wasserstein_distance(
    x,
    y,
    a=None,
    b=None,
    *,
    p: float = 2.0,
    projections=None,
    key=None,
    n_proj: int = 50,
    n_iter: int = 45,
):
    """``SSW_p = (SSW_p^p)^(1/p)``: POT's ``ot.sliced_wasserstein_sphere`` value; subgradient
    0 at 0."""
    cost = spherical_sliced_wasserstein(
        x, y, a, b, p=p, projections=projections, key=key, n_proj=n_proj, n_iter=n_iter
    )
    return safe_root(cost, p)


def spherical_sliced_wasserstein_unif(
    x, a=None, *, projections=None, key=None, n_proj: int = 50
):
    """``SSW_2^2(mu, Unif(S^{d-1}))`` in closed form per slice (no root; POT's
    ``ot.sliced_wasserstein_sphere_unif`` returns the square root)."""
    x, a = _check_cloud(x, a, "x", "a", sphere=True)
    U = _planes(projections, key, n_proj, x.shape[1], x.dtype)
    xc = _to_circle(x, U)
    return jnp.mean(jax.vmap(lambda u: _wasserstein2_unif_circle(u, a))(xc))


# ---------------------------------------------------------------------------------------------
# sliced Gromov-Wasserstein (Vayer et al., NeurIPS 2019)
# ---------------------------------------------------------------------------------------------
def _gw_1d_matched(u, v):
    """``(1/n^2) sum_{i,k} ((u_i - u_k)^2 - (v_i - v_k)^2)^2`` in O(n) via centred moments."""
    n = u.shape[0]
    u = u - jnp.mean(u)
    v = v - jnp.mean(v)

    def s(z):
        return jnp.sum(z)

    # sum_{ik} (u_i - u_k)^4 with sum u = 0: 2 n S(u^4) + 6 S(u^2)^2
    uu = 2 * n * s(u**4) + 6 * s(u**2) ** 2
    vv = 2 * n * s(v**4) + 6 * s(v**2) ** 2
    # sum_{ik} (u_i-u_k)^2 (v_i-v_k)^2 with centred u, v
    uv = 2 * n * s(u**2 * v**2) + 2 * s(u**2) * s(v**2) + 4 * s(u * v) ** 2
    return (uu + vv - 2 * uv) / n**2


def sliced_gromov_wasserstein(x, y, *, projections=None, key=None, n_proj: int = 50):
    """Sliced Gromov-Wasserstein ``SGW_2^2`` (Vayer et al. 2019), uniform weights, ``n == m``.

    Both clouds are embedded in ``R^D``, ``D = max(d_x, d_y)``, by zero-padding the
    lower-dimensional one (the paper's ``Delta`` map), projected on common directions
    ``[n_proj, D]``, and per direction the 1-D GW cost with squared ground costs
    ``(1/n^2) sum_{ik} ((u_i - u_k)^2 - (v_{s(i)} - v_{s(k)})^2)^2`` is taken as the smaller of
    the sorted-sorted and sorted-antisorted matchings ``s`` (the paper's closed form). Returns
    the mean over directions (no root). Note: Beinert, Heiss & Steidl (2022) show these two
    matchings are not always optimal for the 1-D quadratic assignment, so each slice is an upper
    bound on the exact 1-D GW; SGW is defined here, as in the paper's code, by this formula.
    """
    x, _ = _check_cloud(x, None, "x", "")
    y, _ = _check_cloud(y, None, "y", "")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"sliced_gromov_wasserstein needs equal sizes (uniform weights), got {x.shape[0]} and {y.shape[0]}"
        )
    dtype = jnp.result_type(x.dtype, y.dtype, jnp.float32)
    D = max(x.shape[1], y.shape[1])
    x = jnp.pad(x.astype(dtype), ((0, 0), (0, D - x.shape[1])))
    y = jnp.pad(y.astype(dtype), ((0, 0), (0, D - y.shape[1])))
    th = _directions(projections, key, n_proj, D, dtype)
    xp = jnp.sort(th @ x.T, axis=-1)
    yp = jnp.sort(th @ y.T, axis=-1)
    c_same = jax.vmap(_gw_1d_matched)(xp, yp)
    c_anti = jax.vmap(_gw_1d_matched)(xp, yp[:, ::-1])
    return jnp.mean(jnp.minimum(c_same, c_anti))


# the public functions' compiled cores (see one_d._compiled)
_SW = _compiled(_sw)
_MAX_SW = _compiled(_max_sw, ("n_steps",))
_SSW = _compiled(_ssw, ("p", "n_iter"))
