"""Input checks shared by the public functions of dynajax.

Every check names the argument it refuses and says what it expected: :class:`ValueError`
for a bad value, :class:`TypeError` for a wrong kind of object.

When checks run:

* **Concrete values** (Python numbers, numpy arrays, jax arrays outside ``jit``) are read on
  the host through numpy and refused at once. Under ``jit``, even ``jnp`` operations on a
  closed-over concrete array give tracers, so these checks use numpy, never ``jnp``.
* **Traced values** (inside ``jit``, ``vmap``, ``grad``) are checked by
  :func:`equinox.error_if`, as diffrax does: the same message comes when the program runs,
  as an ``EquinoxRuntimeError`` (``jax.jit`` shows it inside a ``JaxRuntimeError``;
  ``equinox.filter_jit`` shows it alone). Such a check returns the value, and the caller
  must compute with the returned value: ``error_if`` fires only through its output.
* **Data arrays** (point clouds, states) are checked for NaN/inf only when concrete. Under
  ``jit`` they are the hot loop of flows and training, which carry their own divergence
  checks; a NaN there propagates to a NaN result, as in any ``jnp`` function. Scalar
  parameters, weights and covariances are checked when traced too.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

# Weights "summing to one" may be off by this much (float32 rounding of user weights).
WEIGHT_TOL = 1e-5


def is_concrete(x) -> bool:
    """Whether every leaf of ``x`` has a value now (no leaf is a jax tracer)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def traced_check(x, bad, message: str):
    """``x``, tied to a run-time check that raises ``message`` where ``bad`` holds.

    For traced values (:func:`equinox.error_if`); compute with the returned ``x`` (a Python
    number comes back as a jax array: the check needs an array to ride on).
    """
    if not any(isinstance(leaf, (jax.Array, np.ndarray, np.generic)) for leaf in jax.tree_util.tree_leaves(x)):
        x = jnp.asarray(x)
    return eqx.error_if(x, bad, message)


def _is_number(value) -> bool:
    """A real number or an array of them: not a bool, a string or ``None``."""
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, str):
        return False
    if isinstance(value, numbers.Real):
        return True
    try:
        dtype = jnp.result_type(value)
    except (TypeError, ValueError):
        return False
    return bool(jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating))


