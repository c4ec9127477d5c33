"""`integrate`: the one door to diffrax.

Every ODE solve in dynajax goes through :func:`integrate`. It takes a vector field
``f(t, y, args)`` over any pytree ``y``, the save times ``ts``, a solver (by name or a
diffrax solver), a fixed step ``dt0`` or adaptive tolerances, and the gradient route
(``adjoint="discretize"``: backpropagate through the solver, checkpointed;
``adjoint="backsolve"``: the continuous adjoint ODE solved backwards in time).

Besides diffrax's own solvers it ships two fourth-order tableaux: the classic RK4 and the
RK4 3/8 rule. torchdiffeq's ``method="rk4"`` is the 3/8 rule, so published APHYNITY and
LEADS numbers use ``solver="rk4_38"``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PyTree

from dynajax import _fixed_step, _unroll, _validate
from dynajax._fixed_step import tableau_of

__all__ = ["RK4", "RK4_38", "SOLVERS", "integrate", "solver_order", "get_solver"]


def _fixed_tableau(c, a_lower, b_sol) -> diffrax.ButcherTableau:
    # Fixed-step methods carry no embedded error estimate.
    # A zero-weight last stage at (t1, y1) makes the tableau FSAL: the step is unchanged and
    # costs no extra evaluation (it is the next step's first stage), but the Hermite dense
    # output (`from_k` takes k[-1] as the slope at t1) then gets the true f(t1, y1), so save
    # times between steps keep fourth order instead of dropping to ~2 (3/8 rule) or 3.
    b_sol = np.asarray([*b_sol, 0.0], dtype=float)
    return diffrax.ButcherTableau(
        c=np.asarray([*c, 1.0], dtype=float),
        b_sol=b_sol,
        b_error=np.zeros_like(b_sol),
        a_lower=tuple(np.asarray(a, dtype=float) for a in [*a_lower, b_sol[:-1]]),
    )


class _FourthOrderERK(diffrax.AbstractERK):
    """Shared parts of the two fixed-step fourth-order tableaux below."""

    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation.from_k
    )

    def order(self, terms):
        del terms
        return 4


class RK4(_FourthOrderERK):
    """Classic fourth-order Runge-Kutta (Kutta 1901), fixed step only."""

    tableau: ClassVar[diffrax.ButcherTableau] = _fixed_tableau(
        c=[1 / 2, 1 / 2, 1],
        a_lower=[[1 / 2], [0, 1 / 2], [0, 0, 1]],
        b_sol=[1 / 6, 1 / 3, 1 / 3, 1 / 6],
    )


class RK4_38(_FourthOrderERK):
    """Kutta's 3/8-rule fourth-order Runge-Kutta: torchdiffeq's ``rk4``. Fixed step only."""

    tableau: ClassVar[diffrax.ButcherTableau] = _fixed_tableau(
        c=[1 / 3, 2 / 3, 1],
        a_lower=[[1 / 3], [-1 / 3, 1], [1, -1, 1]],
        b_sol=[1 / 8, 3 / 8, 3 / 8, 1 / 8],
    )


# name -> (constructor, order, has an embedded error estimate)
SOLVERS: dict[str, tuple[Callable[[], diffrax.AbstractSolver], int, bool]] = {
    "euler": (diffrax.Euler, 1, False),
    "midpoint": (diffrax.Midpoint, 2, True),
    "heun": (diffrax.Heun, 2, True),
    "rk4": (RK4, 4, False),
    "rk4_38": (RK4_38, 4, False),
    "tsit5": (diffrax.Tsit5, 5, True),
    "dopri5": (diffrax.Dopri5, 5, True),
    "dopri8": (diffrax.Dopri8, 8, True),
}

_ADJOINTS = ("discretize", "backsolve")
_BACKENDS = ("auto", "diffrax", "scan")


def get_solver(solver: str | diffrax.AbstractSolver) -> diffrax.AbstractSolver:
    """Returns the diffrax solver for a name in :data:`SOLVERS` (or the solver itself)."""
    if isinstance(solver, diffrax.AbstractSolver):
        return solver
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise ValueError(
            f"unknown solver {solver!r}; allowed: {', '.join(SOLVERS)} or a diffrax solver"
        )
    return SOLVERS[solver][0]()


def solver_order(solver: str | diffrax.AbstractSolver) -> int:
    """The order of convergence of a solver (global error ``O(dt**order)``)."""
    if isinstance(solver, str):
        get_solver(solver)
        return SOLVERS[solver][1]
    return int(solver.order(None))


def _check_y0(y0) -> None:
    leaves = jax.tree_util.tree_leaves(y0)
    if not leaves:
        raise ValueError("y0 is an empty pytree; give at least one array")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise ValueError(f"y0 must hold floating-point arrays, got dtype {jnp.result_type(leaf)}")
        _validate.finite(leaf, "y0", traced=False)


def _check_ts(ts):
    if jnp.ndim(ts) != 1 or jnp.shape(ts)[0] < 1:
        raise ValueError(f"ts must be a 1-D array of save times, got shape {jnp.shape(ts)}")
    return _validate.strictly_increasing(ts, "ts")


def _check_field(f, t0, y0, args) -> None:
    try:
        out = jax.eval_shape(f, t0, y0, args)
    except Exception as e:  # surface the user's error with context
        raise ValueError(f"calling the vector field f(t, y, args) failed: {e}") from e
    want = jax.tree_util.tree_structure(y0)
    got = jax.tree_util.tree_structure(out)
    if want != got:
        raise ValueError(f"f(t, y, args) must return the structure of y0 {want}, got {got}")
    for a, b in zip(jax.tree_util.tree_leaves(y0), jax.tree_util.tree_leaves(out)):
        if jnp.shape(a) != b.shape:
            raise ValueError(
                f"f(t, y, args) must return arrays shaped like y0: got {b.shape} for a leaf of shape {jnp.shape(a)}"
            )


_TRACED_GRID = "ts, t0 and dt0 must be concrete (not traced) values"


def _uniform_grid(solver, ts_host, t0, dt0, adaptive, adjoint) -> tuple[float, int] | str:
    """``(interval, substeps)`` when the fixed-step scan path applies, else the reason not."""
    if adaptive or adjoint != "discretize":
        return "it needs fixed steps (dt0, no rtol/atol) and adjoint='discretize'"
    if tableau_of(solver) is None:
        return f"{type(solver).__name__} is not an explicit Runge-Kutta method"
    if ts_host is None or not (_validate.is_concrete(t0) and _validate.is_concrete(dt0)):
        return _TRACED_GRID
    ts_np = ts_host.astype(np.float64)
    if ts_np.shape[0] < 2 or float(t0) != ts_np[0]:
        return "it needs at least two save times, the first equal to t0"
    gaps = np.diff(ts_np)
    interval = float(np.mean(gaps))
    if np.max(np.abs(gaps - interval)) > 1e-5 * interval:
        return "the save times are not uniformly spaced"
    ratio = interval / float(dt0)
    substeps = round(ratio)
    if substeps < 1 or abs(ratio - substeps) > 1e-5 * ratio:
        return f"the save spacing {interval:g} is not a whole number of steps dt0={float(dt0):g}"
    return interval, substeps


def integrate(
    f: Callable[[Any, PyTree, Any], PyTree],
    y0: PyTree[ArrayLike],
    ts: Float[ArrayLike, " n_save"],
    *,
    solver: str | diffrax.AbstractSolver = "tsit5",
    dt0: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    args: Any = None,
    t0: float | None = None,
    adjoint: str = "discretize",
    max_steps: int | None = None,
    backend: str = "auto",
    unroll: int | bool | str = "auto",
) -> PyTree[Float[Array, "n_save ..."]]:
    """Solves ``dy/dt = f(t, y, args)`` from ``y(t0) = y0`` and returns ``y`` at ``ts``.

    Args:
        f: vector field ``f(t, y, args) -> dy/dt`` with the pytree structure of ``y0``.
        y0: initial state, any pytree of floating arrays.
        ts: save times, shape ``[n_save]``, strictly increasing.
        solver: a name in :data:`SOLVERS` (``euler``, ``midpoint``, ``heun``, ``rk4``,
            ``rk4_38``, ``tsit5``, ``dopri5``, ``dopri8``) or a diffrax solver.
        dt0: fixed step size (``> 0``, finite). With ``rtol``/``atol`` it is the first
            adaptive step.
        rtol, atol: tolerances of adaptive stepping (solvers with an error estimate only):
            ``rtol > 0``, ``atol >= 0``; the one not given defaults to ``1e-6``.
        args: passed through to ``f``.
        t0: initial time (finite, at most ``ts[0]``); defaults to ``ts[0]``.
        adjoint: ``"discretize"`` (backpropagate through the solver steps, with recursive
            checkpointing) or ``"backsolve"`` (continuous adjoint, solved backwards).
        max_steps: step budget (an int ``>= 1``). For fixed steps on a concrete grid it
            defaults to the exact step count from ``t0`` to ``ts[-1]``, and a smaller
            budget is refused; otherwise diffrax stops with an error when it is spent
            (16384 steps by default).
        backend: ``"auto"``, ``"diffrax"`` or ``"scan"``. ``"scan"`` runs fixed steps of
            an explicit Runge-Kutta tableau as a nested ``lax.scan``: the same scheme as
            diffrax, without its per-step bookkeeping (2-3x faster for small fields on
            CPU). It needs fixed steps, ``adjoint="discretize"``, concrete uniformly spaced
            ``ts`` starting at ``t0`` whose spacing is a whole number of ``dt0`` steps.
            ``"auto"`` takes it whenever these hold, and diffrax otherwise.
        unroll: ``lax.scan`` unroll factor of the ``"scan"`` backend's steps (``True``:
            fully unrolled). ``"auto"`` unrolls fully on CPU when ``f`` contains a
            convolution, which XLA:CPU runs many times slower in a rolled loop
            (:mod:`dynajax._unroll`), and does not unroll otherwise.

    Returns:
        ``ys``, the pytree of ``y0`` with a leading axis ``[n_save]``.

    Raises:
        ValueError: unknown solver, adjoint or backend; ``dt0``, ``rtol`` or ``atol`` not
            positive (``atol``: non-negative) and finite; ``max_steps`` below 1 or below
            the fixed step count; neither ``dt0`` nor tolerances; tolerances on a solver
            with no error estimate; malformed ``ts`` or ``t0``; NaN in ``y0``; a field
            whose output does not match ``y0``; or ``backend="scan"`` where its conditions
            do not hold. Traced ``dt0``, ``rtol``, ``atol``, ``ts`` and ``t0`` (under
            ``jit``) are checked when the program runs, by ``equinox.error_if``, with
            the same messages.

    Note:
        ``adjoint="backsolve"`` differentiates with respect to ``y0`` and ``args`` only:
        pass trainable parameters through ``args`` (``f(t, y, params)``), not as a closure.
    """
    diffrax_solver = get_solver(solver)
    _validate.choice(adjoint, "adjoint", _ADJOINTS)
    _validate.choice(backend, "backend", _BACKENDS)
    _check_y0(y0)
    _unroll.check(unroll)
    # Keep a host copy of concrete save times: under jit, even jnp.asarray(numpy_ts) is
    # traced, and the checks and the fixed-grid fast path need the values.
    ts_host = None if isinstance(ts, jax.core.Tracer) else np.asarray(ts)
    ts = jnp.asarray(ts)
    if ts_host is None:
        ts = _check_ts(ts)
    else:
        _check_ts(ts_host)
    if t0 is None:  # through numpy when concrete: under jit, ts[0] would be a tracer
        t0 = ts[0] if ts_host is None else ts_host[0].astype(ts.dtype)
    else:
        t0 = _validate.finite(t0, "t0")
    # Read ts through numpy: under jit, indexing even a concrete ts gives a tracer.
    if _validate.is_concrete(t0) and ts_host is not None:
        if float(t0) > float(ts_host[0]):
            raise ValueError(
                f"t0={float(t0)} must not exceed the first save time {float(ts_host[0])}"
            )
    else:
        t0 = _validate.traced_check(
            t0, t0 > ts[0], "t0 must not exceed the first save time ts[0]"
        )
    _check_field(f, t0, y0, args)

    adaptive = rtol is not None or atol is not None
    if dt0 is not None:
        dt0 = _validate.positive(dt0, "dt0", what=" (integration runs forward in time)")
    if max_steps is not None:
        max_steps = _validate.integer(max_steps, "max_steps")
    if adaptive:
        fixed_only = tuple(cls for cls, _, has_error in SOLVERS.values() if not has_error)
        if isinstance(diffrax_solver, fixed_only):
            raise ValueError(
                f"solver {solver!r} has no error estimate, so it cannot take rtol/atol; "
                "give dt0 for fixed steps or pick one of "
                + ", ".join(k for k, v in SOLVERS.items() if v[2])
            )
        rtol = 1e-6 if rtol is None else _validate.positive(rtol, "rtol")
        atol = 1e-6 if atol is None else _validate.positive(atol, "atol", strict=False)
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
        max_steps = 16_384 if max_steps is None else max_steps
    else:
        if dt0 is None:
            raise ValueError("give dt0 for fixed steps, or rtol/atol for adaptive steps")
        controller = diffrax.ConstantStepSize()
        if ts_host is not None and _validate.is_concrete(t0) and _validate.is_concrete(dt0):
            ratio = (float(ts_host[-1]) - float(t0)) / float(dt0)
            needed = max(1, math.ceil(ratio * (1 - 1e-9)))
            if max_steps is not None and max_steps < needed:
                raise ValueError(
                    f"max_steps={max_steps} is fewer than the {needed} fixed steps of "
                    f"dt0={float(dt0):g} from t0={float(t0):g} to ts[-1]={float(ts_host[-1]):g}; "
                    "raise max_steps or dt0"
                )
            # one step more than the exact count: rounding may leave a sliver step at the end
            max_steps = max(max_steps or 0, math.ceil(ratio * (1 + 1e-9)) + 1)
        elif max_steps is None:
            max_steps = 16_384

    if backend != "diffrax":
        grid = _uniform_grid(diffrax_solver, ts_host, t0, dt0, adaptive, adjoint)
        if isinstance(grid, str):
            if backend == "scan":
                raise ValueError(f"backend='scan' cannot run this solve: {grid}")
            if grid == _TRACED_GRID:
                warnings.warn(
                    "integrate(backend='auto') falls back to diffrax because ts, t0 or dt0 "
                    "is traced (e.g. built with jnp inside jit); build them with numpy, or "
                    "pass them as static values, for the faster fixed-step scan backend",
                    stacklevel=2,
                )
        else:
            interval, substeps = grid
            return _fixed_step.rollout(
                f, tableau_of(diffrax_solver), y0, t0, interval, len(ts) - 1, substeps, args,
                unroll=unroll,
            )

    adjoint_obj = (
        diffrax.RecursiveCheckpointAdjoint()
        if adjoint == "discretize"
        else diffrax.BacksolveAdjoint()
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(f),
        diffrax_solver,
        t0=t0,
        t1=ts[-1],
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=controller,
        adjoint=adjoint_obj,
        max_steps=max_steps,
    )
    return sol.ys
