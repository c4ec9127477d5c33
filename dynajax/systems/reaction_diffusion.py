"""Reaction-diffusion (FitzHugh-Nagumo type): APHYNITY's first PDE benchmark.

.. math::

    \\partial_t u = a \\Delta u + u - u^3 - k - v, \\qquad
    \\partial_t v = b \\Delta v + u - v,

with ``a = 1e-3``, ``b = 5e-3``, ``k = 5e-3``, on ``[-1, 1]^2`` with periodic boundaries,
a ``32 x 32`` grid (``dx = 2 / 32``) and the five-point Laplacian with circular padding
(:func:`dynajax.systems.stencils.laplacian`, ``"5pt"``, ``"periodic"``). A state is
channels-first ``[2, H, W]`` = ``(u, v)``; ``dx = 2 / W`` follows from the grid size.

Data protocols (``generate(protocol=...)``):

``"thesis"`` (default; Ayed 2022, section 3.3.3; the protocol whose true-equation rollout
    errors match the physics-only rows of Table 3.4): the initial field ``U[0, 1]^{2 x H x W}`` is
    placed at ``t = -0.5`` and integrated by explicit Euler with ``dt_sim = 1e-3`` (the
    ground truth), saved every ``dt = 0.1``; the dataset keeps ``t = 0, 0.1, ..., 2.5``
    (26 frames, ``X0`` at ``t = 0``; models predict 25 steps).
``"code"`` (the released ``yuan-yin/APHYNITY`` ``datasets/rd.py``): ``X0`` is the random field
    itself at ``t = 0``, integrated with an adaptive Dormand-Prince 5(4) at scipy
    ``solve_ivp``'s default tolerances (``rtol=1e-3``, ``atol=1e-6``; the code calls
    ``method='RK45'``), frames ``t = 0, ..., 2.9`` (the code's ``arange(0, 3, 0.1)``: 30).

Sizes: the thesis generates 1920 sequences, "1600 for training/validation and 320 for
test". The defaults split the 1600 as 1280 train / 320 val, with 320 test
(:data:`DEFAULT_N_TRAJ`); every size is an argument. Random draws come from JAX keys
(:func:`dynajax.systems.generation.split_key`; stream 0 draws the initial fields, stream 2
the varying parameters, then ``fold_in`` of the trajectory index, so a smaller dataset is a
prefix of a larger one); they are not the code's ``numpy`` seeds.

Varying parameters (thesis Table 3.7, ``vary_params=True``): each sequence draws
``a ~ U[1e-3, 2e-3]`` and ``b ~ U[3e-3, 7e-3]`` (``k`` stays fixed); ``params`` holds them
per trajectory. The encoder's 5 reserved frames at ``t < 0`` (``t = -0.5, ..., -0.1``)
are kept at the *front* of ``states`` (``n_reserved=5``, the default when varying; the
``times`` then start at ``-0.5`` and ``X0`` is frame ``n_reserved``): use
:func:`split_reserved` to get ``(context, dataset from X0)``.

Physical families (APHYNITY priors): ``"diffusion"`` (``a``, ``b``: Param PDE (a, b), the
diffusion terms only) and ``"complete"`` (``a``, ``b``, ``k``: the full PDE). Their ``init``
is the released code's starting point, ``1e-2 * sigmoid(-2) = 1.19e-3`` for every
parameter: the code trains ``theta`` with ``a = 1e-2 * sigmoid(theta_a)`` (same for ``b``,
``k``), ``theta = -2`` initially; :func:`to_unconstrained` / :func:`from_unconstrained`
implement that map.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
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
    "DEFAULT_N_TRAJ",
    "FAMILIES",
    "NAME",
    "PARAMS",
    "PROTOCOLS",
    "SPLIT_INDEX",
    "SYSTEM",
    "VARYING_RANGES",
    "complete_field",
    "diffusion_field",
    "field",
    "from_unconstrained",
    "generate",
    "laplacian",
    "reaction",
    "sample_initial",
    "split_reserved",
    "to_unconstrained",
]

NAME = "reaction_diffusion"
DOMAIN_LENGTH = 2.0  # [-1, 1]^2
PARAMS: dict[str, float] = {"a": 1e-3, "b": 5e-3, "k": 5e-3}
VARYING_RANGES: dict[str, tuple[float, float]] = {"a": (1e-3, 2e-3), "b": (3e-3, 7e-3)}
DEFAULT_N_TRAJ: dict[str, int] = {"train": 1280, "val": 320, "test": 320}
SPLIT_INDEX = _gen.SPLIT_INDEX
PROTOCOLS = ("thesis", "code")
_PROTOCOL_DEFAULTS = {
    "thesis": {"horizon": 2.5, "dt": 0.1, "warmup": 0.5, "dt_sim": 1e-3},
    "code": {"horizon": 2.9, "dt": 0.1, "warmup": 0.0, "dt_sim": None},
}
_CODE_RTOL, _CODE_ATOL = 1e-3, 1e-6  # scipy solve_ivp defaults
_PARAM_SCALE = 1e-2  # code: a = 1e-2 * sigmoid(theta)
_THETA0 = -2.0
_INIT = _PARAM_SCALE / (1.0 + math.exp(-_THETA0))
_VERSION = 1


def laplacian(u: Float[Array, "*batch H W"]) -> Float[Array, "*batch H W"]:
    """Five-point periodic Laplacian on ``[-1, 1]^2``, ``dx = 2 / W``."""
    return stencils.laplacian(u, DOMAIN_LENGTH / u.shape[-1], stencil="5pt", boundary="periodic")


def reaction(y: Float[Array, "*batch 2 H W"], k) -> Float[Array, "*batch 2 H W"]:
    """The local reaction terms ``(u - u^3 - k - v, u - v)``."""
    u, v = y[..., 0, :, :], y[..., 1, :, :]
    return jnp.stack([u - u**3 - k - v, u - v], axis=-3)


def _diffusion(y, a, b):
    lap = laplacian(y)
    return jnp.stack([a * lap[..., 0, :, :], b * lap[..., 1, :, :]], axis=-3)


def field(t, y: Float[Array, "*batch 2 H W"], params: Mapping[str, Any]) -> Float[Array, "*batch 2 H W"]:
    """The true field ``(a Lap u + u - u^3 - k - v, b Lap v + u - v)``.

    Args:
        t: time (unused: autonomous).
        y: state ``[2, H, W]`` (leading batch axes allowed).
        params: ``a``, ``b``, ``k`` (scalars).
    """
    del t
    return _diffusion(y, params["a"], params["b"]) + reaction(y, params["k"])


def diffusion_field(t, y, theta: Mapping[str, Any]):
    """Param PDE (a, b): ``(a Lap u, b Lap v)``, the diffusion terms only."""
    del t
    return _diffusion(y, theta["a"], theta["b"])


def complete_field(t, y, theta: Mapping[str, Any]):
    """Param PDE (a, b, k): the full PDE."""
    return field(t, y, theta)


def to_unconstrained(value):
    """The code's raw parameter ``theta`` with ``value = 1e-2 * sigmoid(theta)``."""
    x = jnp.asarray(value) / _PARAM_SCALE
    return jnp.log(x) - jnp.log1p(-x)