# --------------------------------------------------------------------------- names
def choice(value, name: str, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else ``ValueError`` listing them."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
    return value


# --------------------------------------------------------------------------- numbers
def integer(value, name: str, *, minimum: int = 1) -> int:
    """A concrete integer ``>= minimum`` (sizes, counts, iteration caps), as a Python int.

    Sizes fix array shapes and loop lengths, so they cannot be traced.
    """
    ok = (
        isinstance(value, (numbers.Integral, np.integer))
        and not isinstance(value, (bool, np.bool_))
    ) or (
        isinstance(value, (np.ndarray, jax.Array))
        and not isinstance(value, jax.core.Tracer)
        and np.ndim(value) == 0
        and np.issubdtype(np.asarray(value).dtype, np.integer)
    )
    if not ok:
        if isinstance(value, jax.core.Tracer):
            raise TypeError(f"{name} must be a concrete Python int (it sets a shape or a loop length), got a traced value")
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def positive(value, name: str, *, strict: bool = True, what: str = ""):
    """A finite number ``> 0`` (``>= 0`` with ``strict=False``), or an array of them.

    Steps, tolerances, regularisations, bandwidths. Returns ``value`` (through
    :func:`equinox.error_if` when traced).
    """
    bound = "positive" if strict else "non-negative"
    message = f"{name} must be {bound} and finite{what}"
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not _is_number(value):
        raise TypeError(f"{message}, got {value!r}")
    if is_concrete(value):
        v = np.asarray(value, dtype=np.float64)
        if v.size == 0:
            raise ValueError(f"{message}, got an empty array")
        ok = np.all(np.isfinite(v)) and (np.all(v > 0) if strict else np.all(v >= 0))
        if not ok:
            shown = v.item() if v.ndim == 0 else v.tolist()
            raise ValueError(f"{message}, got {shown!r}")
        return value
    v = jnp.asarray(value)
    good = jnp.isfinite(v) & ((v > 0) if strict else (v >= 0))
    return traced_check(value, ~jnp.all(good), message)


def exponent(p, name: str = "p", *, concrete: bool = False):
    """A finite ground-cost exponent ``p >= 1`` (``p < 1`` gives no metric).

    ``concrete=True`` also refuses a traced ``p`` (where it selects an algorithm).
    """
    message = f"{name} must be a finite number >= 1 (p < 1 gives no metric)"
    if not _is_number(p) or jnp.ndim(p) != 0:
        raise TypeError(f"{message}, got {p!r}")
    if is_concrete(p):
        v = float(np.asarray(p))
        if not (np.isfinite(v) and v >= 1):
            raise ValueError(f"{message}, got {v!r}")
        return p
    if concrete:
        raise TypeError(f"{name} must be a concrete number here (it selects the algorithm), got a traced value")
    v = jnp.asarray(p)
    return traced_check(p, ~(jnp.isfinite(v) & (v >= 1)), f"{message}")


def strictly_increasing(x, name: str):
    """A finite 1-D array with ``x[i] < x[i + 1]`` (save times, grids)."""
    if is_concrete(x):
        xn = np.asarray(x)
        if not np.all(np.isfinite(xn)):
            raise ValueError(f"{name} contains NaN or inf values")
        if xn.shape[0] > 1 and not np.all(np.diff(xn) > 0):
            raise ValueError(f"{name} must be strictly increasing")
        return x
    x = traced_check(x, ~jnp.all(jnp.isfinite(x)), f"{name} contains NaN or inf values")
    return traced_check(x, jnp.any(jnp.diff(x) <= 0), f"{name} must be strictly increasing")


# --------------------------------------------------------------------------- arrays
def floating(x: ArrayLike, dtype=None) -> Array:
    """``x`` as a jax array of a floating dtype (integers and bools promoted)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float) if dtype is None else dtype)
    return x


def finite(x, name: str, *, traced: bool = True):
    """``x``, refused if it holds NaN or inf (when traced only if ``traced``)."""
    message = f"{name} contains NaN or infinite values"
    if is_concrete(x):
        if not bool(np.all(np.isfinite(np.asarray(x)))):
            raise ValueError(message)
        return x
    if not traced:
        return x
    return traced_check(x, ~jnp.all(jnp.isfinite(x)), message)


def points(x: ArrayLike, name: str = "x") -> Array:
    """A point cloud ``[n, d]`` with ``n, d >= 1``, floating, finite when concrete."""
    if not _is_number(x) and not isinstance(x, (list, tuple)):
        raise TypeError(f"{name} must be an array of points [n, d], got {type(x).__name__}")
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a point cloud of shape [n, d]; got rank {x.ndim} shape "
            f"{x.shape} (use jax.vmap for batches)"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    x = floating(x)
    return finite(x, name, traced=False)


def pair(
    x: ArrayLike,
    y: ArrayLike,
    *,
    same_n: bool = False,
    names: tuple[str, str] = ("x", "y"),
    min_dtype=None,
) -> tuple[Array, Array]:
    """Two point clouds of the same dimension ``d``, cast to a common floating dtype.

    ``same_n`` also asks for the same number of points; ``min_dtype`` (e.g. ``float32``)
    is promoted into the common dtype.
    """
    x = points(x, names[0])
    y = points(y, names[1])
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"dimension mismatch: {names[0]} is {x.shape}, {names[1]} is {y.shape} "
            "(the last axis is the dimension d)"
        )
    if same_n and x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of points: "
            f"{x.shape} vs {y.shape}"
        )
    dtypes = (x.dtype, y.dtype) if min_dtype is None else (x.dtype, y.dtype, min_dtype)
    dtype = jnp.result_type(*dtypes)
    return x.astype(dtype), y.astype(dtype)


def weights(
    w: ArrayLike | None, n: int, name: str, dtype, *, normalised: bool = True
) -> Array | None:
    """Weights ``[n]``: finite, non-negative, and summing to one (``normalised``) or to
    a positive total (``normalised=False``, the caller normalises).

    ``None`` gives uniform weights when ``normalised``, and stays ``None`` otherwise.
    """
    if w is None:
        return jnp.full((n,), 1.0 / n, dtype=dtype) if normalised else None
    if not _is_number(w) and not isinstance(w, (list, tuple)):
        raise TypeError(f"weights {name} must be an array [{n}], got {type(w).__name__}")
    w = jnp.asarray(w)
    if w.shape != (n,):
        raise ValueError(
            f"weights {name} must have shape ({n},), one per point; got weights of shape {w.shape}"
        )
    w = w.astype(dtype)
    if is_concrete(w):
        wn = np.asarray(w, dtype=np.float64)
        if not np.all(np.isfinite(wn)):
            raise ValueError(f"weights {name} contain NaN or infinite values")
        if np.any(wn < 0):
            raise ValueError(f"weights {name} must be non-negative")
        if normalised and abs(wn.sum() - 1.0) > WEIGHT_TOL:
            raise ValueError(f"weights {name} must sum to 1; they sum to {wn.sum():.6g}")
        if not wn.sum() > 0:
            raise ValueError(f"weights {name} sum to zero; give at least one positive weight")
        return w
    w = traced_check(w, ~jnp.all(jnp.isfinite(w)), f"weights {name} contain NaN or infinite values")
    w = traced_check(w, jnp.any(w < 0), f"weights {name} must be non-negative")
    total = jnp.sum(w)
    if normalised:
        return traced_check(w, jnp.abs(total - 1.0) > WEIGHT_TOL, f"weights {name} must sum to 1")
    return traced_check(w, ~(total > 0), f"weights {name} sum to zero; give at least one positive weight")


def unit_norm(x: Array, name: str, tol: float) -> Array:
    """Rows of ``x [n, d]`` on the unit sphere: ``max | |x_i|^2 - 1 | <= tol`` (concrete only)."""
    if is_concrete(x):
        dev = float(np.max(np.abs(np.sum(np.asarray(x, np.float64) ** 2, axis=-1) - 1.0)))
        if not dev <= tol:
            raise ValueError(
                f"{name}: points are not on the unit sphere (max | |x|^2 - 1 | = {dev:.3g} > {tol})"
            )
    return x


def _eps(dtype) -> float:
    return float(jnp.finfo(dtype).eps)


def covariance(s: ArrayLike, name: str, d: int, *, definite: bool = False) -> Array:
    """A symmetric positive semi-definite (``definite``: positive definite) ``[d, d]`` matrix.

    Tolerances are those of rounding: asymmetry up to ``100 eps max|S|`` and negative
    eigenvalues down to ``-100 d eps max|lambda|`` are accepted as zero (``eps`` of the
    dtype); ``definite`` asks ``lambda_min > d eps lambda_max``, where a Cholesky factor is
    accurate. Returns ``S`` (floating, checked through :func:`equinox.error_if` when traced).
    """
    s = floating(s)
    if s.shape != (d, d):
        raise ValueError(f"covariance {name} must have shape ({d}, {d}); got {s.shape}")
    kind = "positive definite" if definite else "positive semi-definite"
    eps = _eps(s.dtype)
    if is_concrete(s):
        sn = np.asarray(s, dtype=np.float64)
        if not np.all(np.isfinite(sn)):
            raise ValueError(f"covariance {name} contains NaN or infinite values")
        scale = float(np.max(np.abs(sn)))
        asym = float(np.max(np.abs(sn - sn.T)))
        if asym > 100 * eps * scale:
            raise ValueError(
                f"covariance {name} must be symmetric; max |S - S^T| = {asym:.3g}"
            )
        lam = np.linalg.eigvalsh(0.5 * (sn + sn.T))
        top = max(float(np.max(np.abs(lam))), np.finfo(np.float64).tiny)
        if lam[0] < -100 * d * eps * top:
            raise ValueError(
                f"covariance {name} must be {kind}; its smallest eigenvalue is {lam[0]:.3g}"
            )
        if definite and not lam[0] > d * eps * top:
            raise ValueError(
                f"covariance {name} must be {kind} (it is singular: eigenvalues "
                f"{lam[0]:.3g} to {lam[-1]:.3g})"
            )
        return s
    s = traced_check(s, ~jnp.all(jnp.isfinite(s)), f"covariance {name} contains NaN or infinite values")
    scale = jnp.max(jnp.abs(s))
    s = traced_check(s, jnp.max(jnp.abs(s - s.T)) > 100 * eps * scale, f"covariance {name} must be symmetric")
    lam = jnp.linalg.eigvalsh(jax.lax.stop_gradient(0.5 * (s + s.T)))
    top = jnp.maximum(jnp.max(jnp.abs(lam)), jnp.finfo(s.dtype).tiny)
    bad = (lam[0] <= d * eps * top) if definite else (lam[0] < -100 * d * eps * top)
    return traced_check(s, bad, f"covariance {name} must be {kind}")
