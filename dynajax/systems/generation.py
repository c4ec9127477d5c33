"""Shared rules of the ODE data generators: split keys, time grids, input checks, and
:func:`simulate`, the accurate batched float64 solver behind them.

Used by :mod:`~dynajax.systems.pendulum`, :mod:`~dynajax.systems.lotka_volterra` and
:mod:`~dynajax.systems.linear`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from dynajax.data import SPLITS
from dynajax.solve import integrate

__all__ = [
    "SPLIT_INDEX",
    "check_count",
    "check_noise",
    "check_range",
    "check_split",
    "env_noise",
    "simulate",
    "simulate_envs",
    "split_key",
    "time_grid",
]

SPLIT_INDEX: dict[str, int] = {s: i for i, s in enumerate(SPLITS)}


def check_split(split: str) -> None:
    """``ValueError`` unless ``split`` is one of ``train``, ``val``, ``test``."""
    if split not in SPLIT_INDEX:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")


def split_key(split: str, *, seed: int) -> Array:
    """The PRNG key of one split: ``fold_in(key(seed), SPLIT_INDEX[split])``.

    Generators fold further stream indices into it (0: initial conditions, 1: noise,
    2: per-trajectory parameters) and then the trajectory index, so the first ``k``
    trajectories do not depend on how many are generated.
    """
    check_split(split)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return jax.random.fold_in(jax.random.key(int(seed)), SPLIT_INDEX[split])


def check_count(name: str, n: Any) -> int:
    """``n`` as an int; ``ValueError`` unless it is an integer ``>= 1``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {n!r}")
    return int(n)


def check_noise(noise_std: float) -> float:
    """``noise_std`` as a float; ``ValueError`` if negative or not finite."""
    noise_std = float(noise_std)
    if not (math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std}")
    return noise_std


def time_grid(horizon: float, dt: float) -> np.ndarray:
    """Save times ``0, dt, ..., horizon - dt`` (the released codes' ``arange(0, horizon, dt)``).

    Args:
        horizon: total time ``> 0``; must be a whole multiple of ``dt``.
        dt: spacing of the frames ``> 0``.

    Returns:
        ``[round(horizon / dt)]`` float64 times.
    """
    horizon, dt = float(horizon), float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, got {dt}")
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon must be a positive number, got {horizon}")
    n = round(horizon / dt)
    if n < 1 or abs(n * dt - horizon) > 1e-9 * horizon:
        raise ValueError(
            f"horizon={horizon} must be a whole multiple of dt={dt} (frames at 0, dt, ..., horizon - dt)"
        )
    return dt * np.arange(n, dtype=np.float64)


def check_range(name: str, lo_hi: Sequence[float], *, positive: bool = False) -> tuple[float, float]:
    """``(lo, hi)`` as floats; ``ValueError`` unless finite with ``lo <= hi`` (and ``lo > 0``)."""
    try:
        lo, hi = (float(v) for v in lo_hi)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a pair (low, high), got {lo_hi!r}") from e
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} must be finite with low <= high, got {lo_hi!r}")
    if positive and not lo > 0:
        raise ValueError(f"{name} must be positive, got {lo_hi!r}")
    return lo, hi


# Batches are padded to a power of two, at least this many: small requests share one program.
_MIN_PAD = 32


@functools.lru_cache(maxsize=64)
def _batched_solver(field: Callable, solver: str, rtol: float, atol: float, max_steps: int):
    # One jitted program per (field, solver, tolerances); jax caches compilations per
    # input shape, and simulate() pads batches to powers of two to bound their number.
    def one(y0, params, ts):
        return integrate(field, y0, ts, solver=solver, rtol=rtol, atol=atol, args=params,
                         max_steps=max_steps)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None)))


def _per_trajectory(value, n: int) -> np.ndarray:
    a = np.asarray(value)
    if not np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64)
    if a.shape not in ((), (n,)):
        raise ValueError(f"parameter values must be scalars or [{n}] arrays, got shape {a.shape}")
    return np.broadcast_to(a, (n,))


