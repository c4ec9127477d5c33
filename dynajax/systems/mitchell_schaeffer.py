"""Mitchell-Schaeffer cardiac electrophysiology in 2-D, with scars (thesis sec. 2.7, EP-Net 2.0).

.. math::

    \\partial_t v = \\nabla\\cdot(\\sigma \\nabla v) + \\frac{h v^2 (1 - v)}{\\tau_{in}}
        - \\frac{v}{\\tau_{out}} + J_{stim}(x, t), \\qquad
    \\frac{dh}{dt} = \\begin{cases} (1 - h)/\\tau_{open} & v < v_{gate} \\\\
        -h/\\tau_{close} & v \\ge v_{gate} \\end{cases}

(Mitchell & Schaeffer 2003, "A two-current model for the dynamics of cardiac membrane", Bull.
Math. Biol. 65; thesis eqs. 2.9-2.10, whose gate equation is misprinted: this is the model's form).
Units are ms and mm; defaults are the thesis' 2-D values ``tau_in = 0.3``, ``tau_out = 6``,
``tau_open = 120``, ``tau_close = 150``, ``v_gate = 0.13`` (:data:`PARAMS`). A state is
channels-first ``[2, H, W]`` = ``(v, h)`` on a cell-centred grid of spacing ``dx`` (1 mm: the
thesis' 24 x 24 mm^2 slab with 1 mm^2 pixels).

Tissue and scars: ``tissue [H, W]`` is 1 on conducting tissue and 0 on scar. The diffusion is
in conservative (finite-volume) form with the harmonic mean of the cell conductivities
``c = sigma * tissue`` on each face, so a face touching a scar carries no flux, and the domain
edges are no-flux (Neumann). Inside the scar the tissue is masked: ``v = h = 0`` and both
derivatives are zero, so nothing propagates into or through a scar and the scar stays at the
thesis' constraint ``X|_scar = 0`` (eq. 2.12). The resting state ``(v, h) = (0, 1)`` on tissue
is a fixed point.

Stimulus: ``J_stim = amplitude * stimulus(x)`` for ``t < duration`` (thesis: 10 ms, amplitude
1); :func:`sample_stimulus` draws 3 x 3-pixel onsets on tissue (a single stimulated pixel
does not start a wave at large ``sigma``: its current diffuses away faster than it depolarises
the pixel, a source-sink mismatch).

Time stepping: explicit Euler with ``dt`` (default 0.02 ms; explicit diffusion needs
``dt <= dx^2 / (4 sigma)``, so the thesis' 0.1 ms LBM step is too large here), states saved
every ``frame_dt`` (1 ms). :func:`simulate` is one simulation (``lax.scan`` over frames and
steps); :func:`simulate_batch` vmaps it over tissues, stimuli and conductivities under ``jit``.

Scar shapes (:data:`SHAPES`, :func:`sample_scars`): ``"rectangle"`` (the thesis' training
scars: random size and position), and the out-of-distribution test shapes ``"triangle"``,
``"circle"`` and ``"complex"`` (the union of a rectangle, a disk and a triangle around a
common centre), all at least 4 px thick.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from dynajax import data
from dynajax.systems.base import System, register

__all__ = [
    "NAME",
    "PARAMS",
    "SHAPES",
    "SYSTEM",
    "diffusion",
    "field",
    "generate",
    "reaction",
    "resting_state",
    "sample_scars",
    "sample_stimulus",
    "simulate",
    "simulate_batch",
    "travelling_wave_speed",
]

NAME = "mitchell_schaeffer"
PARAMS: dict[str, float] = {
    "tau_in": 0.3, "tau_out": 6.0, "tau_open": 120.0, "tau_close": 150.0, "v_gate": 0.13, "sigma": 2.0,
}
SHAPES = ("rectangle", "triangle", "circle", "complex")


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    unknown = set(params) - set(PARAMS)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; allowed: {', '.join(PARAMS)}")
    return {**PARAMS, **params}


def reaction(v: Array, h: Array, params: Mapping[str, Any] | None = None) -> tuple[Array, Array]:
    """The local (ionic) terms: ``(dv/dt, dh/dt)`` without diffusion and stimulus."""
    p = _params(params)
    dv = h * v**2 * (1.0 - v) / p["tau_in"] - v / p["tau_out"]
    dh = jnp.where(v < p["v_gate"], (1.0 - h) / p["tau_open"], -h / p["tau_close"])
    return dv, dh


def diffusion(v: Float[Array, "... H W"], conductivity: Float[Array, "... H W"], dx: float = 1.0) -> Array:
    """``div(c grad v)``: finite volumes, harmonic-mean face conductivities, no-flux edges.

    ``conductivity`` (``sigma * tissue``) is zero on scar, so faces touching it carry no flux.
    """
    v = jnp.asarray(v)
    return _diffusion(v, jnp.broadcast_to(jnp.asarray(conductivity, v.dtype), v.shape), dx)


@jax.jit
def _diffusion(v, conductivity, dx):
    def faces(a, b):
        return jnp.where((a > 0) & (b > 0), 2.0 * a * b / jnp.where(a + b > 0, a + b, 1.0), 0.0)

    out = jnp.zeros_like(v)
    for axis in (-2, -1):
        n = v.shape[axis]
        lo_v, hi_v = (jax.lax.slice_in_dim(v, a, b, axis=axis) for a, b in ((0, n - 1), (1, n)))
        lo_c, hi_c = (jax.lax.slice_in_dim(conductivity, a, b, axis=axis) for a, b in ((0, n - 1), (1, n)))
        flux = faces(lo_c, hi_c) * (hi_v - lo_v)  # [.., n - 1, ..]: the flux through each inner face
        pad = [(0, 0)] * v.ndim
        pad[axis] = (1, 0)
        f_left = jnp.pad(flux, pad)  # flux through each cell's low face (0 at the edge)
        pad[axis] = (0, 1)
        f_right = jnp.pad(flux, pad)
        out = out + f_right - f_left
    return out / dx**2


def field(t, y: Float[Array, "2 H W"], params: Mapping[str, Any] | None = None, *, tissue=None,
          stimulus=None, duration: float = 10.0, amplitude: float = 1.0, dx: float = 1.0) -> Array:
    """``dy/dt`` for ``y = (v, h)`` (eqs. 2.9-2.10); ``tissue``/``stimulus`` default to none/no scar."""
    p = _params(params)
    v, h = y[0], y[1]
    tissue = jnp.ones_like(v) if tissue is None else jnp.asarray(tissue, v.dtype)
    dv, dh = reaction(v, h, p)
    dv = dv + diffusion(v, p["sigma"] * tissue, dx)
    if stimulus is not None:
        dv = dv + amplitude * jnp.asarray(stimulus, v.dtype) * (t < duration)
    return jnp.stack([dv, dh]) * tissue


def resting_state(tissue: Float[Array, "... H W"]) -> Float[Array, "... 2 H W"]:
    """``(v, h) = (0, 1)`` on tissue, ``(0, 0)`` on scar: a fixed point without stimulus."""
    tissue = jnp.asarray(tissue)
    return jnp.stack([jnp.zeros_like(tissue), tissue], axis=-3)


def _check_stepping(dt: float, frame_dt: float, dx: float, sigma_max: float | None) -> int:
    if not (dt > 0 and frame_dt > 0 and dx > 0):
        raise ValueError(f"dt, frame_dt and dx must be > 0, got {dt}, {frame_dt}, {dx}")
    n_sub = round(frame_dt / dt)
    if n_sub < 1 or not math.isclose(n_sub * dt, frame_dt, rel_tol=1e-6):
        raise ValueError(f"frame_dt = {frame_dt} must be a whole multiple of dt = {dt}")
    if sigma_max is not None and dt > dx**2 / (4 * sigma_max) * (1 + 1e-9):
        raise ValueError(f"explicit diffusion is unstable: dt = {dt} > dx^2 / (4 sigma) = {dx**2 / (4 * sigma_max):.4g}")
    return n_sub


def _concrete_max(x) -> float | None:
    try:
        return float(np.max(np.asarray(x)))
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def simulate(tissue: Float[Array, "H W"], stimulus: Float[Array, "H W"], sigma, *, n_frames: int = 30,
             frame_dt: float = 1.0, dt: float = 0.02, dx: float = 1.0, duration: float = 10.0,
             amplitude: float = 1.0, params: Mapping[str, Any] | None = None, y0=None) -> Float[Array, "T 2 H W"]:
    """One simulation from rest (or ``y0``): states ``[n_frames + 1, 2, H, W]`` every ``frame_dt``.

    Args:
        tissue: ``[H, W]``, 1 on tissue, 0 on scar.
        stimulus: ``[H, W]`` stimulated pixels (0/1), active for ``t < duration``.
        sigma: conductivity (scalar, or an ``[H, W]`` map), ``mm^2/ms``.
        n_frames, frame_dt, dt, dx: saved frames, their spacing, the Euler step, the grid step.
        duration, amplitude: the stimulus current ``J_stim``.
        params: overrides of :data:`PARAMS` (its ``sigma`` is ignored: pass ``sigma``).
        y0: initial state ``[2, H, W]`` (default :func:`resting_state`).
    """
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be an integer >= 1, got {n_frames!r}")
    _check_stepping(dt, frame_dt, dx, _concrete_max(sigma))
    p = _params(params)
    p.pop("sigma")
    tissue = jnp.asarray(tissue, jnp.float32)
    y0 = resting_state(tissue) if y0 is None else jnp.asarray(y0, tissue.dtype)
    return _simulate(tissue, jnp.asarray(stimulus, tissue.dtype), jnp.asarray(sigma, tissue.dtype), y0,
                     int(n_frames), float(frame_dt), float(dt), float(dx), float(duration), float(amplitude),
                     tuple(sorted(p.items())))


@functools.partial(jax.jit, static_argnums=tuple(range(4, 11)))
def _simulate(tissue, stimulus, sigma, y0, n_frames, frame_dt, dt, dx, duration, amplitude, params_items):
    n_sub = round(frame_dt / dt)
    p = dict(params_items, sigma=sigma)
    stim = stimulus * tissue
    y0 = y0 * tissue

    def euler(carry, _):
        y, k = carry
        t = k * dt
        return (y + dt * field(t, y, p, tissue=tissue, stimulus=stim, duration=duration,
                               amplitude=amplitude, dx=dx), k + 1), None

    def frame(carry, _):
        carry, _ = jax.lax.scan(euler, carry, None, length=n_sub)
        return carry, carry[0]

    _, ys = jax.lax.scan(frame, (y0, jnp.asarray(0, jnp.int32)), None, length=n_frames)
    return jnp.concatenate([y0[None], ys])


@functools.partial(jax.jit, static_argnames=("n_frames", "frame_dt", "dt", "dx", "duration", "amplitude"))
def _simulate_batch(tissue, stimulus, sigma, n_frames, frame_dt, dt, dx, duration, amplitude):
    p = dict(PARAMS)
    p.pop("sigma")
    sim = lambda t, s, c: _simulate(t, s, c, resting_state(t), n_frames, frame_dt, dt, dx, duration, amplitude,
                                    tuple(sorted(p.items())))
    return jax.vmap(sim)(tissue, stimulus, sigma)


def simulate_batch(tissue: Float[Array, "B H W"], stimulus: Float[Array, "B H W"], sigma: Float[Array, " B"], *,
                   n_frames: int = 30, frame_dt: float = 1.0, dt: float = 0.02, dx: float = 1.0,
                   duration: float = 10.0, amplitude: float = 1.0) -> Float[Array, "B T 2 H W"]:
    """:func:`simulate` (default :data:`PARAMS`) vmapped over tissues, stimuli and (scalar)
    conductivities, jitted."""
    tissue, stimulus, sigma = (jnp.asarray(a, jnp.float32) for a in (tissue, stimulus, sigma))
    if tissue.ndim != 3 or stimulus.shape != tissue.shape or sigma.shape != tissue.shape[:1]:
        raise ValueError(f"need tissue/stimulus [B, H, W] and sigma [B], got {tissue.shape}, "
                         f"{stimulus.shape}, {sigma.shape}")
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be an integer >= 1, got {n_frames!r}")
    _check_stepping(dt, frame_dt, dx, float(np.max(np.asarray(sigma))))
    return _simulate_batch(tissue, stimulus, sigma, int(n_frames), float(frame_dt), float(dt), float(dx),
                           float(duration), float(amplitude))


# -- scars and stimuli -------------------------------------------------------------------------


def _grid(size: int):
    return jnp.meshgrid(jnp.arange(size, dtype=jnp.float32), jnp.arange(size, dtype=jnp.float32), indexing="ij")


def _rectangle(key, size, centre, scale):
    gi, gj = _grid(size)
    half = jax.random.uniform(key, (2,), minval=2.0, maxval=5.0) * scale
    return (jnp.abs(gi - centre[0]) <= half[0]) & (jnp.abs(gj - centre[1]) <= half[1])


def _disk(key, size, centre, scale):
    gi, gj = _grid(size)
    r = jax.random.uniform(key, (), minval=2.5, maxval=5.0) * scale
    return (gi - centre[0]) ** 2 + (gj - centre[1]) ** 2 <= r**2


def _triangle(key, size, centre, scale):
    """Equilateral triangle of circumradius ``R`` (inradius ``R/2``), random orientation."""
    gi, gj = _grid(size)
    kr, ka = jax.random.split(key)
    R = jax.random.uniform(kr, (), minval=4.5, maxval=7.5) * scale
    theta = jax.random.uniform(ka, (), maxval=2 * jnp.pi)
    inside = jnp.ones(gi.shape, bool)
    for k in range(3):  # the three edges: normals towards the edge midpoints
        a = theta + jnp.pi / 3 + 2 * jnp.pi * k / 3
        inside &= (gi - centre[0]) * jnp.cos(a) + (gj - centre[1]) * jnp.sin(a) <= R / 2
    return inside


def _one_scar(key, size: int, shape_index):
    # every shape is drawn and one is selected: one compiled program for all of SHAPES
    kc, ks, ko = jax.random.split(key, 3)
    centre = jax.random.uniform(kc, (2,), minval=0.3 * size, maxval=0.7 * size)
    k1, k2, k3 = jax.random.split(ks, 3)
    off = jax.random.uniform(ko, (3, 2), minval=-4.0, maxval=4.0)
    complex_ = (_rectangle(k1, size, centre + off[0], 0.8) | _disk(k2, size, centre + off[1], 0.8)
                | _triangle(k3, size, centre + off[2], 0.8))
    shapes = [_rectangle(k1, size, centre, 1.0), _triangle(k3, size, centre, 1.0), _disk(k2, size, centre, 1.0),
              complex_]  # the order of SHAPES
    return jnp.stack(shapes)[shape_index]


def sample_scars(n: int, size: int = 24, shape: str = "rectangle", *, key: Array) -> Float[Array, "n size size"]:
    """``n`` scar masks (1 on scar) of one shape in :data:`SHAPES`, random size and position."""
    if shape not in SHAPES:
        raise ValueError(f"unknown scar shape {shape!r}; allowed: {', '.join(SHAPES)}")
    if size < 12:
        raise ValueError(f"size must be >= 12 pixels for the scar shapes, got {size}")
    return _sample_scars(key, int(n), int(size), SHAPES.index(shape))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _sample_scars(key, n, size, shape_index):
    return jax.vmap(lambda k: _one_scar(k, size, shape_index))(jax.random.split(key, n)).astype(jnp.float32)


def sample_stimulus(tissue: Float[Array, "n H W"], n_onsets: int = 1, width: int = 3, *, key: Array) -> Array:
    """``[n, H, W]`` stimuli: ``n_onsets`` ``width x width`` blocks wholly on tissue, uniformly placed."""
    if n_onsets < 1 or width < 1:
        raise ValueError(f"n_onsets and width must be >= 1, got {n_onsets}, {width}")
    return _sample_stimulus(key, jnp.asarray(tissue, jnp.float32), int(n_onsets), int(width))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _sample_stimulus(key, tissue, n_onsets, width):
    box = jnp.ones((width, width), jnp.float32)

    def one(k, t):
        # valid top-left corners: the whole block on tissue
        ok = jax.scipy.signal.correlate2d(t, box, mode="valid") > width * width - 0.5
        logits = jnp.where(ok, 0.0, -jnp.inf).reshape(-1)
        idx = jax.random.categorical(k, logits, shape=(n_onsets,))
        corners = jnp.zeros(ok.size).at[idx].set(1.0).reshape(ok.shape)
        return jax.scipy.signal.convolve2d(corners, box, mode="full").clip(0, 1) * t

    return jax.vmap(one)(jax.random.split(key, tissue.shape[0]), tissue)


# -- the travelling wave ----------------------------------------------------------------------


def travelling_wave_speed(sigma: float, params: Mapping[str, Any] | None = None) -> float:
    """Speed of the 1-D front of the fast subsystem (``h = 1``): ``sqrt(sigma / (2 tau_in)) (b - 2a)``.

    With ``h = 1``, ``dv/dt = -(1/tau_in) v (v - a)(v - b)`` where ``a, b`` are the roots of
    ``v^2 - v + tau_in / tau_out``: a cubic bistable (Nagumo) front, whose speed is
    ``sqrt(k D / 2) (b - 2a)`` with ``k = 1 / tau_in`` and ``D = sigma``. The gate barely
    moves during the upstroke (``tau_close = 150`` ms), so the full model's fronts travel at it.
    """
    p = _params(params)
    disc = 1.0 - 4.0 * p["tau_in"] / p["tau_out"]
    if disc <= 0:
        raise ValueError("the resting state is the only equilibrium: need tau_in / tau_out < 1/4")
    a, b = (1 - math.sqrt(disc)) / 2, (1 + math.sqrt(disc)) / 2
    return math.sqrt(sigma / (2 * p["tau_in"])) * (b - 2 * a)


# -- datasets -------------------------------------------------------------------------------------


def generate(split: str = "train", *, n_traj: int = 64, size: int = 24, shape: str = "rectangle",
             sigma: float | tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0), n_onsets: int = 1,
             n_frames: int = 30, frame_dt: float = 1.0, dt: float = 0.02, seed: int = 0) -> data.TrajectoryDataset:
    """A dataset of scarred-tissue simulations ``states [n_traj, n_frames + 1, 2, size, size]``.

    Each trajectory draws a scar of ``shape``, ``n_onsets`` stimuli and a conductivity from
    ``sigma`` (a value, or a tuple drawn uniformly: the thesis' ``{1, ..., 5}``); ``params``
    holds ``sigma`` per trajectory; the scar masks are in ``config`` only by seed (redraw them
    with :func:`sample_scars` and ``jax.random.fold_in(key(seed), split index)``, or use
    ``states[:, 0, 1] == 0``: ``h = 0`` exactly on scar).
    """
    if split not in data.SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(data.SPLITS)}")
    sig = (float(sigma),) if np.isscalar(sigma) else tuple(float(s) for s in sigma)
    key = jax.random.fold_in(jax.random.key(seed), data.SPLITS.index(split))
    k_scar, k_stim, k_sig = jax.random.split(key, 3)
    scars = sample_scars(n_traj, size, shape, key=k_scar)
    stim = sample_stimulus(1.0 - scars, n_onsets, key=k_stim)
    sigmas = jnp.asarray(sig, jnp.float32)[jax.random.randint(k_sig, (n_traj,), 0, len(sig))]
    states = simulate_batch(1.0 - scars, stim, sigmas, n_frames=n_frames, frame_dt=frame_dt, dt=dt)
    config = {"n_traj": n_traj, "size": size, "shape": shape, "sigma": list(sig), "n_onsets": n_onsets,
              "n_frames": n_frames, "frame_dt": frame_dt, "dt": dt, "seed": seed}
    return data.TrajectoryDataset(states=np.asarray(states), times=np.arange(n_frames + 1) * frame_dt,
                                  params={"sigma": np.asarray(sigmas)}, env=np.zeros(n_traj, int),
                                  split=split, system=NAME, config=config)


def _sample_initial(key, n: int, size: int = 24) -> Array:
    """Resting states around ``n`` random rectangular scars, ``[n, 2, size, size]``."""
    return resting_state(1.0 - sample_scars(n, size, key=key))


SYSTEM = register(
    System(
        name=NAME,
        state_shape=(2, 24, 24),
        field=lambda t, y, params: field(t, y, params),
        params=PARAMS,
        families={},
        sample_initial=_sample_initial,
        generate=generate,
        description="Mitchell-Schaeffer cardiac EP, 24x24 mm slab with a scar, 3x3 stimulus (EP-Net 2.0)",
    )
)
