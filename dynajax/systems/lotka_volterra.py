"""Lotka-Volterra predator-prey system (LEADS): ``u' = alpha u - beta u v``, ``v' = delta u v - gamma v``.

State ``y = (u, v)`` (prey, predator). The quantity
``V = delta u - gamma ln u + beta v - alpha ln v`` is conserved (:func:`conserved_quantity`).

Environments (LEADS):

* :data:`ENVIRONMENTS` -- the released code's 10 training environments: ``beta = delta = 0.5``
  and ``(alpha, gamma)`` in ``(0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (1, 0.5), (0.5, 0.25),
  (0.5, 0.75), (0.5, 1), (0.25, 0.25), (0.75, 0.75), (1, 1)``.
* :data:`NOVEL_ENVIRONMENTS` -- two environments for the adaptation experiment (thesis
  Table 3.13). They are not in the released code; the thesis draws the ratios
  ``(alpha / beta, gamma / delta)`` from ``{0.5, 1, 1.44, 1.5, 1.86, 2}``, and the training
  environments use ratios ``{0.5, 1, 1.5, 2}`` only, so the novel ones here take the two
  remaining values: ``(alpha, gamma) = (0.72, 0.93)`` and ``(0.93, 0.72)`` with
  ``beta = delta = 0.5`` (ratios ``(1.44, 1.86)`` and ``(1.86, 1.44)``). This is our choice.

Data (code): ``K = 20`` frames at ``dt = 0.5`` (``t = 0, ..., 9.5``); initial conditions
``(u0, v0) ~ U[1, 2]^2``, identical across environments (trajectory ``i`` of every
environment starts from the same state) and drawn with JAX's PRNG (the code seeds numpy
with the trajectory index, or ``INT32_MAX - index`` for the test split). Training uses 1
trajectory per environment, test 32. The code integrates with scipy's RK45 at its default
tolerances (``rtol=1e-3``, ``atol=1e-6``), which leaves an error floor of about ``1e-5``
against an exact solution; :func:`generate` defaults to accurate data (Dopri8,
``rtol=1e-10``, ``atol=1e-12``), and ``generate(..., **SCIPY_RK45_DEFAULTS)`` mimics the
code with diffrax's Dopri5 at those tolerances (the same tableau and tolerances as scipy's
RK45, but not its exact step-size controller, so not bit-identical). No noise by default.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
from collections.abc import Mapping, Sequence
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
    "ENVIRONMENTS",
    "NOVEL_ENVIRONMENTS",
    "N_PER_ENV",
    "IC_RANGE",
    "SCIPY_RK45_DEFAULTS",
    "FAMILIES",
    "SYSTEM",
    "field",
    "conserved_quantity",
    "sample_initial",
    "resolve_envs",
    "generate",
]

NAME = "lotka_volterra"
VERSION = 1
PARAMS: dict[str, float] = {"alpha": 0.5, "beta": 0.5, "gamma": 0.5, "delta": 0.5}


def _env(alpha: float, gamma: float) -> dict[str, float]:
    return {"alpha": alpha, "beta": 0.5, "gamma": gamma, "delta": 0.5}


ENVIRONMENTS: tuple[dict[str, float], ...] = tuple(
    _env(a, g)
    for a, g in [(0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (1.0, 0.5), (0.5, 0.25),
                 (0.5, 0.75), (0.5, 1.0), (0.25, 0.25), (0.75, 0.75), (1.0, 1.0)]
)
NOVEL_ENVIRONMENTS: tuple[dict[str, float], ...] = (_env(0.72, 0.93), _env(0.93, 0.72))
N_PER_ENV = {"train": 1, "val": 32, "test": 32}
IC_RANGE = (1.0, 2.0)
SCIPY_RK45_DEFAULTS: dict[str, Any] = {"solver": "dopri5", "rtol": 1e-3, "atol": 1e-6}


def field(t, y: Float[Array, "2"], params: Mapping[str, Any]) -> Float[Array, "2"]:
    """The Lotka-Volterra field for one state ``(u, v)``."""
    del t
    u, v = y[0], y[1]
    return jnp.stack([
        params["alpha"] * u - params["beta"] * u * v,
        params["delta"] * u * v - params["gamma"] * v,
    ])


def conserved_quantity(y: Float[ArrayLike, "... 2"], params: Mapping[str, Any]) -> Float[Array, "..."]:
    """``V = delta u - gamma ln u + beta v - alpha ln v``, constant along exact trajectories."""
    p = SYSTEM.check_params(params)
    y = jnp.asarray(y)
    u, v = y[..., 0], y[..., 1]
    return p["delta"] * u - p["gamma"] * jnp.log(u) + p["beta"] * v - p["alpha"] * jnp.log(v)


FAMILIES: dict[str, PhysicalFamily] = {
    "complete": PhysicalFamily(
        name="complete",
        param_names=("alpha", "beta", "gamma", "delta"),
        field=field,
        init=dict(PARAMS),
        description="the full Lotka-Volterra equations (the true field's family)",
    ),
}


def sample_initial(
    n: int, *, key: Array, ic_range: tuple[float, float] = IC_RANGE
) -> Float[Array, "n 2"]:
    """``(u0, v0) ~ U[ic_range]^2``; trajectory ``i`` uses ``fold_in(key, i)``.

    Returns:
        ``[n, 2]`` initial states (JAX's default float dtype).
    """
    n = _gen.check_count("n", n)
    lo, hi = _gen.check_range("ic_range", ic_range, positive=True)
    return _sample_initial(key, n, lo, hi)


@functools.partial(jax.jit, static_argnums=1)
def _sample_initial(key, n, lo, hi):
    draw = lambda i: jax.random.uniform(jax.random.fold_in(key, i), (2,), minval=lo, maxval=hi)
    return jax.vmap(draw)(jnp.arange(n))


def resolve_envs(envs: Sequence[int | Mapping[str, float]] | None = None) -> list[dict[str, float]]:
    """Environment parameter dicts from indices into :data:`ENVIRONMENTS` and/or dicts.

    Args:
        envs: ``None`` (all of :data:`ENVIRONMENTS`), or a sequence whose items are indices
            into :data:`ENVIRONMENTS` or parameter mappings (missing names take
            :data:`PARAMS`), e.g. ``NOVEL_ENVIRONMENTS``.

    Raises:
        ValueError: empty sequence, index out of range, unknown parameter name.
    """
    if envs is None:
        return [dict(e) for e in ENVIRONMENTS]
    if isinstance(envs, (str, Mapping)) or not isinstance(envs, Sequence) or len(envs) == 0:
        raise ValueError(f"envs must be a non-empty sequence of environment indices or parameter dicts, got {envs!r}")
    out = []
    for e in envs:
        if isinstance(e, Mapping):
            p = {k: float(v) for k, v in SYSTEM.check_params(e).items()}
            if not all(math.isfinite(v) for v in p.values()):
                raise ValueError(f"environment parameters must be finite, got {p}")
            out.append(p)
        elif isinstance(e, numbers.Integral) and not isinstance(e, bool):
            if not 0 <= e < len(ENVIRONMENTS):
                raise ValueError(
                    f"environment index {e} out of range: there are {len(ENVIRONMENTS)} training "
                    f"environments (0..{len(ENVIRONMENTS) - 1}); pass parameter dicts for others"
                )
            out.append(dict(ENVIRONMENTS[int(e)]))
        else:
            raise ValueError(f"an environment is an index or a parameter dict, got {e!r}")
    return out


def _simulate(key_ic, key_noise, envs, n_per_env, times, ic_range, noise_std, solver, rtol, atol):
    """ICs (shared across environments), solves and noise; module-level for monkeypatching."""
    with jax.enable_x64(True):
        y0 = sample_initial(n_per_env, key=key_ic, ic_range=ic_range)
        env_params = {k: np.asarray([e[k] for e in envs]) for k in PARAMS}
        return _gen.simulate_envs(field, y0, env_params, times, key=key_noise,
                                  noise_std=noise_std, solver=solver, rtol=rtol, atol=atol)


def generate(
    split: str,
    *,
    envs: Sequence[int | Mapping[str, float]] | None = None,
    n_per_env: int | None = None,
    seed: int = 0,
    noise_std: float = 0.0,
    horizon: float = 10.0,
    dt: float = 0.5,
    ic_range: tuple[float, float] = IC_RANGE,
    solver: str = "dopri8",
    rtol: float = 1e-10,
    atol: float = 1e-12,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> data.TrajectoryDataset:
    """LEADS Lotka-Volterra trajectories of one split, over several environments.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        envs: environments (see :func:`resolve_envs`); default the 10 training ones.
            Environment ids in the dataset are positions in this list.
        n_per_env: trajectories per environment (default 1 train / 32 val / 32 test).
        seed: base seed; split ``s`` uses ``fold_in(key(seed), SPLIT_INDEX[s])``.
        noise_std: std of white Gaussian noise added to the stored states (default 0).
        horizon, dt: frames at ``0, dt, ..., horizon - dt`` (``K = 20`` by default).
        ic_range: ``(u0, v0) ~ U[ic_range]^2``.
        solver, rtol, atol: the adaptive solver; ``**SCIPY_RK45_DEFAULTS`` mimics the code.
        cache: memoise on disk; ``cache_dir`` overrides the directory.

    Returns:
        a dataset with float64 ``states [m * n_per_env, K, 2]`` ordered environment-major,
        ``env`` ids, and per-trajectory ``params`` ``alpha``, ``beta``, ``gamma``, ``delta``.
    """
    key = _gen.split_key(split, seed=seed)
    env_params = resolve_envs(envs)
    n_per_env = _gen.check_count("n_per_env", N_PER_ENV[split] if n_per_env is None else n_per_env)
    times = _gen.time_grid(horizon, dt)
    noise_std = _gen.check_noise(noise_std)
    ic_range = _gen.check_range("ic_range", ic_range, positive=True)
    config = {
        "system": NAME, "split": split, "seed": int(seed), "envs": env_params,
        "n_per_env": n_per_env, "noise_std": noise_std, "horizon": float(horizon),
        "dt": float(dt), "ic_range": list(ic_range), "solver": solver, "rtol": float(rtol),
        "atol": float(atol), "version": VERSION,
    }

    def build() -> data.TrajectoryDataset:
        states, per_traj = _simulate(jax.random.fold_in(key, 0), jax.random.fold_in(key, 1),
                                     env_params, n_per_env, times, ic_range, noise_std,
                                     solver, rtol, atol)
        env = np.repeat(np.arange(len(env_params), dtype=np.int32), n_per_env)
        return data.TrajectoryDataset(
            states=states, times=times, params=per_traj, env=env, split=split, system=NAME,
            config=config,
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
        description="Lotka-Volterra predator-prey equations, 10 LEADS environments",
    )
)
