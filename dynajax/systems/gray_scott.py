"""Gray-Scott reaction-diffusion: the LEADS multi-environment PDE benchmark.

.. math::

    \\partial_t u = D_u \\Delta u - u v^2 + F (1 - u), \\qquad
    \\partial_t v = D_v \\Delta v + u v^2 - (F + k) v,

with ``D_u = 0.2097``, ``D_v = 0.105`` and one environment per ``(F, k)`` in
:data:`ENVIRONMENTS` = ``(0.037, 0.060), (0.030, 0.062), (0.039, 0.058)``. The grid is periodic,
``32 x 32``, ``dx = 1``, and the Laplacian is the released LEADS code's nine-point stencil
(``datasets/gs.py``: centre ``-3``, edge neighbours ``1/2``, corner neighbours ``1/4``;
:func:`dynajax.systems.stencils.laplacian` with ``stencil="9pt"``). A state is channels-first
``[2, H, W]`` = ``(u, v)``.

Initial condition (the code's; the thesis text describes 2x2 squares with the two states
swapped, which looks like a typo): background ``(u, v) = (0.95, 0.05)`` and
``n_blocks = 3`` squares of ``size // 10`` (= 3) pixels a side, set to ``(0, 1)``, each at
a position drawn uniformly from ``[0, size - side)^2`` (squares may overlap). The
positions depend on the trajectory index only, so trajectory ``i`` of every environment
starts from the same state (as in the code).

Data: ``K = 10`` frames ``t = 0, 40, ..., 360`` (the code's ``arange(0, 400, 40)``; the
thesis' ``T = 400`` is ``K * dt``), integrated in float64 with diffrax's adaptive
Dormand-Prince 5(4) at ``rtol = atol = 1e-8`` (the code uses scipy RK45 at its default
``rtol=1e-3, atol=1e-6``; tighter tolerances make the data a ground truth rather than a
solver artefact: at the code's tolerances the frames differ from the converged solution by
up to ``7e-3`` (MSE ``3e-8``), at ``1e-8`` by ``3e-7``). Sizes (:data:`DEFAULT_N_PER_ENV`): 1 training trajectory per environment
(the main LEADS table), 32 test trajectories per environment (the code's), and 8 validation
trajectories per environment (not in the paper, which selects on the test set).

Physical families (priors for APHYNITY-style augmentation; the papers use none for GS):
``"diffusion"`` (``Du``, ``Dv``: diffusion only) and ``"complete"`` (``Du``, ``Dv``, ``F``,
``k``). No published initial values exist; ``init`` uses round values of the right order
(``Du = Dv = 0.1``, ``F = 0.035``, ``k = 0.06``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from dynajax import data
from dynajax.solve import integrate
from dynajax.systems import generation as _gen
from dynajax.systems import stencils
from dynajax.systems.base import PhysicalFamily, System, register

__all__ = [
    "DEFAULT_N_PER_ENV",
    "DX",
    "ENVIRONMENTS",
    "FAMILIES",
    "NAME",
    "PARAMS",
    "SPLIT_INDEX",
    "SYSTEM",
    "complete_field",
    "diffusion_field",
    "field",
    "generate",
    "laplacian",
    "reaction",
    "sample_initial",
]

NAME = "gray_scott"
DX = 1.0
PARAMS: dict[str, float] = {"Du": 0.2097, "Dv": 0.105, "F": 0.037, "k": 0.060}
ENVIRONMENTS: tuple[dict[str, float], ...] = (
    {"F": 0.037, "k": 0.060},
    {"F": 0.030, "k": 0.062},
    {"F": 0.039, "k": 0.058},
)
DEFAULT_N_PER_ENV: dict[str, int] = {"train": 1, "val": 8, "test": 32}
SPLIT_INDEX = _gen.SPLIT_INDEX
_SOLVERS = ("dopri5", "tsit5", "dopri8")
_VERSION = 1


def laplacian(u: Float[Array, "*batch H W"]) -> Float[Array, "*batch H W"]:
    """The code's nine-point periodic Laplacian, ``dx = 1``."""
    return stencils.laplacian(u, DX, stencil="9pt", boundary="periodic")


def reaction(y: Float[Array, "*batch 2 H W"], F, k) -> Float[Array, "*batch 2 H W"]:
    """The local terms ``(-u v^2 + F (1 - u), u v^2 - (F + k) v)``."""
    u, v = y[..., 0, :, :], y[..., 1, :, :]
    uvv = u * v * v
    return jnp.stack([-uvv + F * (1.0 - u), uvv - (F + k) * v], axis=-3)


def _diffusion(y, Du, Dv):
    lap = laplacian(y)
    return jnp.stack([Du * lap[..., 0, :, :], Dv * lap[..., 1, :, :]], axis=-3)