def from_unconstrained(theta):
    """``1e-2 * sigmoid(theta)``: the code's map from raw to physical parameters."""
    return _PARAM_SCALE * jax.nn.sigmoid(theta)


FAMILIES = {
    "diffusion": PhysicalFamily(
        "diffusion",
        ("a", "b"),
        diffusion_field,
        {"a": _INIT, "b": _INIT},
        "diffusion only (a Lap u, b Lap v): leaves out the reaction terms",
    ),
    "complete": PhysicalFamily(
        "complete",
        ("a", "b", "k"),
        complete_field,
        {"a": _INIT, "b": _INIT, "k": _INIT},
        "the full PDE with unknown a, b, k",
    ),
}


def sample_initial(n: int, *, key: Array, size: int = 32) -> Float[Array, "n 2 size size"]:
    """``n`` initial fields ``U[0, 1]^{2 x size x size}`` (default float dtype)."""
    _check_positive_int("n", n)
    stencils.check_grid((size, size), "5pt", "periodic")
    return jax.random.uniform(key, (n, 2, size, size), dtype=jnp.zeros(()).dtype)


# -- data ----------------------------------------------------------------------------------


def _check_positive_int(name, value):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_positive(name, value):
    if value is None or not np.isfinite(value) or not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def _steps(name, span, step) -> int:
    """``span / step`` as a whole number, or ``ValueError``."""
    ratio = span / step
    n = round(ratio)
    if abs(ratio - n) > 1e-6 * max(1.0, ratio):
        raise ValueError(f"{name}: {span:g} is not a whole number of steps {step:g}")
    return n


