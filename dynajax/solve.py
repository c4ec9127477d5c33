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

from dynajax import _fixed_step, _unroll
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


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_y0(y0) -> None:
    leaves = jax.tree_util.tree_leaves(y0)
    if not leaves:
        raise ValueError("y0 is an empty pytree; give at least one array")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise ValueError(f"y0 must hold floating-point arrays, got dtype {jnp.result_type(leaf)}")
        # numpy, not jnp: under jit, jnp ops on a concrete (closed-over) y0 give tracers.
        if _is_concrete(leaf) and not np.all(np.isfinite(np.asarray(leaf))):
            raise ValueError("y0 contains NaN or inf values")


def _check_ts(ts) -> None:
    if jnp.ndim(ts) != 1 or jnp.shape(ts)[0] < 1:
        raise ValueError(f"ts must be a 1-D array of save times, got shape {jnp.shape(ts)}")
    if _is_concrete(ts):
        ts_np = np.asarray(ts)
        if not np.all(np.isfinite(ts_np)):
            raise ValueError("ts contains NaN or inf values")
        if ts_np.shape[0] > 1 and not np.all(np.diff(ts_np) > 0):
            raise ValueError("ts must be strictly increasing")


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
    if ts_host is None or not (_is_concrete(t0) and _is_concrete(dt0)):
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
        dt0: fixed step size (``> 0``). With ``rtol``/``atol`` it is the first adaptive step.
        rtol, atol: tolerances of adaptive stepping (solvers with an error estimate only).
        args: passed through to ``f``.
        t0: initial time; defaults to ``ts[0]``.
        adjoint: ``"discretize"`` (backpropagate through the solver steps, with recursive
            checkpointing) or ``"backsolve"`` (continuous adjoint, solved backwards).
        max_steps: step budget; for fixed steps it defaults to the exact step count.
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
        ValueError: unknown solver or adjoint, non-positive ``dt0``, neither ``dt0`` nor
            tolerances, tolerances on a solver with no error estimate, malformed ``ts``,
            NaN in ``y0``, a field whose output does not match ``y0``, or
            ``backend="scan"`` where its conditions do not hold.

    Note:
        ``adjoint="backsolve"`` differentiates with respect to ``y0`` and ``args`` only:
        pass trainable parameters through ``args`` (``f(t, y, params)``), not as a closure.
    """
    diffrax_solver = get_solver(solver)
    if adjoint not in _ADJOINTS:
        raise ValueError(f"unknown adjoint {adjoint!r}; allowed: {', '.join(_ADJOINTS)}")
    _check_y0(y0)
    _unroll.check(unroll)
    # Keep a host copy of concrete save times: under jit, even jnp.asarray(numpy_ts) is
    # traced, and the checks and the fixed-grid fast path need the values.
    ts_host = None if isinstance(ts, jax.core.Tracer) else np.asarray(ts)
    ts = jnp.asarray(ts)
    _check_ts(ts if ts_host is None else ts_host)
    if t0 is None:  # through numpy when concrete: under jit, ts[0] would be a tracer
        t0 = ts[0] if ts_host is None else ts_host[0].astype(ts.dtype)
    # Read ts through numpy: under jit, indexing even a concrete ts gives a tracer.
    if _is_concrete(t0) and ts_host is not None and float(t0) > float(ts_host[0]):
        raise ValueError(
            f"t0={float(t0)} must not exceed the first save time {float(ts_host[0])}"
        )
    _check_field(f, t0, y0, args)

    adaptive = rtol is not None or atol is not None
    if dt0 is not None and _is_concrete(dt0) and not float(dt0) > 0:
        raise ValueError(f"dt0 must be positive (integration runs forward in time), got {dt0}")
    if adaptive:
        fixed_only = tuple(cls for cls, _, has_error in SOLVERS.values() if not has_error)
        if isinstance(diffrax_solver, fixed_only):
            raise ValueError(
                f"solver {solver!r} has no error estimate, so it cannot take rtol/atol; "
                "give dt0 for fixed steps or pick one of "
                + ", ".join(k for k, v in SOLVERS.items() if v[2])
            )
        controller = diffrax.PIDController(
            rtol=1e-6 if rtol is None else rtol, atol=1e-6 if atol is None else atol
        )
        max_steps = 16_384 if max_steps is None else max_steps
    else:
        if dt0 is None:
            raise ValueError("give dt0 for fixed steps, or rtol/atol for adaptive steps")
        controller = diffrax.ConstantStepSize()
        if max_steps is None:
            if ts_host is not None and _is_concrete(t0) and _is_concrete(dt0):
                span = float(ts_host[-1]) - float(t0)
                max_steps = max(1, math.ceil(span / float(dt0) * (1 + 1e-9)) + 1)
            else:
                max_steps = 16_384

    if backend not in _BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(_BACKENDS)}")
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