def simulate(
    field: Callable[[Any, Array, Mapping[str, Any]], Array],
    y0: Float[ArrayLike, "n *state"],
    params: Mapping[str, ArrayLike],
    ts: Float[ArrayLike, " n_time"],
    *,
    solver: str = "dopri8",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    max_steps: int = 16_384,
    batch_size: int = 1024,
) -> Float[np.ndarray, "n n_time *state"]:
    """Solves ``dy/dt = field(t, y, params_i)`` from ``y0[i]`` for every ``i``, in float64.

    Args:
        field: ``field(t, y, params)`` for one unbatched state.
        y0: ``[n, *state_shape]`` initial states.
        params: parameter name -> ``[n]`` values (one per trajectory) or a scalar (shared).
        ts: ``[n_time]`` save times; the solve starts at ``ts[0]``.
        solver: an adaptive solver name of :func:`dynajax.solve.integrate`.
        rtol, atol: tolerances of the adaptive step-size controller.
        max_steps: step budget per trajectory.
        batch_size: trajectories per compiled call (batches are padded to a power of two,
            at least 32, so that small requests share one compiled program).

    Returns:
        ``[n, n_time, *state_shape]`` float64 numpy states.
    """
    with jax.enable_x64(True):
        y0 = np.asarray(y0, dtype=np.float64)
        n = y0.shape[0]
        full = {k: _per_trajectory(v, n) for k, v in params.items()}
        ts = jnp.asarray(np.asarray(ts, dtype=np.float64))
        solve = _batched_solver(field, solver, float(rtol), float(atol), int(max_steps))
        outs = []
        for s in range(0, n, batch_size):
            m = min(batch_size, n - s)
            padded = min(batch_size, max(_MIN_PAD, 1 << max(0, (m - 1).bit_length())))
            idx = np.minimum(np.arange(s, s + padded), s + m - 1)  # repeat the last one
            ys = solve(jnp.asarray(y0[idx]), {k: jnp.asarray(v[idx]) for k, v in full.items()}, ts)
            outs.append(np.asarray(ys)[:m])
        return np.concatenate(outs).astype(np.float64)


def simulate_envs(
    field: Callable[[Any, Array, Mapping[str, Any]], Array],
    y0: Float[ArrayLike, "n_per_env *state"],
    env_params: Mapping[str, ArrayLike],
    ts: Float[ArrayLike, " n_time"],
    *,
    key: Array,
    noise_std: float,
    **solve_kw,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The same initial states solved in every environment, plus :func:`env_noise`.

    Args:
        field, ts, solve_kw: as :func:`simulate`.
        y0: ``[n_per_env, *state_shape]`` initial states shared by the environments.
        env_params: parameter name -> ``[n_env]`` values, one per environment.
        key, noise_std: observation noise ``noise_std * env_noise(..., key=key)``.

    Returns:
        ``(states [n_env * n_per_env, n_time, *state], per_traj)``, environment-major
        (trajectory ``e * n_per_env + i``), with ``per_traj`` the repeated parameters.
    """
    y0 = np.asarray(y0, np.float64)
    n_env = len(np.asarray(next(iter(env_params.values()))))
    per_traj = {k: np.repeat(np.asarray(v), len(y0)) for k, v in env_params.items()}
    states = simulate(field, np.tile(y0, (n_env,) + (1,) * (y0.ndim - 1)), per_traj, ts, **solve_kw)
    if noise_std > 0:
        noise = env_noise(n_env, len(y0), tuple(states.shape[1:]), key=key)
        states = states + noise_std * np.asarray(noise, np.float64)
    return states, per_traj


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def env_noise(n_env: int, n_per_env: int, row_shape: tuple[int, ...], *, key: Array) -> Array:
    """Standard normal noise ``[n_env * n_per_env, *row_shape]`` (float64), environment-major.

    Trajectory ``i`` of environment ``e`` draws from ``fold_in(fold_in(key, e), i)``, so its
    noise does not depend on how many environments or trajectories are generated.
    """

    def draw(e, i):
        return jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, e), i), row_shape,
                                 jnp.float64)

    e, i = jnp.divmod(jnp.arange(n_env * n_per_env), n_per_env)
    return jax.vmap(draw)(e, i)
