"""Physics-only baselines: roll out parametric vector fields and fit their parameters.

:func:`rollout` integrates a
  :class:`~dynajax.systems.base.PhysicalFamily` from each trajectory's first state with one
  fixed step per data frame (RK4 3/8 rule by default: torchdiffeq's ``rk4``, used by the
  APHYNITY/LEADS papers), :func:`rollout_mse` scores it, and :func:`fit_family` finds the
  least-squares parameters ("Param ODE" rows of APHYNITY's tables).

The trajectory MSE is the mean over trajectories, frames (``t = 0`` included, as in the
released code's ``nn.MSELoss``) and state components.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float

from dynajax.data import TrajectoryDataset
from dynajax.solve import integrate
from dynajax.systems.base import PhysicalFamily
from dynajax.systems.generation import check_count

__all__ = [
    "FamilyFit",
    "rollout",
    "rollout_mse",
    "fit_family",
]

# ---------------------------------------------------------------------------------------
# Fixed-step rollouts and least-squares fits of physical families
# ---------------------------------------------------------------------------------------


def _field_of(family: PhysicalFamily | Callable) -> Callable:
    if isinstance(family, PhysicalFamily):
        return family.field
    if callable(family):
        return family
    raise ValueError(f"expected a PhysicalFamily or a field(t, y, params), got {type(family).__name__}")


def _check_params(family, params: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping of parameter names to values, got {type(params).__name__}")
    if isinstance(family, PhysicalFamily):
        unknown = set(params) - set(family.param_names)
        missing = set(family.param_names) - set(params)
        if unknown or missing:
            raise ValueError(
                f"family {family.name!r} takes parameters {list(family.param_names)}; "
                f"got unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
    return dict(params)


def _uniform_dt(times: np.ndarray) -> float:
    if times.ndim != 1 or times.shape[0] < 2:
        raise ValueError(f"times must be a 1-D array of at least two save times, got shape {times.shape}")
    gaps = np.diff(times)
    if not np.all(gaps > 0) or np.max(np.abs(gaps - gaps[0])) > 1e-6 * gaps[0]:
        raise ValueError("times must be uniformly spaced and increasing (one solver step per frame)")
    return float(gaps[0])


def _states_times(data, times) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, TrajectoryDataset):
        states = data.states
        times = data.times if times is None else times
    else:
        states = data
        if times is None:
            raise ValueError("times are required when data is an array of states")
    states = np.asarray(states)
    times = np.asarray(times, dtype=np.float64)
    if states.ndim < 3:
        raise ValueError(f"states must be [n_traj, n_time, *state_shape], got shape {states.shape}")
    if states.shape[1] != times.shape[0]:
        raise ValueError(f"states have {states.shape[1]} frames but times has {times.shape[0]}")
    return states, times


def _rollout(field, params, y0, times, solver, dt):
    # y0 [n, *state]; one step per frame on the scan path of `integrate`; -> [n, T, *state]
    ts = np.asarray(times, dtype=y0.dtype)  # concrete: `integrate` takes its fixed-grid scan path
    return jax.vmap(lambda y: integrate(field, y, ts, solver=solver, dt0=dt, args=params))(y0)


# The compiled programs below take the field, the save times (a tuple), the solver and the
# step as static arguments, so repeated calls with the same shapes reuse one compilation.
_STATIC = ("field", "times", "solver", "dt")


@functools.partial(jax.jit, static_argnames=_STATIC)
def _rollout_jit(params, y0, *, field, times, solver, dt):
    return _rollout(field, params, y0, times, solver, dt)


def _mse(params, y0, target, *, field, times, solver, dt):
    pred = _rollout(field, params, y0, times, solver, dt)
    return jnp.mean((pred - target) ** 2)


_mse_jit = jax.jit(_mse, static_argnames=_STATIC)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _grid_losses(cands, y0, target, *, field, times, solver, dt):
    def one(theta):
        v = _mse(theta, y0, target, field=field, times=times, solver=solver, dt=dt)
        return jnp.where(jnp.isfinite(v), v, jnp.inf)

    return jax.lax.map(one, cands, batch_size=64)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "max_iter", "tol"))
def _run_lbfgs(theta0, y0, target, *, field, times, solver, dt, max_iter, tol):
    loss = functools.partial(_mse, y0=y0, target=target, field=field, times=times, solver=solver, dt=dt)
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry):
        theta, state = carry
        value, grad = value_and_grad(theta, state=state)
        updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=loss)
        return optax.apply_updates(theta, updates), state

    def going(carry):
        _, state = carry
        count = optax.tree_utils.tree_get(state, "count")
        grad = optax.tree_utils.tree_get(state, "grad")
        return (count == 0) | ((count < max_iter) & (optax.tree_utils.tree_norm(grad) >= tol))

    theta, state = jax.lax.while_loop(going, step, (theta0, opt.init(theta0)))
    return theta, optax.tree_utils.tree_get(state, "count")


@functools.partial(jax.jit, static_argnames=(*_STATIC, "steps"))
def _run_adam(theta0, lr, y0, target, *, field, times, solver, dt, steps):
    loss = functools.partial(_mse, y0=y0, target=target, field=field, times=times, solver=solver, dt=dt)
    opt = optax.adam(lr)

    def step(carry, _):
        theta, state = carry
        updates, state = opt.update(jax.grad(loss)(theta), state, theta)
        return (optax.apply_updates(theta, updates), state), None

    (theta, _), _ = jax.lax.scan(step, (theta0, opt.init(theta0)), None, length=steps)
    return theta, steps


def rollout(
    family: PhysicalFamily | Callable,
    params: Mapping[str, ArrayLike],
    y0: Float[ArrayLike, "n *state"],
    times: Float[ArrayLike, " n_time"],
    *,
    solver: str = "rk4_38",
) -> Float[Array, "n n_time *state"]:
    """Integrates a family (or a field) from each ``y0[i]`` with one fixed step per frame.

    Args:
        family: a :class:`PhysicalFamily` or any ``field(t, y, params)``.
        params: the family's parameters (scalars, shared by all trajectories).
        y0: ``[n, *state_shape]`` initial states.
        times: ``[n_time]`` uniformly spaced save times; the step is their spacing.
        solver: a fixed-step solver name (``"rk4_38"``: torchdiffeq's ``rk4``).

    Returns:
        ``[n, n_time, *state_shape]`` predictions (``y0`` at ``times[0]``), in ``y0``'s dtype.
    """
    field = _field_of(family)
    params = _check_params(family, params)
    times = np.asarray(times, dtype=np.float64)
    dt = _uniform_dt(times)
    y0 = jnp.asarray(y0)
    params = {k: jnp.asarray(v, y0.dtype) for k, v in params.items()}
    return _rollout_jit(params, y0, field=field, times=tuple(times.tolist()), solver=solver, dt=dt)


def rollout_mse(
    family: PhysicalFamily | Callable,
    params: Mapping[str, ArrayLike],
    states: Float[ArrayLike, "n n_time *state"] | TrajectoryDataset,
    times: Float[ArrayLike, " n_time"] | None = None,
    *,
    y0: Float[ArrayLike, "n *state"] | None = None,
    solver: str = "rk4_38",
) -> float:
    """Trajectory MSE of a family rolled out from the data's first frames, in float64.

    Args:
        family: a :class:`PhysicalFamily` or any ``field(t, y, params)``.
        params: its parameters.
        states: ``[n, n_time, *state_shape]`` target trajectories, or a dataset.
        times: ``[n_time]`` save times (taken from a dataset when omitted).
        y0: initial states to start from (default ``states[:, 0]``), e.g. noise-free ones.
        solver: fixed-step solver, one step per frame.

    Returns:
        mean over trajectories, frames (``t = 0`` included) and components of the squared error.
    """
    states, times = _states_times(states, times)
    field = _field_of(family)
    params = _check_params(family, params)
    dt = _uniform_dt(times)
    with jax.enable_x64(True):
        start = states[:, 0] if y0 is None else np.asarray(y0)
        if start.shape != states[:, 0].shape:
            raise ValueError(f"y0 must have shape {states[:, 0].shape}, got {start.shape}")
        theta = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
        mse = _mse_jit(theta, jnp.asarray(start, jnp.float64), jnp.asarray(states, jnp.float64),
                       field=field, times=tuple(times.tolist()), solver=solver, dt=dt)
        return float(mse)


@dataclasses.dataclass(frozen=True)
class FamilyFit:
    """Result of :func:`fit_family`.

    Attributes:
        params: fitted parameter values.
        mse: training trajectory MSE at ``params``.
        start: where the local optimisation started (after the grid search if any).
        n_steps: optimiser iterations taken.
    """

    params: dict[str, float]
    mse: float
    start: dict[str, float]
    n_steps: int


def _default_grid(value: float, size: int) -> np.ndarray:
    if value > 0:
        return value * np.logspace(-1.0, 1.0, size)
    if value < 0:
        return value * np.logspace(1.0, -1.0, size)
    return np.linspace(0.0, 1.0, size)


def fit_family(
    family: PhysicalFamily,
    data: TrajectoryDataset | Float[ArrayLike, "n n_time *state"],
    times: Float[ArrayLike, " n_time"] | None = None,
    *,
    init: Mapping[str, float] | str | None = None,
    solver: str = "rk4_38",
    method: str = "lbfgs",
    steps: int | None = None,
    lr: float | None = None,
    tol: float = 1e-12,
    grid: Mapping[str, ArrayLike] | None = None,
    grid_size: int = 41,
) -> FamilyFit:
    """Least-squares fit of a physical family's parameters to trajectories.

    The family is integrated from every trajectory's first state with one ``solver`` step
    per frame (float64), and the trajectory MSE over all frames is minimised.

    Args:
        family: the :class:`PhysicalFamily` to fit.
        data: a dataset, or ``[n, n_time, *state_shape]`` states (then ``times`` is required).
        times: ``[n_time]`` uniformly spaced save times (default: the dataset's).
        init: starting values (default ``family.init``); a partial mapping overrides some
            of ``family.init``; ``"grid"`` first evaluates the loss on a grid (at most two
            parameters: the product of ``grid_size`` points per parameter, geometric from
            a tenth to ten times ``family.init``, or ``grid[name]`` where given) and starts
            from the best point. A safeguard for oscillatory data, whose trajectory loss
            is multimodal in the frequency in general (on the default pendulum data,
            L-BFGS from the code's ``omega0_sq = 0.2`` happens to reach the same minimum).
        solver: fixed-step solver of the rollout (``"rk4_38"``: torchdiffeq's ``rk4``).
        method: ``"lbfgs"`` (``optax.lbfgs`` with zoom line search, until the gradient
            norm is below ``tol`` or ``steps`` iterations) or ``"adam"`` (``steps``
            iterations of ``optax.adam(lr)``).
        steps: iteration budget (default 200 for L-BFGS, 2000 for Adam).
        lr: Adam learning rate (default 1e-2); L-BFGS takes none.
        tol: L-BFGS stopping tolerance on the gradient norm.
        grid: explicit grid values per parameter name for ``init="grid"``.
        grid_size: points per parameter of the default grid.

    Returns:
        a :class:`FamilyFit` with the fitted parameters and their training MSE.
    """
    if not isinstance(family, PhysicalFamily):
        raise ValueError(f"family must be a PhysicalFamily, got {type(family).__name__}")
    if method not in ("lbfgs", "adam"):
        raise ValueError(f"unknown method {method!r}; allowed: lbfgs, adam")
    if method == "lbfgs" and lr is not None:
        raise ValueError("lr applies to method='adam' only (L-BFGS uses a line search)")
    steps = (200 if method == "lbfgs" else 2000) if steps is None else check_count("steps", steps)
    lr = 1e-2 if lr is None else float(lr)
    states, times = _states_times(data, times)
    dt = _uniform_dt(times)
    names = family.param_names

    use_grid = isinstance(init, str)
    if use_grid and init != "grid":
        raise ValueError(f"init must be a mapping, None or 'grid', got {init!r}")
    start = dict(family.init)
    if isinstance(init, Mapping):
        unknown = set(init) - set(names)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)} for family {family.name!r}; "
                             f"allowed: {', '.join(names)}")
        start.update(init)
    elif init is not None and not use_grid:
        raise ValueError(f"init must be a mapping, None or 'grid', got {init!r}")
    if grid is not None:
        unknown = set(grid) - set(names)
        if unknown:
            raise ValueError(f"grid names unknown parameter(s) {sorted(unknown)}; allowed: {', '.join(names)}")

    with jax.enable_x64(True):
        target = jnp.asarray(states, jnp.float64)
        y0 = target[:, 0]
        static = dict(field=family.field, times=tuple(times.tolist()), solver=solver, dt=dt)

        if use_grid:
            if len(names) > 2:
                raise ValueError(f"init='grid' supports at most two parameters; family "
                                 f"{family.name!r} has {len(names)}: give init values instead")
            axes = [np.asarray(grid[k], np.float64).ravel() if grid is not None and k in grid
                    else _default_grid(float(family.init[k]), grid_size) for k in names]
            mesh = np.meshgrid(*axes, indexing="ij")
            cands = {k: jnp.asarray(m.ravel()) for k, m in zip(names, mesh)}
            values = np.asarray(_grid_losses(cands, y0, target, **static))
            best = int(np.argmin(values))
            start = {k: float(np.asarray(cands[k])[best]) for k in names}

        theta0 = {k: jnp.asarray(float(start[k]), jnp.float64) for k in names}
        if method == "lbfgs":
            theta, n_done = _run_lbfgs(theta0, y0, target, max_iter=steps, tol=float(tol), **static)
        else:
            theta, n_done = _run_adam(theta0, jnp.asarray(lr, jnp.float64), y0, target, steps=steps,
                                      **static)
        final = float(_mse_jit(theta, y0, target, **static))
        return FamilyFit(
            params={k: float(v) for k, v in theta.items()},
            mse=final,
            start={k: float(v) for k, v in start.items()},
            n_steps=int(n_done),
        )
