"""Damped wave equation: APHYNITY's hyperbolic PDE benchmark.

.. math::

    \\partial_t^2 w - c^2 \\Delta w + k \\partial_t w = 0,

with ``c = 330``, ``k = 50``, written first order in the state ``X = (w, w_t)``
(channels-first ``[2, H, W]``) on a ``64 x 64`` grid with ``dx = 1``.

Two Laplacians, as in the released code (``yuan-yin/APHYNITY``):

* the **data** use the fourth-order stencil ``(-1/12, 4/3, -5/2, 4/3, -1/12)`` per axis,
  each axis' second difference being zero within 2 pixels of that axis' edges
  (``boundary="axis_valid"``, the code's ``state_xx[2:-2, :] = ...``); the paper calls this
  "null Neumann boundary conditions" (:func:`field`);
* the **models** (the physical families) use the three-point stencil per axis computed as a
  valid 3x3 convolution and zero-padded, i.e. zero on the 1-pixel frame
  (``boundary="valid"``; :func:`model_laplacian`).

The gap between the two is why even the "True PDE" does not reach zero error.

Initial condition ``w0 = exp(-((x - x0)^2 + (y - y0)^2) / s)``, ``w_t = 0``, with
``sigma ~ U[10, 100]``:

* thesis (default): centre ``(32, 32)``, ``s = sigma^2`` (the thesis formula, with the
  missing minus sign restored);
* code (``protocol="code"``): centre drawn from ``randint[20, 40)^2`` and ``s = sigma``.

Data protocols (``generate(protocol=...)``):

``"thesis"`` (default): 250 sequences (defaults: 200 train, 50 test, plus 50 validation,
    which the thesis does not have), each from its own initial condition, integrated with
    RK4 at ``dt = 1e-3`` (``solver="rk4_38"``: the code calls torchdiffeq's ``rk4``, which is
    the 3/8 rule) for ``start + n_steps`` steps. The stored sequence is ``X_{t0}, ...,
    X_{t0 + 25 dt}`` (``n_steps = 25``, 26 frames) with ``t0 = start * dt``. The thesis does
    not say which ``t0``; the default ``start = 0`` (``X_{t0}`` is the Gaussian at rest) is
    the start whose true-PDE rollout error matches the physics-only row of Table 3.4 (Ayed
    2022); later starts drift away from it (the ``systems-calibration`` record measures it).
``"code"``: **one** long simulation per split (one initial condition) of ``n_traj +
    n_steps`` frames, cut into ``n_traj`` sliding windows ``X_i, ..., X_{i + n_steps}``
    (the code's 25-frame windows are ``n_steps = 24``, the default for this protocol;
    200 train / 50 test windows). ``times`` are then relative to each window's start.

Varying celerity (thesis Table 3.8, ``vary_c=True``; thesis protocol only): each sequence
draws ``c ~ U[300, 400]``; ``params`` holds ``c`` and ``k`` per sequence. The encoder's 5
reserved frames before ``X_{t0}`` are kept at the front of ``states`` (``n_reserved = 5``
by default when varying, which needs ``start >= 5``; the default ``start`` becomes 5): see
:func:`dynajax.systems.reaction_diffusion.split_reserved` (re-exported here).

Physical families (model Laplacian): ``"undamped"`` (``c``): ``(v, c^2 Lap3 w)`` and
``"complete"`` (``c``, ``k``): ``(v, c^2 Lap3 w - k v)``. ``init`` is the code's: it trains
``theta_c`` with ``c = 100 theta_c`` and ``theta_c = 3.6`` initially (``c = 360``), and ``k``
raw from 45.
"""

from __future__ import annotations

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
from dynajax.systems.reaction_diffusion import split_reserved

__all__ = [
    "C_RANGE",
    "DEFAULT_N_TRAJ",
    "DX",
    "FAMILIES",
    "NAME",
    "PARAMS",
    "SIGMA_RANGE",
    "SPLIT_INDEX",
    "SYSTEM",
    "complete_field",
    "data_laplacian",
    "energy",
    "field",
    "generate",
    "model_laplacian",
    "sample_initial",
    "split_reserved",
    "undamped_field",
]

NAME = "wave"
DX = 1.0
PARAMS: dict[str, float] = {"c": 330.0, "k": 50.0}
C_RANGE = (300.0, 400.0)
SIGMA_RANGE = (10.0, 100.0)
DEFAULT_N_TRAJ: dict[str, int] = {"train": 200, "val": 50, "test": 50}
SPLIT_INDEX = _gen.SPLIT_INDEX
PROTOCOLS = ("thesis", "code")
_SOLVERS = ("rk4_38", "rk4")
_C_SCALE = 100.0  # code: c = 100 * theta_c
_VERSION = 1