def _check_dtype(dtype):
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def generate(
    split: str,
    *,
    n_traj: int | None = None,
    seed: int = 0,
    protocol: str = "thesis",
    params: Mapping[str, float] | None = None,
    vary_params: bool = False,
    n_reserved: int | None = None,
    size: int = 32,
    horizon: float | None = None,
    dt: float | None = None,
    warmup: float | None = None,
    dt_sim: float | None = None,
    dtype: str = "float32",
    batch_size: int = 64,
    cache: bool = True,
    cache_dir=None,
) -> data.TrajectoryDataset:
    """Reaction-diffusion trajectories for one split.

    Generated in float64 and stored as ``dtype`` (float32 by default, to keep the files
    small: 1280 train sequences are 1280 x 26 x 2 x 32 x 32 x 4 B = 272 MB in float32).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_traj: number of sequences (default :data:`DEFAULT_N_TRAJ`).
        seed: base seed (:func:`dynajax.systems.generation.split_key`; stream 0: initial
            fields, 2: varying parameters, then ``fold_in`` of the trajectory index).
        protocol: ``"thesis"`` or ``"code"`` (module docstring).
        params: overrides of :data:`PARAMS` (``a``, ``b``, ``k``).
        vary_params: draw ``a``, ``b`` per sequence from :data:`VARYING_RANGES`.
        n_reserved: frames before ``X0`` kept at the front of ``states`` (default 5 when
            ``vary_params``, else 0); they need ``n_reserved * dt <= warmup``.
        size: grid points per axis (``dx = 2 / size``).
        horizon: time of the last frame (thesis 2.5, code 2.9).
        dt: spacing of the saved frames (0.1).
        warmup: time between the random field and ``X0`` (thesis 0.5, code 0).
        dt_sim: explicit Euler step of the thesis protocol (1e-3); unused by ``"code"``.
        dtype: ``"float32"`` or ``"float64"`` storage.
        batch_size: sequences per compiled batch (memory, not results).
        cache: memoise on disk (:func:`dynajax.data.cached`).
        cache_dir: cache directory (default :func:`dynajax.data.cache_dir`).

    Returns:
        A :class:`~dynajax.data.TrajectoryDataset` with ``states [n, n_reserved + T, 2,
        size, size]`` (``T = horizon / dt + 1``), ``times`` from ``-n_reserved * dt``,
        ``params`` ``a``, ``b``, ``k`` per sequence, ``env`` all 0.

    Raises:
        ValueError: unknown split, protocol or parameter name; ``n_traj < 1``; a
            non-positive or incommensurate ``horizon``, ``dt``, ``dt_sim``; a negative
            ``warmup``; too few warm-up frames for ``n_reserved``; a grid too small.
    """
    _gen.split_key(split, seed=seed)  # validates split and seed
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    _check_dtype(dtype)
    n_traj = DEFAULT_N_TRAJ[split] if n_traj is None else n_traj
    _check_positive_int("n_traj", n_traj)
    _check_positive_int("batch_size", batch_size)
    if not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an integer, got {size!r}")
    stencils.check_grid((size, size), "5pt", "periodic")
    defaults = _PROTOCOL_DEFAULTS[protocol]
    horizon = defaults["horizon"] if horizon is None else float(horizon)
    dt = defaults["dt"] if dt is None else float(dt)
    warmup = defaults["warmup"] if warmup is None else float(warmup)
    dt_sim = defaults["dt_sim"] if dt_sim is None else float(dt_sim)
    _check_positive("horizon", horizon)
    _check_positive("dt", dt)
    if not (np.isfinite(warmup) and warmup >= 0):
        raise ValueError(f"warmup must be >= 0, got {warmup!r}")
    if protocol == "thesis":
        _check_positive("dt_sim", dt_sim)
        _steps("dt", dt, dt_sim)
    n_frames = _steps("horizon", horizon, dt) + 1
    n_warm = _steps("warmup", warmup, dt) if warmup > 0 else 0
    n_reserved = (5 if vary_params else 0) if n_reserved is None else n_reserved
    if not isinstance(n_reserved, (int, np.integer)) or n_reserved < 0:
        raise ValueError(f"n_reserved must be an integer >= 0, got {n_reserved!r}")
    if n_reserved > n_warm:
        raise ValueError(
            f"n_reserved={n_reserved} frames before X0 need warmup >= {n_reserved * dt:g}, got {warmup:g}"
        )
    system_params = SYSTEM.check_params(dict(params or {}))
    if vary_params and set(params or {}) & set(VARYING_RANGES):
        raise ValueError(f"vary_params=True draws {sorted(VARYING_RANGES)}; do not also fix them in params")

    config = {
        "system": NAME, "split": split, "seed": int(seed), "n_traj": int(n_traj),
        "protocol": protocol, "params": {k: float(v) for k, v in system_params.items()},
        "vary_params": bool(vary_params),
        "varying_ranges": {k: list(v) for k, v in VARYING_RANGES.items()} if vary_params else None,
        "n_reserved": int(n_reserved), "size": int(size), "horizon": horizon, "dt": dt,
        "warmup": warmup, "dt_sim": dt_sim if protocol == "thesis" else None,
        "solver": "euler" if protocol == "thesis" else "dopri5",
        "rtol": None if protocol == "thesis" else _CODE_RTOL,
        "atol": None if protocol == "thesis" else _CODE_ATOL,
        "dtype": dtype, "version": _VERSION,
    }

    def make() -> data.TrajectoryDataset:
        with jax.enable_x64(True):
            key = _gen.split_key(split, seed=seed)
            k_ic, k_par = jax.random.fold_in(key, 0), jax.random.fold_in(key, 2)
            idx = jnp.arange(n_traj)
            y0 = jax.vmap(lambda i: sample_initial(1, key=jax.random.fold_in(k_ic, i), size=size)[0])(idx)
            per_traj = {k: jnp.full((n_traj,), v, jnp.float64) for k, v in system_params.items()}
            if vary_params:  # trajectory i: fold_in(k_par, i), one uniform per parameter
                lo, hi = (jnp.asarray([r[j] for r in VARYING_RANGES.values()]) for j in (0, 1))
                drawn = jax.vmap(lambda i: jax.random.uniform(
                    jax.random.fold_in(k_par, i), (len(VARYING_RANGES),), jnp.float64, lo, hi))(idx)
                for j, name in enumerate(VARYING_RANGES):
                    per_traj[name] = drawn[:, j]
            # simulation save times: from the random field (t = -warmup) to the horizon
            ts = dt * np.arange(-n_warm, n_frames, dtype=np.float64)
            keep = n_warm - n_reserved
            out_dtype = jnp.float32 if dtype == "float32" else jnp.float64

            def solve_one(y, p):
                if protocol == "thesis":
                    ys = integrate(field, y, ts, solver="euler", dt0=dt_sim, args=p)
                else:
                    ys = integrate(field, y, ts, solver="dopri5", rtol=_CODE_RTOL, atol=_CODE_ATOL, args=p)
                return ys[keep:].astype(out_dtype)

            states = data.map_in_batches(
                lambda b: jax.vmap(solve_one)(*b), (y0, per_traj), batch_size,
                desc=f"{NAME} {split}",
            )
            return data.TrajectoryDataset(
                states=np.asarray(states),
                times=np.asarray(ts[keep:]),
                params={k: np.asarray(v) for k, v in per_traj.items()},
                env=np.zeros(n_traj, np.int64),
                split=split,
                system=NAME,
                config=config,
            )

    return data.cached(make, config, directory=cache_dir, enabled=cache)


def split_reserved(ds: data.TrajectoryDataset) -> tuple[np.ndarray, data.TrajectoryDataset]:
    """Splits off the reserved frames before ``X0`` (``ds.config["n_reserved"]``).

    Returns:
        ``(context [n, n_reserved, *state_shape], dataset from X0)``; the second has
        ``config["n_reserved"] = 0`` and ``times`` starting at ``X0``'s time.
    """
    r = int(ds.config.get("n_reserved", 0))
    rest = dataclasses.replace(
        ds, states=ds.states[:, r:], times=ds.times[r:], config={**ds.config, "n_reserved": 0}
    )
    return ds.states[:, :r], rest


SYSTEM = register(
    System(
        name=NAME,
        state_shape=(2, 32, 32),
        field=field,
        params=PARAMS,
        families=FAMILIES,
        sample_initial=sample_initial,
        generate=generate,
        description="FitzHugh-Nagumo reaction-diffusion on a periodic 32x32 grid (APHYNITY)",
    )
)