def field(t, y: Float[Array, "*batch 2 H W"], params: Mapping[str, Any]) -> Float[Array, "*batch 2 H W"]:
    """The true Gray-Scott field for one state ``[2, H, W]`` (batch axes allowed).

    Args:
        t: time (unused).
        y: ``(u, v)`` channels first.
        params: ``Du``, ``Dv``, ``F``, ``k``.
    """
    del t
    return _diffusion(y, params["Du"], params["Dv"]) + reaction(y, params["F"], params["k"])


def diffusion_field(t, y, theta):
    """Diffusion only: ``(Du Lap u, Dv Lap v)``."""
    del t
    return _diffusion(y, theta["Du"], theta["Dv"])


def complete_field(t, y, theta):
    """The full Gray-Scott field with unknown ``Du, Dv, F, k``."""
    return field(t, y, theta)


FAMILIES = {
    "diffusion": PhysicalFamily(
        "diffusion", ("Du", "Dv"), diffusion_field, {"Du": 0.1, "Dv": 0.1},
        "diffusion only: leaves out the reaction (and so the environment's F, k)",
    ),
    "complete": PhysicalFamily(
        "complete", ("Du", "Dv", "F", "k"), complete_field,
        {"Du": 0.1, "Dv": 0.1, "F": 0.035, "k": 0.06},
        "the full Gray-Scott field with unknown coefficients",
    ),
}


def sample_initial(
    n: int, *, key: Array, size: int = 32, n_blocks: int = 3, block_size: int | None = None
) -> Float[Array, "n 2 size size"]:
    """``n`` initial states: ``(0.95, 0.05)`` with ``n_blocks`` squares set to ``(0, 1)``.

    Args:
        key: PRNG key.
        n: number of states.
        size: grid points per axis.
        n_blocks: number of squares (code: 3).
        block_size: square side (default ``size // 10``, the code's ``int(size / 10)``).
    """
    _check_positive_int("n", n)
    side = _check_blocks(size, n_blocks, block_size)
    dtype = jnp.zeros(()).dtype
    corners = jax.random.randint(key, (n, n_blocks, 2), 0, size - side)
    i = jnp.arange(size)
    inside_r = (i >= corners[..., 0, None]) & (i < corners[..., 0, None] + side)  # [n, blocks, size]
    inside_c = (i >= corners[..., 1, None]) & (i < corners[..., 1, None] + side)
    mask = jnp.any(inside_r[..., :, None] & inside_c[..., None, :], axis=1)  # [n, size, size]
    u = jnp.where(mask, 0.0, 0.95).astype(dtype)
    v = jnp.where(mask, 1.0, 0.05).astype(dtype)
    return jnp.stack([u, v], axis=1)


def _check_positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_blocks(size, n_blocks, block_size) -> int:
    if not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an integer, got {size!r}")
    stencils.check_grid((size, size), "9pt", "periodic")
    _check_positive_int("n_blocks", n_blocks)
    side = size // 10 if block_size is None else block_size
    if not isinstance(side, (int, np.integer)) or not 1 <= side < size:
        raise ValueError(f"block_size must be an integer in [1, {size}), got {side!r} (size={size})")
    return int(side)


