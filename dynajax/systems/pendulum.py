"""Damped pendulum (APHYNITY): ``theta'' + omega0^2 sin(theta) + alpha theta' = 0``.

State ``y = (theta, theta_dot)``, field ``F(y) = (theta_dot, -omega0^2 sin(theta) - alpha theta_dot)``
with ``omega0 = 2 pi / T0``. True parameters ``T0 = 6`` and ``alpha = 0.2``: the thesis prose
says ``T0 = 12`` but its Table 3.4 caption, the released code (commit "Update default
dataset parameter", 12 -> 6) and the calibration (a frictionless fit reproducing the
table's -0.14 / 13.2% only at ``T0 = 6``) all give 6.

Data (thesis and released code): 25 trajectories per split, 40 frames at ``dt = 0.5``
(``t = 0, ..., 19.5``), integrated accurately (here diffrax Dopri8, ``rtol=1e-10``,
``atol=1e-12``, float64; the code uses scipy DOP853 at ``rtol=1e-10``). The thesis adds
white Gaussian noise ``sigma = 0.01`` to the states; the code does not. :func:`generate`
follows the thesis (``noise_std=0.01``); ``noise_std=0.0`` gives the clean states of the
same trajectories (the noise has its own PRNG stream).

Initial conditions follow the code's distribution -- ``y ~ U[-1, 1]^2`` rescaled to a
radius ``~ U[1.3, 2.3]``. By default they are drawn with JAX's PRNG (``fold_in`` of the
seed, the split and the trajectory index); ``initial="released"`` gives the released code's
own draws instead (:func:`released_initial`: NumPy's legacy ``seed(index)`` for train and
``seed(INT32_MAX - index)`` for test), i.e. the thesis's trajectories up to the noise.

Physical families (APHYNITY priors; the code trains ``omega0^2`` directly, no positivity
constraint, from 0.2, and ``alpha`` from 0.1):

* ``"frictionless"``: ``(theta_dot, -omega0_sq sin(theta))``, params ``("omega0_sq",)``;
* ``"complete"``: ``(theta_dot, -omega0_sq sin(theta) - alpha theta_dot)``, params
  ``("omega0_sq", "alpha")``.

Errors on ``T0`` (what the thesis reports) come from :func:`T0_from_omega0_sq`.

:func:`generate_varying` is the varying-parameter dataset (thesis Table 3.9): ``T0 ~ U[3, 10]``
and ``alpha ~ U[0, 0.5]`` per trajectory, 500/50/50 trajectories of 40 frames; models see
the first :data:`VARYING_N_INPUT` = 20 frames and predict the next 20.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from dynajax import data
from dynajax.systems import generation as _gen
from dynajax.systems.base import PhysicalFamily, System, register

__all__ = [
    "NAME",
    "PARAMS",
    "RADIUS_RANGE",
    "N_TRAJ",
    "VARYING_N_TRAJ",
    "VARYING_N_INPUT",
    "T0_RANGE",
    "ALPHA_RANGE",
    "FAMILIES",
    "SYSTEM",
    "field",
    "frictionless_field",
    "complete_field",
    "energy",
    "omega0_sq_from_T0",
    "T0_from_omega0_sq",
    "sample_initial",
    "released_initial",
    "generate",
    "generate_varying",
]

NAME = "pendulum"
VERSION = 1
PARAMS: dict[str, float] = {"T0": 6.0, "alpha": 0.2}
RADIUS_RANGE = (1.3, 2.3)
N_TRAJ = 25  # per split (thesis and code)
VARYING_N_TRAJ = {"train": 500, "val": 50, "test": 50}
VARYING_N_INPUT = 20  # frames the varying-parameter models see before predicting 20
T0_RANGE = (3.0, 10.0)
ALPHA_RANGE = (0.0, 0.5)


def omega0_sq_from_T0(T0: ArrayLike) -> Array:
    """``omega0^2 = (2 pi / T0)^2``."""
    return (2 * jnp.pi / T0) ** 2


def T0_from_omega0_sq(omega0_sq: ArrayLike) -> Array:
    """``T0 = 2 pi / sqrt(omega0^2)`` (``nan`` for a negative ``omega0^2``)."""
    return 2 * jnp.pi / jnp.sqrt(omega0_sq)


def field(t, y: Float[Array, "2"], params: Mapping[str, Any]) -> Float[Array, "2"]:
    """The true field for one state ``(theta, theta_dot)``; ``params`` holds ``T0``, ``alpha``."""
    del t
    w2 = omega0_sq_from_T0(params["T0"])
    theta, p = y[0], y[1]
    return jnp.stack([p, -w2 * jnp.sin(theta) - params["alpha"] * p])


def frictionless_field(t, y: Float[Array, "2"], theta: Mapping[str, Any]) -> Float[Array, "2"]:
    """``(theta_dot, -omega0_sq sin(theta))``: the ``"frictionless"`` family."""
    del t
    return jnp.stack([y[1], -theta["omega0_sq"] * jnp.sin(y[0])])


def complete_field(t, y: Float[Array, "2"], theta: Mapping[str, Any]) -> Float[Array, "2"]:
    """``(theta_dot, -omega0_sq sin(theta) - alpha theta_dot)``: the ``"complete"`` family."""
    del t
    return jnp.stack([y[1], -theta["omega0_sq"] * jnp.sin(y[0]) - theta["alpha"] * y[1]])


FAMILIES: dict[str, PhysicalFamily] = {
    "frictionless": PhysicalFamily(
        name="frictionless",
        param_names=("omega0_sq",),
        field=frictionless_field,
        init={"omega0_sq": 0.2},
        description="ideal pendulum: leaves out the friction term -alpha theta_dot",
    ),
    "complete": PhysicalFamily(
        name="complete",
        param_names=("omega0_sq", "alpha"),
        field=complete_field,
        init={"omega0_sq": 0.2, "alpha": 0.1},
        description="the full damped pendulum (the true field's family)",
    ),
}


def energy(y: Float[ArrayLike, "... 2"], params: Mapping[str, Any] | None = None) -> Float[Array, "..."]:
    """Mechanical energy per unit ``m l^2``: ``theta_dot^2 / 2 + omega0^2 (1 - cos theta)``.

    Conserved when ``alpha = 0``; decays at rate ``alpha theta_dot^2`` otherwise.
    """
    params = SYSTEM.check_params(params or {})
    y = jnp.asarray(y)
    w2 = omega0_sq_from_T0(jnp.asarray(params["T0"], y.dtype))
    return 0.5 * y[..., 1] ** 2 + w2 * (1 - jnp.cos(y[..., 0]))


def sample_initial(
    n: int, *, key: Array, radius_range: tuple[float, float] = RADIUS_RANGE
) -> Float[Array, "n 2"]:
    """The released code's initial conditions, with JAX's PRNG.

    ``y ~ U[-1, 1]^2`` normalised to a radius ``r ~ U[radius_range]``; trajectory ``i``
    uses ``fold_in(key, i)``. The dtype is JAX's default float: float64 under x64 (as in
    the generators), whose draws differ from the float32 ones.

    Returns:
        ``[n, 2]`` states ``(theta, theta_dot)``.
    """
    n = _gen.check_count("n", n)
    lo, hi = _gen.check_range("radius_range", radius_range, positive=True)
    return _sample_initial(key, n, lo, hi)


@functools.partial(jax.jit, static_argnums=1)
def _sample_initial(key, n, lo, hi):
    def one(i):
        k_dir, k_rad = jax.random.split(jax.random.fold_in(key, i))
        y = jax.random.uniform(k_dir, (2,), minval=-1.0, maxval=1.0)
        r = jax.random.uniform(k_rad, (), minval=lo, maxval=hi)
        return y / jnp.sqrt(jnp.sum(y**2)) * r

    return jax.vmap(one)(jnp.arange(n))


RELEASED_SEED_OFFSET = {"train": 0, "val": np.iinfo(np.int32).max // 2, "test": np.iinfo(np.int32).max}


def released_initial(split: str, n: int) -> np.ndarray:
    """The released code's initial conditions (float64 ``[n, 2]``), bit for bit.

    Trajectory ``i`` seeds NumPy's legacy generator with ``i`` (train) or
    ``INT32_MAX - i`` (test), draws ``y = 2 U[0, 1)^2 - 1`` and a radius ``U[0, 1) + 1.3``.
    The code has no validation split (it selects on test); ``"val"`` here uses
    ``INT32_MAX // 2 - i``, disjoint from both.
    """
    _gen.check_split(split)
    n = _gen.check_count("n", n)
    offset = RELEASED_SEED_OFFSET[split]
    out = np.empty((n, 2))
    for i in range(n):
        rs = np.random.RandomState(offset - i if offset else i)
        y = rs.rand(2) * 2.0 - 1.0
        out[i] = y / np.sqrt(np.sum(y**2)) * (rs.rand() + 1.3)
    return out


def _noise(key: Array, shape: tuple[int, ...], std: float) -> np.ndarray:
    # trajectory i gets fold_in(key, i): its noise does not depend on n_traj
    if std == 0.0:
        return np.zeros(shape)
    with jax.enable_x64(True):
        return std * np.asarray(_normal_rows(key, shape[0], shape[1:]), np.float64)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _normal_rows(key, n, row_shape):
    draw = lambda i: jax.random.normal(jax.random.fold_in(key, i), row_shape, jnp.float64)
    return jax.vmap(draw)(jnp.arange(n))


@functools.partial(jax.jit, static_argnums=1)
def _draw_varying(key, n, T0_lo, T0_hi, alpha_lo, alpha_hi):
    # trajectory i: fold_in(key, i), split into its T0 and alpha keys
    def draw(i):
        k_T, k_a = jax.random.split(jax.random.fold_in(key, i))
        return (jax.random.uniform(k_T, (), jnp.float64, T0_lo, T0_hi),
                jax.random.uniform(k_a, (), jnp.float64, alpha_lo, alpha_hi))

    return jax.vmap(draw)(jnp.arange(n))


def _check_physical(params: Mapping[str, Any]) -> dict[str, float]:
    params = {k: float(v) for k, v in SYSTEM.check_params(params).items()}
    if not (math.isfinite(params["T0"]) and params["T0"] > 0):
        raise ValueError(f"T0 must be a positive period, got {params['T0']}")
    if not math.isfinite(params["alpha"]):
        raise ValueError(f"alpha must be finite, got {params['alpha']}")
    return params


def _simulate(key_ic, key_noise, n_traj, per_traj, times, radius_range, noise_std, solver, rtol, atol,
              y0=None):
    """ICs (unless given), accurate solves and noise; module-level so tests can monkeypatch it."""
    with jax.enable_x64(True):
        if y0 is None:
            y0 = np.asarray(sample_initial(n_traj, key=key_ic, radius_range=radius_range), np.float64)
        states = _gen.simulate(field, y0, per_traj, times, solver=solver, rtol=rtol, atol=atol)
        return states + _noise(key_noise, states.shape, noise_std)


def generate(
    split: str,
    *,
    n_traj: int = N_TRAJ,
    seed: int = 0,
    noise_std: float = 0.01,
    params: Mapping[str, float] | None = None,
    horizon: float = 20.0,
    dt: float = 0.5,
    radius_range: tuple[float, float] = RADIUS_RANGE,
    initial: str = "jax",
    solver: str = "dopri8",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> data.TrajectoryDataset:
    """The APHYNITY pendulum dataset of one split (fixed ``T0``, ``alpha``).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_traj: number of trajectories (25 in the thesis).
        seed: base seed; split ``s`` uses ``fold_in(key(seed), SPLIT_INDEX[s])``.
        noise_std: std of the white Gaussian noise added to the stored states (thesis 0.01;
            0.0 gives the clean states of the same trajectories).
        params: overrides of :data:`PARAMS` (``T0``, ``alpha``).
        horizon, dt: frames at ``0, dt, ..., horizon - dt`` (40 frames by default).
        radius_range: radius of the initial state ``(theta, theta_dot)``.
        initial: ``"jax"`` (initial states from ``seed``) or ``"released"`` (the released
            code's own draws, :func:`released_initial`; ``seed`` then sets only the noise,
            and ``radius_range`` must be the default).
        solver, rtol, atol: the adaptive solver generating the data.
        cache: memoise on disk (:func:`dynajax.data.cached`); ``cache_dir`` overrides the directory.

    Returns:
        a :class:`~dynajax.data.TrajectoryDataset` with float64 ``states [n_traj, n_time, 2]``
        and per-trajectory ``params`` ``T0``, ``alpha`` and ``omega0_sq``; ``env`` is all 0.
    """
    key = _gen.split_key(split, seed=seed)
    n_traj = _gen.check_count("n_traj", n_traj)
    physical = _check_physical(params or {})
    times = _gen.time_grid(horizon, dt)
    noise_std = _gen.check_noise(noise_std)
    radius_range = _gen.check_range("radius_range", radius_range, positive=True)
    if initial not in ("jax", "released"):
        raise ValueError(f"initial must be 'jax' or 'released', got {initial!r}")
    if initial == "released" and tuple(radius_range) != tuple(RADIUS_RANGE):
        raise ValueError(f"initial='released' draws radii in {RADIUS_RANGE}; got radius_range={radius_range}")
    config = {
        "system": NAME, "split": split, "variant": "fixed", "seed": int(seed), "n_traj": n_traj,
        "params": physical, "noise_std": noise_std, "horizon": float(horizon), "dt": float(dt),
        "radius_range": list(radius_range), "initial": initial, "solver": solver, "rtol": float(rtol),
        "atol": float(atol), "version": VERSION,
    }

    def build() -> data.TrajectoryDataset:
        per_traj = {k: np.full(n_traj, v) for k, v in physical.items()}
        y0 = released_initial(split, n_traj) if initial == "released" else None
        states = _simulate(jax.random.fold_in(key, 0), jax.random.fold_in(key, 1), n_traj,
                           per_traj, times, radius_range, noise_std, solver, rtol, atol, y0)
        per_traj["omega0_sq"] = (2 * np.pi / per_traj["T0"]) ** 2
        return data.TrajectoryDataset(
            states=states, times=times, params=per_traj, env=np.zeros(n_traj, np.int32),
            split=split, system=NAME, config=config,
        )

    return data.cached(build, config, directory=cache_dir, enabled=cache)


def generate_varying(
    split: str,
    *,
    n_traj: int | None = None,
    seed: int = 0,
    noise_std: float = 0.0,
    T0_range: tuple[float, float] = T0_RANGE,
    alpha_range: tuple[float, float] = ALPHA_RANGE,
    horizon: float = 20.0,
    dt: float = 0.5,
    radius_range: tuple[float, float] = RADIUS_RANGE,
    solver: str = "dopri8",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> data.TrajectoryDataset:
    """The varying-parameter pendulum dataset (thesis Table 3.9) of one split.

    Each trajectory draws ``T0 ~ U[T0_range]`` and ``alpha ~ U[alpha_range]``. The thesis
    does not mention noise for this dataset, so ``noise_std`` defaults to 0.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_traj: trajectories (default 500 / 50 / 50 for train / val / test).
        seed, noise_std, horizon, dt, radius_range, solver, rtol, atol, cache, cache_dir:
            as in :func:`generate`.
        T0_range, alpha_range: uniform ranges of the per-trajectory parameters.

    Returns:
        a dataset with per-trajectory ``params`` ``T0``, ``alpha``, ``omega0_sq``;
        ``config["n_input"]`` is the number of frames a model sees (20).
    """
    key = _gen.split_key(split, seed=seed)
    n_traj = _gen.check_count("n_traj", VARYING_N_TRAJ[split] if n_traj is None else n_traj)
    T0_range = _gen.check_range("T0_range", T0_range, positive=True)
    alpha_range = _gen.check_range("alpha_range", alpha_range)
    times = _gen.time_grid(horizon, dt)
    noise_std = _gen.check_noise(noise_std)
    radius_range = _gen.check_range("radius_range", radius_range, positive=True)
    config = {
        "system": NAME, "split": split, "variant": "varying", "seed": int(seed), "n_traj": n_traj,
        "T0_range": list(T0_range), "alpha_range": list(alpha_range), "noise_std": noise_std,
        "horizon": float(horizon), "dt": float(dt), "radius_range": list(radius_range),
        "n_input": VARYING_N_INPUT, "solver": solver, "rtol": float(rtol), "atol": float(atol),
        "version": VERSION,
    }

    def build() -> data.TrajectoryDataset:
        with jax.enable_x64(True):
            drawn = _draw_varying(jax.random.fold_in(key, 2), n_traj, *T0_range, *alpha_range)
            T0, alpha = (np.asarray(a, np.float64) for a in drawn)
        per_traj = {"T0": T0, "alpha": alpha}
        states = _simulate(jax.random.fold_in(key, 0), jax.random.fold_in(key, 1), n_traj,
                           per_traj, times, radius_range, noise_std, solver, rtol, atol)
        per_traj["omega0_sq"] = (2 * np.pi / T0) ** 2
        return data.TrajectoryDataset(
            states=states, times=times, params=per_traj, env=np.zeros(n_traj, np.int32),
            split=split, system=NAME, config=config,
        )

    return data.cached(build, config, directory=cache_dir, enabled=cache)


SYSTEM = register(
    System(
        name=NAME,
        state_shape=(2,),
        field=field,
        params=PARAMS,
        families=FAMILIES,
        sample_initial=sample_initial,
        generate=generate,
        description="damped pendulum theta'' + (2 pi / T0)^2 sin(theta) + alpha theta' = 0 (APHYNITY)",
    )
)
