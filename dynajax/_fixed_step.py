"""Fixed-step explicit Runge-Kutta rollouts on a uniform save grid, as nested ``lax.scan``.

This is the fast path of :func:`dynajax.solve.integrate` for the common training case
(fixed step, save times on a uniform grid whose spacing is a whole number of steps,
discretise-then-optimise gradients). It evaluates exactly the Runge-Kutta scheme diffrax
would, from the solver's own Butcher tableau, without diffrax's per-step bookkeeping
(dense output, step-size control, checkpointed while-loop), which dominates the cost of
small vector fields on CPU.

Reverse mode stores, per step, the state and (``remat="dots"``) the outputs of the field's
wide matrix products (no batch dimension, at least :data:`DOTS_MIN_CONTRACTION` terms per
output), and recomputes the rest of the stages (``jax.checkpoint``). For a wide MLP field
this saves the recomputation of its hidden dense layers in the backward pass, where most of
the forward cost is. ``remat="auto"`` stores them when they take at most
:data:`DOTS_BUDGET_BYTES` over the whole rollout, else only the states (``"full"``);
convolutions are never stored. Measured on 2 shared CPU cores (jax 0.10, single-core CPU
time, median of 60 interleaved repeats, storing every product without batch dimension):
the APHYNITY pendulum step of ``benchmarks/forecast.py`` (MLP 2-200-200-2, 25 trajectories,
39 RK4 steps, 6 MB of outputs) 24.8 ms with ``"full"``, 22.2 ms with ``"dots"``; the
``integrate`` benchmark's gradient (MLP 8-64-64-8, 1024 states, 100 steps, 223 MB) 301 ms
with ``"full"``, 368 ms with ``"dots"``; the LEADS-LV step (64-wide MLPs on 10 states)
7.3 ms with ``"full"``, 7.8 ms with ``"dots"``: hence the width and size thresholds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from dynajax import _unroll

REMATS = ("auto", "full", "dots")
# "dots" stores the outputs of matrix products summing over at least this many terms
# (recomputing narrower ones costs less than storing them), and "auto" does so when all of
# them, over every stage and step of a rollout, take at most DOTS_BUDGET_BYTES.
DOTS_MIN_CONTRACTION = 128
DOTS_BUDGET_BYTES = 16 * 2**20


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


def _is_wide_dot(prim, *avals, **params) -> bool:
    """The ``"dots"`` checkpoint policy: a ``dot_general`` with no batch dimension that sums
    over at least :data:`DOTS_MIN_CONTRACTION` terms per output."""
    if prim is not jax.lax.dot_general_p:
        return False
    (lhs_contract, _), batch = params["dimension_numbers"]
    if batch != ((), ()):
        return False
    return int(np.prod([avals[0].shape[d] for d in lhs_contract])) >= DOTS_MIN_CONTRACTION


def _dot_output_bytes(jaxpr) -> int:
    """Bytes of the outputs that the ``"dots"`` policy stores per call (sub-jaxprs included)."""
    total = 0
    for eqn in jaxpr.eqns:
        if _is_wide_dot(eqn.primitive, *(v.aval for v in eqn.invars), **eqn.params):
            aval = eqn.outvars[0].aval
            total += int(np.prod(aval.shape)) * np.dtype(aval.dtype).itemsize
        for v in eqn.params.values():
            total += sum(_dot_output_bytes(j) for j in _unroll._jaxprs_in(v))
    return total


def resolve_remat(remat: str, f: Callable, t0, y0, args, n_evals: int) -> str:
    """``remat`` itself, or for ``"auto"``: ``"dots"`` if it stores anything within the budget.

    Args:
        remat: ``"auto"``, ``"full"`` or ``"dots"``.
        f, t0, y0, args: the field and a call of it (traced once for ``"auto"``).
        n_evals: field evaluations of the rollout (steps times stages).
    """
    if remat not in REMATS:
        raise ValueError(f"unknown remat {remat!r}; allowed: {', '.join(REMATS)}")
    if remat != "auto":
        return remat
    per_eval = _dot_output_bytes(jax.make_jaxpr(f)(t0, y0, args).jaxpr)
    return "dots" if 0 < per_eval * n_evals <= DOTS_BUDGET_BYTES else "full"


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
    remat: str = "auto",
):
    """States at ``t0 + i * interval`` for ``i = 0..n_intervals``, ``substeps`` steps each.

    ``unroll`` is the ``lax.scan`` unroll of both loops; ``"auto"`` unrolls them fully on
    CPU when ``f`` convolves (:mod:`dynajax._unroll`). ``remat`` is what reverse mode
    stores per step: ``"full"`` the state only (the stages are recomputed), ``"dots"``
    also the outputs of ``f``'s wide matrix products, ``"auto"`` (:func:`resolve_remat`)
    the latter when they are small. The values and gradients are the same in all cases.

    Returns the pytree of ``y0`` with a leading axis of length ``n_intervals + 1``.
    """
    unroll = _unroll.resolve(unroll, f, t0, y0, args)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(y0))
    h = jnp.asarray(interval / substeps, dtype)
    t0 = jnp.asarray(t0, dtype)
    n_stages = int(np.flatnonzero(tableau.b_sol)[-1]) + 1
    remat = resolve_remat(remat, f, t0, y0, args, n_intervals * substeps * n_stages)
    policy = _is_wide_dot if remat == "dots" else None

    def frame(y, i):
        t_start = t0 + i * jnp.asarray(interval, dtype)

        # Rematerialise each step's stages in the backward pass (see the module docstring):
        # O(n_steps) states (and, with "dots", matrix-product outputs) are stored.
        @functools.partial(jax.checkpoint, policy=policy)
        def sub(y, j):
            return rk_step(f, tableau, t_start + j * h, y, h, args), None

        y, _ = jax.lax.scan(sub, y, jnp.arange(substeps), unroll=unroll)
        return y, y

    _, ys = jax.lax.scan(frame, y0, jnp.arange(n_intervals), unroll=unroll)
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)