def data_laplacian(w: Float[Array, "*batch H W"], *, boundary: str = "axis_valid") -> Float[Array, "*batch H W"]:
    """The data's fourth-order Laplacian (``dx = 1``), by default with the code's border."""
    return stencils.laplacian(w, DX, stencil="4th", boundary=boundary)


def model_laplacian(w: Float[Array, "*batch H W"]) -> Float[Array, "*batch H W"]:
    """The models' three-point-per-axis Laplacian: valid 3x3, then a zero 1-pixel frame."""
    return stencils.laplacian(w, DX, stencil="5pt", boundary="valid")


def _wave_field(y, c, k, lap):
    w, v = y[..., 0, :, :], y[..., 1, :, :]
    return jnp.stack([v, c**2 * lap(w) - k * v], axis=-3)


def field(t, y: Float[Array, "*batch 2 H W"], params: Mapping[str, Any]) -> Float[Array, "*batch 2 H W"]:
    """The data field ``(w_t, c^2 Lap4 w - k w_t)`` (fourth-order stencil, code border).

    Args:
        t: time (unused).
        y: ``(w, w_t)`` channels first, ``[2, H, W]`` (batch axes allowed).
        params: ``c``, ``k``.
    """
    del t
    return _wave_field(y, params["c"], params["k"], data_laplacian)


def undamped_field(t, y, theta):
    """Param PDE (c): ``(v, c^2 Lap3 w)`` with the model Laplacian."""
    del t
    return _wave_field(y, theta["c"], 0.0, model_laplacian)


def complete_field(t, y, theta):
    """Param PDE (c, k): ``(v, c^2 Lap3 w - k v)`` with the model Laplacian."""
    del t
    return _wave_field(y, theta["c"], theta["k"], model_laplacian)


def energy(
    y: Float[Array, "*batch 2 H W"], c, *, stencil: str = "4th", boundary: str = "periodic"
) -> Float[Array, "*batch"]:
    """Discrete energy ``1/2 sum w_t^2 - c^2/2 sum w * Lap w`` (``dx = 1``).

    For a symmetric negative semi-definite Laplacian (``"periodic"`` or ``"neumann"``) this
    is conserved by the undamped semi-discrete equation ``(w_t, c^2 Lap w)`` and decreases
    at rate ``k sum w_t^2`` with damping.
    """
    w, v = y[..., 0, :, :], y[..., 1, :, :]
    lap = stencils.laplacian(w, DX, stencil=stencil, boundary=boundary)
    return 0.5 * jnp.sum(v**2, axis=(-2, -1)) - 0.5 * c**2 * jnp.sum(w * lap, axis=(-2, -1))


FAMILIES = {
    "undamped": PhysicalFamily(
        "undamped", ("c",), undamped_field, {"c": 3.6 * _C_SCALE},
        "no damping: (v, c^2 Lap w); leaves out -k w_t",
    ),
    "complete": PhysicalFamily(
        "complete", ("c", "k"), complete_field, {"c": 3.6 * _C_SCALE, "k": 45.0},
        "the full damped wave equation with unknown c, k",
    ),
}


def _centre_range(size: int) -> tuple[int, int]:
    """The code's ``randint[20, 40)`` on 64 points, scaled to ``size``."""
    return round(size * 20 / 64), max(round(size * 40 / 64), round(size * 20 / 64) + 1)