def _check_positive(name, value):
    if value is None or not np.isfinite(value) or not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def generate(
    split: str,
    *,
    n_per_env: int | None = None,
    n_traj: int | None = None,
    envs: Sequence[Mapping[str, float]] | None = None,
    params: Mapping[str, float] | None = None,
    seed: int = 0,
    size: int = 32,
    n_blocks: int = 3,
    block_size: int | None = None,
    horizon: float = 360.0,
    dt: float = 40.0,
    solver: str = "dopri5",
    rtol: float = 1e-8,
    atol: float = 1e-8,
    dtype: str = "float32",
    batch_size: int = 32,
    cache: bool = True,
    cache_dir=None,
) -> data.TrajectoryDataset:
    """Gray-Scott trajectories, environment-major (env 0's, then env 1's, ...).

    Generated in float64 and stored as ``dtype`` (float32 by default, to keep files small).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_per_env: trajectories per environment (default :data:`DEFAULT_N_PER_ENV`).
        n_traj: total number instead (a multiple of the number of environments);
            give at most one of ``n_per_env`` and ``n_traj``.
        envs: environments, each a mapping of parameter overrides (default
            :data:`ENVIRONMENTS`, i.e. ``F`` and ``k``).
        params: overrides shared by every environment (e.g. ``Du``).
        seed: base seed; trajectory ``i`` (of every environment) starts from
            ``sample_initial(1, key=fold_in(fold_in(split_key(split, seed=seed), 0), i))``
            (:func:`dynajax.systems.generation.split_key`).
        size, n_blocks, block_size: the initial condition (:func:`sample_initial`).
        horizon: time of the last frame (360: frames ``0, 40, ..., 360``).
        dt: frame spacing (40).
        solver: adaptive solver, ``"dopri5"``, ``"tsit5"`` or ``"dopri8"``.
        rtol, atol: its tolerances.
        dtype: ``"float32"`` or ``"float64"`` storage.
        batch_size: trajectories per compiled batch.
        cache, cache_dir: see :func:`dynajax.data.cached`.

    Returns:
        A :class:`~dynajax.data.TrajectoryDataset` with ``states [n_env * n_per_env,
        horizon / dt + 1, 2, size, size]``, per-trajectory ``params`` (``Du, Dv, F, k``) and
        ``env`` ids.

    Raises:
        ValueError: unknown split, parameter or solver; sizes ``< 1``; non-positive or
            incommensurate ``horizon`` / ``dt``; non-positive tolerances; a grid too small.
    """
    _gen.split_key(split, seed=seed)  # validates split and seed
    envs = ENVIRONMENTS if envs is None else tuple(envs)
    if len(envs) < 1:
        raise ValueError("envs must hold at least one environment")
    base_params = SYSTEM.check_params(dict(params or {}))
    env_params = [SYSTEM.check_params({**base_params, **dict(e)}) for e in envs]
    n_env = len(envs)
    if n_per_env is not None and n_traj is not None:
        raise ValueError("give n_per_env or n_traj, not both")
    if n_traj is not None:
        _check_positive_int("n_traj", n_traj)
        if n_traj % n_env:
            raise ValueError(f"n_traj={n_traj} is not a multiple of the {n_env} environments")
        n_per_env = n_traj // n_env
    n_per_env = DEFAULT_N_PER_ENV[split] if n_per_env is None else n_per_env
    _check_positive_int("n_per_env", n_per_env)
    _check_positive_int("batch_size", batch_size)
    side = _check_blocks(size, n_blocks, block_size)
    _check_positive("horizon", horizon)
    _check_positive("dt", dt)
    ratio = horizon / dt
    if abs(ratio - round(ratio)) > 1e-6 * max(1.0, ratio):
        raise ValueError(f"horizon={horizon:g} is not a whole number of frames dt={dt:g}")
    n_frames = round(ratio) + 1
    if solver not in _SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; allowed: {', '.join(_SOLVERS)}")
    _check_positive("rtol", rtol)
    _check_positive("atol", atol)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")

    config = {
        "system": NAME, "split": split, "seed": int(seed), "n_per_env": int(n_per_env),
        "envs": [{k: float(v) for k, v in p.items()} for p in env_params],
        "size": int(size), "n_blocks": int(n_blocks), "block_size": side,
        "horizon": float(horizon), "dt": float(dt), "solver": solver,
        "rtol": float(rtol), "atol": float(atol), "dtype": dtype, "version": _VERSION,
    }

    def make() -> data.TrajectoryDataset:
        with jax.enable_x64(True):
            k_ic = jax.random.fold_in(_gen.split_key(split, seed=seed), 0)
            y0 = jax.vmap(
                lambda i: sample_initial(
                    1, key=jax.random.fold_in(k_ic, i), size=size, n_blocks=n_blocks, block_size=side
                )[0]
            )(jnp.arange(n_per_env))
            y0 = jnp.tile(y0, (n_env, 1, 1, 1))  # env-major: same initial states per env
            per_traj = {
                k: jnp.repeat(jnp.asarray([p[k] for p in env_params], jnp.float64), n_per_env)
                for k in PARAMS
            }
            ts = dt * np.arange(n_frames, dtype=np.float64)
            out_dtype = jnp.float32 if dtype == "float32" else jnp.float64

            def solve_one(y, p):
                ys = integrate(field, y, ts, solver=solver, rtol=rtol, atol=atol, args=p,
                               max_steps=100_000)
                return ys.astype(out_dtype)

            states = data.map_in_batches(
                lambda b: jax.vmap(solve_one)(*b), (y0, per_traj), batch_size,
                desc=f"{NAME} {split}",
            )
            return data.TrajectoryDataset(
                states=np.asarray(states),
                times=ts,
                params={k: np.asarray(v) for k, v in per_traj.items()},
                env=np.repeat(np.arange(n_env), n_per_env),
                split=split,
                system=NAME,
                config=config,
            )

    return data.cached(make, config, directory=cache_dir, enabled=cache)


SYSTEM = register(
    System(
        name=NAME,
        state_shape=(2, 32, 32),
        field=field,
        params=PARAMS,
        families=FAMILIES,
        sample_initial=sample_initial,
        generate=generate,
        description="Gray-Scott reaction-diffusion, 3 (F, k) environments, periodic 32x32 (LEADS)",
    )
)
