"""Fixed-step explicit Runge-Kutta rollouts on a uniform save grid, as nested ``lax.scan``.

This is the fast path of :func:`dynajax.solve.integrate` for the common training case
(fixed step, save times on a uniform grid whose spacing is a whole number of steps,
discretise-then-optimise gradients). It evaluates exactly the Runge-Kutta scheme diffrax
would, from the solver's own Butcher tableau, without diffrax's per-step bookkeeping
(dense output, step-size control, checkpointed while-loop), which dominates the cost of
small vector fields on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from dynajax import _unroll


class Tableau(NamedTuple):
    """An explicit Butcher tableau: nodes ``c`` of stages 2..s, rows ``a_lower``, weights."""

    c: tuple[float, ...]
    a_lower: tuple[np.ndarray, ...]
    b_sol: np.ndarray


# Euler is not an ERK in diffrax (whose tableaux need two stages); it is one stage.
_EULER = Tableau(c=(), a_lower=(), b_sol=np.ones(1))


def tableau_of(solver: diffrax.AbstractSolver) -> Tableau | None:
    """The explicit Butcher tableau of ``solver``, or ``None`` if it has none."""
    if type(solver) is diffrax.Euler:
        return _EULER
    if isinstance(solver, diffrax.AbstractERK):
        t = type(solver).tableau
        return Tableau(tuple(t.c), tuple(t.a_lower), np.asarray(t.b_sol))
    return None


def _axpy(y, h, coeffs, ks):
    """``y + h * sum_j coeffs[j] * ks[j]`` over pytrees, skipping zero coefficients."""
    terms = [(float(c), k) for c, k in zip(coeffs, ks) if c != 0.0]
    if not terms:
        return y

    def combine(y_leaf, *k_leaves):
        acc = terms[0][0] * k_leaves[0]
        for (c, _), k in zip(terms[1:], k_leaves[1:]):
            acc = acc + c * k
        return y_leaf + (h * acc).astype(y_leaf.dtype)

    return jax.tree_util.tree_map(combine, y, *[k for _, k in terms])


def rk_step(f: Callable, tableau: Tableau, t, y, h, args):
    """One explicit Runge-Kutta step ``y(t) -> y(t + h)`` of the given tableau."""
    # Stages after the last nonzero weight (FSAL stages, evaluated at (t + h, y(t + h)) for
    # the next step or dense output) do not change the step: skip them.
    n_stages = int(np.flatnonzero(tableau.b_sol)[-1]) + 1
    ks = [f(t, y, args)]
    for c_i, a_i in list(zip(tableau.c, tableau.a_lower))[: n_stages - 1]:
        ks.append(f(t + float(c_i) * h, _axpy(y, h, a_i, ks), args))
    return _axpy(y, h, tableau.b_sol, ks)


def rollout(
    f: Callable,
    tableau: Tableau,
    y0: Any,
    t0,
    interval: float,
    n_intervals: int,
    substeps: int,
    args: Any,
    unroll: int | bool | str = "auto",
):
    """States at ``t0 + i * interval`` for ``i = 0..n_intervals``, ``substeps`` steps each.

    ``unroll`` is the ``lax.scan`` unroll of both loops; ``"auto"`` unrolls them fully on
    CPU when ``f`` convolves (:mod:`dynajax._unroll`).

    Returns the pytree of ``y0`` with a leading axis of length ``n_intervals + 1``.
    """
    unroll = _unroll.resolve(unroll, f, t0, y0, args)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(y0))
    h = jnp.asarray(interval / substeps, dtype)
    t0 = jnp.asarray(t0, dtype)

    def frame(y, i):
        t_start = t0 + i * jnp.asarray(interval, dtype)

        # Rematerialise each step's stages in the backward pass: only the states are
        # stored, O(n_steps) memory instead of O(n_steps * stages), and faster on CPU
        # for MLP fields (benchmarks/integrate.py, jax-scan-rk4-remat-grad).
        @jax.checkpoint
        def sub(y, j):
            return rk_step(f, tableau, t_start + j * h, y, h, args), None

        y, _ = jax.lax.scan(sub, y, jnp.arange(substeps), unroll=unroll)
        return y, y

    _, ys = jax.lax.scan(frame, y0, jnp.arange(n_intervals), unroll=unroll)
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