def sample_initial(
    n: int,
    *,
    key: Array,
    size: int = 64,
    random_centre: bool = False,
    sigma_exponent: int = 2,
    sigma_range: tuple[float, float] = SIGMA_RANGE,
) -> Float[Array, "n 2 size size"]:
    """``n`` Gaussian bumps at rest: ``(exp(-r^2 / sigma^sigma_exponent), 0)``.

    Args:
        key: PRNG key.
        n: number of states.
        size: grid points per axis.
        random_centre: ``False`` (thesis): centre ``(size // 2, size // 2)``; ``True``
            (code): centre uniform in ``[20, 40)^2`` (scaled to ``size``).
        sigma_exponent: 2 (thesis, ``sigma^2``) or 1 (code, ``sigma``).
        sigma_range: ``sigma ~ U[lo, hi]``.
    """
    _check_positive_int("n", n)
    _check_size(size)
    if sigma_exponent not in (1, 2):
        raise ValueError(f"sigma_exponent must be 1 (code) or 2 (thesis), got {sigma_exponent!r}")
    lo, hi = (float(s) for s in sigma_range)
    if not 0 < lo <= hi:
        raise ValueError(f"sigma_range must satisfy 0 < lo <= hi, got {sigma_range!r}")
    dtype = jnp.zeros(()).dtype
    k_sigma, k_centre = jax.random.split(key)
    sigma = jax.random.uniform(k_sigma, (n,), dtype, lo, hi)
    if random_centre:
        c_lo, c_hi = _centre_range(size)
        centre = jax.random.randint(k_centre, (n, 2), c_lo, c_hi).astype(dtype)
    else:
        centre = jnp.full((n, 2), size // 2, dtype)
    grid = jnp.arange(size, dtype=dtype)
    # the code's meshgrid: x varies along columns (axis -1), y along rows (axis -2)
    r2 = (grid[None, None, :] - centre[:, 0, None, None]) ** 2 + (
        grid[None, :, None] - centre[:, 1, None, None]
    ) ** 2
    w = jnp.exp(-r2 / sigma[:, None, None] ** sigma_exponent)
    return jnp.stack([w, jnp.zeros_like(w)], axis=1)


def _check_positive_int(name, value, minimum=1):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_size(size):
    if not isinstance(size, (int, np.integer)):
        raise ValueError(f"size must be an integer, got {size!r}")
    stencils.check_grid((size, size), "4th", "axis_valid")


def generate(
    split: str,
    *,
    n_traj: int | None = None,
    seed: int = 0,
    protocol: str = "thesis",
    params: Mapping[str, float] | None = None,
    vary_c: bool = False,
    n_steps: int | None = None,
    start: int | None = None,
    n_reserved: int | None = None,
    dt: float = 1e-3,
    size: int = 64,
    random_centre: bool | None = None,
    sigma_exponent: int | None = None,
    solver: str = "rk4_38",
    boundary: str = "axis_valid",
    dtype: str = "float32",
    batch_size: int = 50,
    cache: bool = True,
    cache_dir=None,
) -> data.TrajectoryDataset:
    """Damped-wave trajectories for one split.

    Generated in float64 and stored as ``dtype`` (float32 by default, to keep files small).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        n_traj: sequences (thesis) or windows (code); default :data:`DEFAULT_N_TRAJ`.
        seed: base seed (:func:`dynajax.systems.generation.split_key`; stream 0: initial
            conditions, 2: celerities, then ``fold_in`` of the trajectory index).
        protocol: ``"thesis"`` or ``"code"`` (module docstring).
        params: overrides of :data:`PARAMS` (``c``, ``k``).
        vary_c: draw ``c ~ U[300, 400]`` per sequence (thesis protocol only).
        n_steps: predicted steps per sequence (thesis 25; code 24, i.e. 25-frame windows).
        start: steps simulated before ``X_{t0}`` (thesis protocol; default 0, or 5 when
            ``vary_c``).
        n_reserved: frames before ``X_{t0}`` kept at the front of ``states`` (default 5
            when ``vary_c``, else 0); needs ``n_reserved <= start``.
        dt: time step = frame spacing (1e-3).
        size: grid points per axis (64).
        random_centre, sigma_exponent: the initial condition (default: the protocol's).
        solver: ``"rk4_38"`` (torchdiffeq's ``rk4``, default) or ``"rk4"`` (classic).
        boundary: the data Laplacian's border (``"axis_valid"``: the code's; or
            ``"periodic"``, ``"neumann"``, ``"valid"``).
        dtype: ``"float32"`` or ``"float64"`` storage.
        batch_size: sequences per compiled batch.
        cache, cache_dir: see :func:`dynajax.data.cached`.

    Returns:
        A :class:`~dynajax.data.TrajectoryDataset` with ``states [n, n_reserved + n_steps +
        1, 2, size, size]``, ``params`` ``c``, ``k`` per sequence and ``env`` all 0.

    Raises:
        ValueError: unknown split, protocol, solver, boundary or parameter name; sizes
            ``< 1``; non-positive ``dt``; ``n_reserved > start``; ``vary_c`` with the code
            protocol; a grid too small for the stencils.
    """
    _gen.split_key(split, seed=seed)  # validates split and seed
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; allowed: {', '.join(PROTOCOLS)}")
    code = protocol == "code"
    if vary_c and code:
        raise ValueError("vary_c needs protocol='thesis' (the code protocol is one simulation per split)")
    n_traj = DEFAULT_N_TRAJ[split] if n_traj is None else n_traj
    _check_positive_int("n_traj", n_traj)
    _check_positive_int("batch_size", batch_size)
    n_steps = (24 if code else 25) if n_steps is None else n_steps
    _check_positive_int("n_steps", n_steps)
    start = (5 if vary_c else 0) if start is None else start
    _check_positive_int("start", start, minimum=0)
    n_reserved = (5 if vary_c else 0) if n_reserved is None else n_reserved
    _check_positive_int("n_reserved", n_reserved, minimum=0)
    if n_reserved > start:
        raise ValueError(f"n_reserved={n_reserved} frames before X_t0 need start >= {n_reserved}, got {start}")
    if code and (start or n_reserved):
        raise ValueError("start and n_reserved apply to the thesis protocol only")
    if dt is None or not np.isfinite(dt) or not dt > 0:
        raise ValueError(f"dt must be positive, got {dt!r}")
    _check_size(size)
    stencils.check_grid((size, size), "4th", boundary)
    random_centre = code if random_centre is None else bool(random_centre)
    sigma_exponent = (1 if code else 2) if sigma_exponent is None else sigma_exponent
    if solver not in _SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; allowed: {', '.join(_SOLVERS)}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    system_params = SYSTEM.check_params(dict(params or {}))
    if vary_c and "c" in (params or {}):
        raise ValueError("vary_c=True draws c; do not also fix it in params")
    sample_initial(1, key=jax.random.key(0), size=size, sigma_exponent=sigma_exponent)  # validates

    config = {
        "system": NAME, "split": split, "seed": int(seed), "n_traj": int(n_traj),
        "protocol": protocol, "params": {k: float(v) for k, v in system_params.items()},
        "vary_c": bool(vary_c), "c_range": list(C_RANGE) if vary_c else None,
        "n_steps": int(n_steps), "start": int(start), "n_reserved": int(n_reserved),
        "dt": float(dt), "size": int(size), "random_centre": random_centre,
        "sigma_exponent": int(sigma_exponent), "sigma_range": list(SIGMA_RANGE),
        "solver": solver, "boundary": boundary, "dtype": dtype, "version": _VERSION,
    }
    out_dtype = jnp.float32 if dtype == "float32" else jnp.float64

    def lap_field(t, y, p):
        del t
        return _wave_field(y, p["c"], p["k"], lambda w: data_laplacian(w, boundary=boundary))

    def make_thesis() -> data.TrajectoryDataset:
        with jax.enable_x64(True):
            key = _gen.split_key(split, seed=seed)
            k_ic, k_c = jax.random.fold_in(key, 0), jax.random.fold_in(key, 2)
            idx = jnp.arange(n_traj)
            y0 = jax.vmap(
                lambda i: sample_initial(
                    1, key=jax.random.fold_in(k_ic, i), size=size, random_centre=random_centre,
                    sigma_exponent=sigma_exponent,
                )[0]
            )(idx)
            per_traj = {k: jnp.full((n_traj,), v, jnp.float64) for k, v in system_params.items()}
            if vary_c:
                per_traj["c"] = jax.vmap(
                    lambda i: jax.random.uniform(jax.random.fold_in(k_c, i), (), jnp.float64, *C_RANGE)
                )(idx)
            ts = dt * np.arange(start + n_steps + 1, dtype=np.float64)
            keep = start - n_reserved

            def solve_one(y, p):
                ys = integrate(lap_field, y, ts, solver=solver, dt0=dt, args=p)
                return ys[keep:].astype(out_dtype)

            states = data.map_in_batches(
                lambda b: jax.vmap(solve_one)(*b), (y0, per_traj), batch_size,
                desc=f"{NAME} {split}",
            )
            return data.TrajectoryDataset(
                states=np.asarray(states), times=ts[keep:],
                params={k: np.asarray(v) for k, v in per_traj.items()},
                env=np.zeros(n_traj, np.int64), split=split, system=NAME, config=config,
            )

    def make_code() -> data.TrajectoryDataset:
        with jax.enable_x64(True):
            y0 = sample_initial(
                1, key=jax.random.fold_in(_gen.split_key(split, seed=seed), 0), size=size,
                random_centre=random_centre, sigma_exponent=sigma_exponent,
            )[0]
            p = {k: jnp.asarray(v, jnp.float64) for k, v in system_params.items()}
            ts = dt * np.arange(n_traj + n_steps, dtype=np.float64)
            long = np.asarray(
                jax.jit(lambda y: integrate(lap_field, y, ts, solver=solver, dt0=dt, args=p))(y0)
                .astype(out_dtype)
            )
            windows = np.lib.stride_tricks.sliding_window_view(long, n_steps + 1, axis=0)[:n_traj]
            states = np.ascontiguousarray(np.moveaxis(windows, -1, 1))
            return data.TrajectoryDataset(
                states=states, times=ts[: n_steps + 1],
                params={k: np.full(n_traj, float(v)) for k, v in system_params.items()},
                env=np.zeros(n_traj, np.int64), split=split, system=NAME, config=config,
            )

    return data.cached(make_code if code else make_thesis, config, directory=cache_dir, enabled=cache)


SYSTEM = register(
    System(
        name=NAME,
        state_shape=(2, 64, 64),
        field=field,
        params=PARAMS,
        families=FAMILIES,
        sample_initial=sample_initial,
        generate=generate,
        description="damped wave equation w_tt = c^2 Lap w - k w_t on 64x64 (APHYNITY)",
    )
)
