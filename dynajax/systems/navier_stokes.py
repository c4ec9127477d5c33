"""2-D incompressible Navier-Stokes (vorticity form) with a passive scalar: LEADS' NS benchmark.

.. math::

    \\partial_t w = -u \\cdot \\nabla w + \\nu \\Delta w + \\xi(x), \\qquad
    \\partial_t \\rho = -u \\cdot \\nabla \\rho + \\kappa \\Delta \\rho, \\qquad
    u = (\\partial_y \\psi, -\\partial_x \\psi), \\quad \\Delta \\psi = -w,

on the periodic unit square, ``n x n`` grid points ``x_i = i / n`` (default ``n = 32``),
``nu = 1e-3``, ``kappa = 0``. A state is channels-first ``[C, n, n]``: ``C = 2`` holds
``(w, rho)``, ``C = 1`` the vorticity alone; axis ``-2`` is ``x`` and axis ``-1`` is ``y``
(the LEADS / FNO code's ``meshgrid(..., indexing="ij")``). The scalar ``rho`` is passive:
advected by the flow, it does not act on it (partially observed experiments observe ``rho``
and keep the velocity hidden; :func:`velocity_from_vorticity` recovers it to score them).

Forcings (:data:`FORCINGS`, the environment parameter ``forcing`` is an index into it):
``xi1 = 0.1 (sin 2pi(x+y) + cos 2pi(x+y))``, ``xi2 = 0.1 (sin 2pi(x+y) + cos 2pi(x+2y))``,
``xi3 = 0.1 (sin 2pi(x+y) + cos 2pi(2x+y))``, ``xi4 = 0.1 (sin 2pi(2x+y) + cos 2pi(2x+y))``
(the thesis), ``xi4_code = 0.1 (sin 2pi(x+2y) + cos 2pi(2x+y))`` (the released code's 4th
environment) and ``none``. :data:`ENVIRONMENTS` are the thesis' four; :data:`ENVIRONMENTS_CODE`
replace the 4th by the code's.

Spatial discretisation: Fourier pseudo-spectral with exact 2/3-rule dealiasing. The mask
keeps ``|k_x|, |k_y| <= (2/3)(n/2)`` (the FNO / LEADS code's); the fields entering the
products *and* the advection terms are masked, so products of band-limited fields are
alias-free. Modes outside the band take part in the linear terms only (forcing, diffusion):
:func:`dealias` projects a state onto the band, and :func:`generate` projects its initial
states. Both advection terms are computed in conservative form, ``u . grad q = div(u q)``
(equal to the advective form for the spectrally divergence-free ``u`` and band-limited
``q``): the ``k = 0`` mode of the advection is then exactly zero, so the mean vorticity (the
forcings have zero mean) and the scalar's total mass are conserved to round-off. Odd
derivatives zero the Nyquist wavenumber.

Time stepping (:data:`SCHEMES`, implicit Crank-Nicolson on the diagonal diffusion, explicit
on advection and forcing; the state stays in Fourier space between frames):

- ``"euler_cn"`` (default): the FNO / LEADS data generator's step,
  ``w+ = ((1 + dt L / 2) w + dt N(w)) / (1 - dt L / 2)``, first order in the advection,
  one advection evaluation per step;
- ``"heun_cn"``: jax-cfd's ``crank_nicolson_rk2`` (two evaluations, second order);
- ``"rk4_cn"``: jax-cfd's ``crank_nicolson_rk4`` (Carpenter-Kennedy low-storage RK4 with CN
  substeps, five evaluations).

Why this module's own step rather than jax-cfd's ``NavierStokes2D``: jax-cfd has no passive
scalar, and its 2/3 mask (``brick_wall_filter_2d``) keeps ``k_x in [-11, 9]`` at ``n = 32``
(asymmetric; FNO keeps ``[-10, 10]``) and it masks only the output of the product. With the
same mask the semi-discrete right-hand sides agree exactly (a test checks it); the time
schemes are the same formulas. Measured on this 2-core CPU (shared, load 3-5), float64,
``n = 32``; errors relative to ``rk4_cn`` at ``dt = 1e-4`` after ``T = 2`` from a GRF vorticity
and a Gaussian scalar under ``xi1``; cost per step for a vmapped batch of 32 states:

============  ======  =====================  =====================================
scheme        dt      rel. error (w, rho)     ms / step, batch 32: (w, rho) / w only
============  ======  =====================  =====================================
euler_cn      1e-3    5.7e-5, 2.7e-4          0.94 / 0.63
heun_cn       1e-3    1.9e-8, 9.3e-8          1.94 / 1.53
rk4_cn        1e-3    3.0e-10, 6.0e-11        5.38 / 4.72 (jax-cfd's, w only: 3.5)
rk4_cn        1e-2    3.0e-8, 6.0e-9          a tenth of the steps
============  ======  =====================  =====================================

(In float32 ``euler_cn`` at ``dt = 1e-3`` errs by 8.9e-5 / 2.7e-4: its time error dominates
round-off; data are nevertheless computed in float64.) Taylor-Green (``nu = 0.01``,
``m = 2``, ``T = 1``, ``dt = 1e-3``): ``euler_cn`` / ``heun_cn`` within 2.6e-6 of the exact
decay, ``rk4_cn`` and jax-cfd's ``crank_nicolson_rk4`` within 1.8e-7 (the advection of a
Taylor-Green vortex vanishes, so this tests the Crank-Nicolson part only). With
``nu = kappa = 0`` the dealiased system conserves energy, enstrophy and the scalar variance;
``rk4_cn`` keeps them to 1e-15, ``heun_cn`` to 1e-13, ``euler_cn`` drifts by ``O(dt)``
(5e-6 over 0.5 time units at ``dt = 1e-3``). The default is ``euler_cn`` at ``dt = 1e-3``: the
LEADS code's scheme (so the data carry the published generator's time
discretisation), the fastest per step (the LEADS setting, 4 x 8 train + 4 x 8 test
trajectories, generates in about 41 s; with the code's 4 x 32 test trajectories, 104 s), and
its time error (about ``3e-5`` relative per time unit) is far below what the models reach.
``scheme="heun_cn"`` buys 3000x less time error for 2x the cost; ``scheme="rk4_cn", dt=1e-2``
is both cheaper than the default and 1000x more accurate, but leaves the LEADS code's step.

Initial conditions (:func:`sample_initial`): vorticity, the LEADS code's Gaussian random field
(FNO's ``GaussianRF(2, n, alpha=2.5, tau=7)``): Fourier coefficients
``n^2 sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2) c_k`` with ``sigma = tau^(alpha - 1)``,
``c_k`` i.i.d. standard complex normal (``torch.randn(cfloat)``: ``E|c|^2 = 1``), the mean
mode zero, and ``w`` the real part of the inverse FFT. Scalar (``scalar_init``): ``"grf"``,
a smooth random field (the same construction with ``alpha = 4``, ``tau = 7``), projected onto
the 2/3 band and rescaled to ``[0, 1]``; or ``"blob"``, a periodic Gaussian
``exp(-|x - c|^2 / (2 * 0.1^2))`` centred at a uniform ``c`` (the hidden-dynamics thesis' "density
blob"), projected onto the band.

Data (:func:`generate`, the LEADS setting by default): each initial vorticity is evolved for
``warmup = 30`` time units under ``xi1`` (the code's environment 0; shared by all environments,
so done once per initial condition), then the scalar is added and ``n_frames = 10`` frames
are taken every ``frame_dt = 1`` under each environment's forcing. The states are
``[n_env * n_per_env, n_frames + 1, C, n, n]`` (``t = 0, 1, ..., 10``), computed in float64
and stored in float32. Differences from the released code (``datasets/ns.py``): the code
keeps ``t = 0..9`` (10 states; pass ``n_frames=9``), its warm-up stops at ``t = 28.5``
(it keeps the last of 20 records), it has no scalar, and its product is not input-masked.

The scalar with the default ``kappa = 0`` cascades to the grid scale: in the LEADS setting its
range grows from ``[0, 1]`` to about ``[-0.5, 1.45]`` by ``t = 10`` (Gibbs oscillations of an
unresolved field; its mass stays exact). For partially observed experiments that need a
resolved scalar, pass ``kappa`` in the environments (the ``hidden-ns`` experiment uses
``3e-3``), a shorter ``frame_dt`` and, if wanted, ``warmup=0`` and ``scalar_init="blob"``;
:func:`density_velocity_states` generates such data with the velocity beside the density.
"""

from __future__ import annotations

import functools
import math
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
    "FORCINGS",
    "ENVIRONMENTS",
    "ENVIRONMENTS_CODE",
    "DEFAULT_N_PER_ENV",
    "SPLIT_INDEX",
    "SCHEMES",
    "SCALAR_INITS",
    "FAMILIES",
    "SYSTEM",
    "grid",
    "forcing_field",
    "dealias",
    "stream_function",
    "velocity_from_vorticity",
    "vorticity_from_velocity",
    "field",
    "advection_diffusion_field",
    "sample_vorticity",
    "sample_scalar",
    "sample_initial",
    "density_velocity_states",
    "step",
    "simulate",
    "generate",
]

NAME = "navier_stokes"
FORCINGS: tuple[str, ...] = ("xi1", "xi2", "xi3", "xi4", "xi4_code", "none")
PARAMS: dict[str, float] = {"nu": 1e-3, "kappa": 0.0, "forcing": 0}
ENVIRONMENTS: tuple[dict[str, Any], ...] = tuple(
    {"nu": 1e-3, "kappa": 0.0, "forcing": i} for i in range(4)
)
ENVIRONMENTS_CODE: tuple[dict[str, Any], ...] = tuple(
    {"nu": 1e-3, "kappa": 0.0, "forcing": i} for i in (0, 1, 2, 4)
)
DEFAULT_N_PER_ENV: dict[str, int] = {"train": 8, "val": 8, "test": 32}
SPLIT_INDEX = _gen.SPLIT_INDEX
SCHEMES: tuple[str, ...] = ("euler_cn", "heun_cn", "rk4_cn")
SCALAR_INITS: tuple[str, ...] = ("grf", "blob")
GRF_ALPHA, GRF_TAU = 2.5, 7.0  # vorticity (LEADS / FNO)
SCALAR_ALPHA, SCALAR_TAU, BLOB_WIDTH = 4.0, 7.0, 0.1  # scalar
_NONE = FORCINGS.index("none")
_VERSION = 1


# -- grid, wavenumbers, forcings ---------------------------------------------------------


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 8 or n % 2:
        raise ValueError(f"the grid size n must be an even integer >= 8, got {n!r}")
    return int(n)


def grid(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Grid coordinates ``(X, Y)``, each ``[n, n]``, ``X[i, j] = i / n``, ``Y[i, j] = j / n``."""
    n = _check_n(n)
    t = np.arange(n) / n
    return np.meshgrid(t, t, indexing="ij")


def forcing_field(forcing: int | str, n: int = 32) -> np.ndarray:
    """The forcing ``xi`` on the grid, ``[n, n]`` float64 (numpy).

    Args:
        forcing: an index into :data:`FORCINGS` or one of its names.
        n: grid size.
    """
    if isinstance(forcing, str):
        if forcing not in FORCINGS:
            raise ValueError(f"unknown forcing {forcing!r}; known: {', '.join(FORCINGS)}")
        forcing = FORCINGS.index(forcing)
    forcing = _check_forcing_index(forcing)
    X, Y = grid(n)
    s, c, tp = np.sin, np.cos, 2 * np.pi
    fields = {
        "xi1": s(tp * (X + Y)) + c(tp * (X + Y)),
        "xi2": s(tp * (X + Y)) + c(tp * (X + 2 * Y)),
        "xi3": s(tp * (X + Y)) + c(tp * (2 * X + Y)),
        "xi4": s(tp * (2 * X + Y)) + c(tp * (2 * X + Y)),
        "xi4_code": s(tp * (X + 2 * Y)) + c(tp * (2 * X + Y)),
        "none": np.zeros_like(X),
    }
    return 0.1 * fields[FORCINGS[forcing]]


def _check_forcing_index(forcing) -> int:
    if isinstance(forcing, bool) or not isinstance(forcing, (int, np.integer)):
        try:  # a concrete integer array scalar
            if np.ndim(forcing) == 0 and np.issubdtype(np.asarray(forcing).dtype, np.integer):
                forcing = int(forcing)
        except (TypeError, jax.errors.ConcretizationTypeError):
            pass
    if isinstance(forcing, bool) or not isinstance(forcing, (int, np.integer)) or not (
        0 <= forcing < len(FORCINGS)
    ):
        raise ValueError(
            f"unknown forcing index {forcing!r}; allowed 0..{len(FORCINGS) - 1} for {FORCINGS}"
        )
    return int(forcing)


@functools.lru_cache(maxsize=None)
def _spectral(n: int) -> dict[str, np.ndarray]:
    """Numpy (float64) constants on the ``rfft2`` grid ``[n, n // 2 + 1]``."""
    kx = np.fft.fftfreq(n, 1.0 / n)[:, None] * np.ones((1, n // 2 + 1))
    ky = np.fft.rfftfreq(n, 1.0 / n)[None, :] * np.ones((n, 1))
    k2 = kx**2 + ky**2
    neg_lap = 4 * np.pi**2 * k2
    kmax = n // 2
    # odd derivatives: zero the Nyquist wavenumber
    kx_d = np.where(np.abs(kx) == kmax, 0.0, kx)
    ky_d = np.where(np.abs(ky) == kmax, 0.0, ky)
    return {
        "neg_lap": neg_lap,  # -Laplacian symbol, 4 pi^2 |k|^2
        "inv_neg_lap": np.where(k2 > 0, 1.0 / np.where(k2 > 0, neg_lap, 1.0), 0.0),
        "dx": 2 * np.pi * kx_d,  # d/dx = 1j * dx
        "dy": 2 * np.pi * ky_d,
        "mask": ((np.abs(kx) <= 2.0 / 3.0 * kmax) & (np.abs(ky) <= 2.0 / 3.0 * kmax)).astype(float),
        "forcings_hat": np.stack(
            [_zero_mean_hat(np.fft.rfft2(forcing_field(i, n))) for i in range(len(FORCINGS))]
        ),
    }


def _zero_mean_hat(fh):
    fh = np.array(fh)
    fh[0, 0] = 0.0  # the forcings have zero mean; drop the round-off
    return fh


def _consts(n, dtype):
    return {k: jnp.asarray(v, dtype) for k, v in _spectral(n).items() if k != "forcings_hat"}


def _float_dtype(y):
    dtype = jnp.result_type(y)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.zeros(()).dtype
    return dtype


def _complex(dtype):
    return jnp.complex128 if dtype == jnp.float64 else jnp.complex64


def _check_square(y, name="y") -> int:
    if y.ndim < 2 or y.shape[-1] != y.shape[-2]:
        raise ValueError(f"{name} must end with a square grid [..., n, n], got shape {y.shape}")
    return _check_n(y.shape[-1])


# -- diagnostics -----------------------------------------------------------------------------


def dealias(y: Float[ArrayLike, "*batch n n"]) -> Float[Array, "*batch n n"]:
    """Projects fields onto the 2/3-rule band ``|k_x|, |k_y| <= n / 3`` (spectrally)."""
    y = jnp.asarray(y)
    n = _check_square(y)
    mask = jnp.asarray(_spectral(n)["mask"], _float_dtype(y))
    return jnp.fft.irfft2(jnp.fft.rfft2(y) * mask, s=(n, n)).astype(_float_dtype(y))


def stream_function(w: Float[ArrayLike, "*batch n n"]) -> Float[Array, "*batch n n"]:
    """The zero-mean stream function ``psi`` solving ``Lap psi = -w`` (the mean of ``w`` is dropped)."""
    w = jnp.asarray(w)
    n = _check_square(w, "w")
    c = _consts(n, _float_dtype(w))
    return jnp.fft.irfft2(jnp.fft.rfft2(w) * c["inv_neg_lap"], s=(n, n))


def velocity_from_vorticity(w: Float[ArrayLike, "*batch n n"]) -> Float[Array, "*batch 2 n n"]:
    """The divergence-free velocity ``u = (d psi / dy, -d psi / dx)`` of the vorticity ``w``.

    ``psi`` solves ``Lap psi = -w`` spectrally (zero mean). The spectral curl of the result is
    ``w`` minus its mean (and minus its Nyquist modes, whose odd derivatives are zeroed).

    Args:
        w: vorticity ``[..., n, n]``.

    Returns:
        ``[..., 2, n, n]``: ``(u_x, u_y)``.
    """
    w = jnp.asarray(w)
    n = _check_square(w, "w")
    c = _consts(n, _float_dtype(w))
    psi_h = jnp.fft.rfft2(w) * c["inv_neg_lap"]
    uv_h = jnp.stack([1j * c["dy"] * psi_h, -1j * c["dx"] * psi_h], axis=-3)
    return jnp.fft.irfft2(uv_h, s=(n, n))


def vorticity_from_velocity(u: Float[ArrayLike, "*batch 2 n n"]) -> Float[Array, "*batch n n"]:
    """The spectral curl ``d u_y / dx - d u_x / dy`` of a velocity ``[..., 2, n, n]``."""
    u = jnp.asarray(u)
    n = _check_square(u, "u")
    if u.ndim < 3 or u.shape[-3] != 2:
        raise ValueError(f"u must be [..., 2, n, n], got shape {u.shape}")
    c = _consts(n, _float_dtype(u))
    uh = jnp.fft.rfft2(u)
    return jnp.fft.irfft2(1j * c["dx"] * uh[..., 1, :, :] - 1j * c["dy"] * uh[..., 0, :, :], s=(n, n))


# -- the semi-discrete right-hand side ---------------------------------------------------------


def _check_state(y) -> tuple[int, int]:
    if y.ndim != 3 or y.shape[0] not in (1, 2):
        raise ValueError(f"a state must be [C, n, n] with C = 1 (w) or 2 (w, rho), got {y.shape}")
    return y.shape[0], _check_square(y)


def _resolve_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    unknown = set(params) - set(PARAMS)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)} for system {NAME!r}; allowed: {', '.join(PARAMS)}"
        )
    out = {**PARAMS, **params}
    for name in ("nu", "kappa"):
        v = out[name]
        if not isinstance(v, jax.core.Tracer) and np.ndim(v) == 0 and not float(v) >= 0:
            raise ValueError(f"{name} must be >= 0, got {v!r}")
    return out


def _forcing_hat(forcing, n, dtype):
    """``rfft2`` of the forcing: an index into :data:`FORCINGS` (traced allowed) or a field."""
    if isinstance(forcing, str):
        forcing = FORCINGS.index(forcing) if forcing in FORCINGS else forcing
    if np.ndim(forcing) == 2:
        f = jnp.asarray(forcing, dtype)
        if f.shape != (n, n):
            raise ValueError(f"a forcing field must be [{n}, {n}], got {f.shape}")
        return jnp.fft.rfft2(f).at[0, 0].set(0.0)
    if np.ndim(forcing) != 0:
        raise ValueError(f"forcing must be an index into FORCINGS or an [n, n] field, got {forcing!r}")
    if not isinstance(forcing, jax.core.Tracer):
        forcing = _check_forcing_index(forcing)
    elif not jnp.issubdtype(forcing.dtype, jnp.integer):
        raise ValueError(f"a traced forcing index must be an integer, got dtype {forcing.dtype}")
    return jnp.asarray(_spectral(n)["forcings_hat"], _complex(dtype))[forcing]


def _operators(C, n, dtype, params):
    """``(explicit(yh), L)``: the masked advection + forcing, and the diagonal diffusion symbol."""
    c = _consts(n, dtype)
    fh = _forcing_hat(params["forcing"], n, dtype)
    nu = jnp.asarray(params["nu"], dtype)
    kappa = jnp.asarray(params["kappa"], dtype)
    diffusivity = jnp.stack([nu, kappa])[:C]
    L = -diffusivity[:, None, None] * c["neg_lap"]  # [C, n, n//2+1]
    dx, dy, mask = c["dx"], c["dy"], c["mask"]
    forcing_term = jnp.stack([fh, jnp.zeros_like(fh)])[:C]

    def explicit(yh):  # yh [C, n, n//2+1] complex
        yh = yh * mask
        q = jnp.fft.irfft2(yh, s=(n, n))  # [C, n, n]
        psi_h = yh[0] * c["inv_neg_lap"]
        uv = jnp.fft.irfft2(jnp.stack([1j * dy * psi_h, -1j * dx * psi_h]), s=(n, n))  # [2, n, n]
        flux = jnp.fft.rfft2(uv[:, None] * q[None])  # [2, C, ...]: (u q, v q)
        adv = -1j * (dx * flux[0] + dy * flux[1]) * mask
        return adv + forcing_term

    return explicit, L


def field(t, y: Float[Array, "C n n"], params: Mapping[str, Any] | None = None) -> Float[Array, "C n n"]:
    """The pseudo-spectral semi-discrete right-hand side for ONE state ``[C, n, n]``.

    ``dw/dt = -u . grad w + nu Lap w + xi``, ``drho/dt = -u . grad rho + kappa Lap rho``
    (2/3-rule dealiased advection, spectral Laplacian). Use it with
    :func:`dynajax.integrate` (e.g. ``integrate(field, y0, ts, args=params)``).

    Args:
        t: time (unused: the system is autonomous).
        y: ``(w, rho)`` or ``(w,)``, channels first.
        params: overrides of :data:`PARAMS`: ``nu``, ``kappa`` (scalars, traced allowed) and
            ``forcing`` (an index into :data:`FORCINGS`, traced allowed, or an ``[n, n]`` field).

    Raises:
        ValueError: bad state shape, unknown parameter, negative ``nu``/``kappa``, unknown forcing.
    """
    del t
    y = jnp.asarray(y)
    C, n = _check_state(y)
    dtype = _float_dtype(y)
    explicit, L = _operators(C, n, dtype, _resolve_params(params))
    yh = jnp.fft.rfft2(y)
    return jnp.fft.irfft2(explicit(yh) + L * yh, s=(n, n)).astype(dtype)


def advection_diffusion_field(t, y, theta: Mapping[str, Any]):
    """The ``"advection_diffusion"`` prior: :func:`field` with viscosity ``theta["nu"]``,
    no forcing and a non-diffusing scalar."""
    return field(t, y, {"nu": theta["nu"], "kappa": 0.0, "forcing": _NONE})


FAMILIES = {
    "advection_diffusion": PhysicalFamily(
        "advection_diffusion",
        ("nu",),
        advection_diffusion_field,
        {"nu": 0.0},
        "advection and viscous diffusion with unknown nu: leaves out the forcing xi (the "
        "environment's); init nu = 0 (no published value)",
    ),
}


# -- time stepping ---------------------------------------------------------------------------------

# Carpenter-Kennedy low-storage RK4 with Crank-Nicolson substeps (jax-cfd's crank_nicolson_rk4)
_CK_ALPHAS = (0.0, 0.1496590219993, 0.3704009573644, 0.6222557631345, 0.9582821306748, 1.0)
_CK_BETAS = (0.0, -0.4178904745, -1.192151694643, -1.697784692471, -1.514183444257)
_CK_GAMMAS = (0.1496590219993, 0.3792103129999, 0.8229550293869, 0.6994504559488, 0.1530572479681)


def _make_step(explicit, L, dt, scheme):
    if scheme == "euler_cn":
        num, den = 1.0 + 0.5 * dt * L, 1.0 - 0.5 * dt * L

        def step_hat(yh):
            return (num * yh + dt * explicit(yh)) / den

    elif scheme == "heun_cn":
        num, den = 1.0 + 0.5 * dt * L, 1.0 - 0.5 * dt * L

        def step_hat(yh):
            g = num * yh
            h1 = explicit(yh)
            y1 = (g + dt * h1) / den
            h2 = 0.5 * (explicit(y1) + h1)
            return (g + dt * h2) / den

    elif scheme == "rk4_cn":

        def step_hat(yh):
            h = 0.0
            for k in range(len(_CK_BETAS)):
                h = explicit(yh) + _CK_BETAS[k] * h
                mu = 0.5 * dt * (_CK_ALPHAS[k + 1] - _CK_ALPHAS[k])
                yh = (yh + _CK_GAMMAS[k] * dt * h + mu * L * yh) / (1.0 - mu * L)
            return yh

    else:
        raise ValueError(f"unknown scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    return step_hat


def _check_positive(name, value, *, allow_zero=False):
    try:
        ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else 'positive'}, got {value!r}")
    return float(value)


def _n_steps(name, span, dt) -> int:
    ratio = span / dt
    if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
        raise ValueError(f"{name}={span:g} is not a whole number of steps dt={dt:g}")
    return int(round(ratio))


def step(
    y: Float[Array, "C n n"],
    params: Mapping[str, Any] | None = None,
    *,
    dt: float = 1e-3,
    scheme: str = "euler_cn",
) -> Float[Array, "C n n"]:
    """One time step of the solver for one state ``[C, n, n]`` (in the dtype of ``y``).

    Pure and jit/vmap-able (``dt`` and ``scheme`` are static). :func:`simulate` loops in
    Fourier space instead, which saves two FFTs per step.

    Raises:
        ValueError: bad state, parameters, ``dt <= 0`` or unknown scheme.
    """
    y = jnp.asarray(y)
    C, n = _check_state(y)
    dt = _check_positive("dt", dt)
    dtype = _float_dtype(y)
    explicit, L = _operators(C, n, dtype, _resolve_params(params))
    yh = _make_step(explicit, L, dt, scheme)(jnp.fft.rfft2(y))
    return jnp.fft.irfft2(yh, s=(n, n)).astype(dtype)


def simulate(
    y0: Float[Array, "C n n"],
    params: Mapping[str, Any] | None = None,
    *,
    n_frames: int = 10,
    frame_dt: float = 1.0,
    dt: float = 1e-3,
    scheme: str = "euler_cn",
) -> Float[Array, "n_frames+1 C n n"]:
    """Solves from ``y0`` and returns the states at ``t = 0, frame_dt, ..., n_frames * frame_dt``.

    ``lax.scan`` over frames of ``frame_dt / dt`` steps, in Fourier space, in the dtype of
    ``y0`` (pass float64 inside ``jax.enable_x64`` for data). Pure and jit/vmap-able in
    ``y0`` and ``params`` (``nu``, ``kappa`` and an integer ``forcing`` may be traced).

    Args:
        y0: initial state ``[C, n, n]``, ``C`` = 1 (``w``) or 2 (``w, rho``).
        params: overrides of :data:`PARAMS` (see :func:`field`).
        n_frames: number of frames after the initial one (``>= 0``).
        frame_dt: time between frames, a whole number of steps.
        dt: time step.
        scheme: one of :data:`SCHEMES`.

    Returns:
        ``[n_frames + 1, C, n, n]``.

    Raises:
        ValueError: bad state or parameters, non-positive ``dt``/``frame_dt``, ``frame_dt``
            not a multiple of ``dt``, negative ``n_frames``, unknown scheme.
    """
    y0 = jnp.asarray(y0)
    C, n = _check_state(y0)
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ValueError(f"n_frames must be an integer >= 0, got {n_frames!r}")
    dt = _check_positive("dt", dt)
    frame_dt = _check_positive("frame_dt", frame_dt)
    n_steps = _n_steps("frame_dt", frame_dt, dt)
    dtype = _float_dtype(y0)
    explicit, L = _operators(C, n, dtype, _resolve_params(params))
    step_hat = _make_step(explicit, L, dt, scheme)

    def frame(yh, _):
        yh = jax.lax.fori_loop(0, n_steps, lambda i, z: step_hat(z), yh)
        return yh, jnp.fft.irfft2(yh, s=(n, n)).astype(dtype)

    yh0 = jnp.fft.rfft2(y0.astype(dtype))
    _, ys = jax.lax.scan(frame, yh0, None, length=int(n_frames))
    return jnp.concatenate([y0.astype(dtype)[None], ys], axis=0)


# -- initial conditions -----------------------------------------------------------------------------


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _grf_one(key, n, alpha, tau, dtype):
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    sigma = tau ** (0.5 * (2 * alpha - 2))
    sqrt_eig = n**2 * math.sqrt(2.0) * sigma * (4 * np.pi**2 * (kx**2 + ky**2) + tau**2) ** (-alpha / 2)
    sqrt_eig[0, 0] = 0.0
    z = jax.random.normal(key, (2, n, n), dtype) / math.sqrt(2.0)  # E|c|^2 = 1
    coeff = jnp.asarray(sqrt_eig, dtype) * (z[0] + 1j * z[1])
    return jnp.real(jnp.fft.ifft2(coeff)).astype(dtype)


def sample_vorticity(
    n: int, *, key: Array, size: int = 32, alpha: float = GRF_ALPHA, tau: float = GRF_TAU
) -> Float[Array, "n size size"]:
    """``n`` zero-mean Gaussian random fields (the LEADS / FNO ``GaussianRF`` convention).

    Sample ``i`` depends on ``fold_in(key, i)`` only (so it does not depend on ``n``).
    """
    n = _check_positive_int("n", n)
    size = _check_n(size)
    alpha = _check_positive("alpha", alpha)
    tau = _check_positive("tau", tau)
    # one compiled sampler per grid size (not per n): a Python loop over the samples' keys
    return jnp.stack([_grf_single(jax.random.fold_in(key, i), size, alpha, tau) for i in range(n)])


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _grf_single(key, size, alpha, tau):
    return _grf_one(key, size, alpha, tau, jnp.zeros(()).dtype)


def sample_scalar(
    n: int, *, key: Array, size: int = 32, kind: str = "grf", blob_width: float = BLOB_WIDTH
) -> Float[Array, "n size size"]:
    """``n`` initial scalars on the 2/3 band: ``"grf"`` (smooth GRF rescaled to ``[0, 1]``)
    or ``"blob"`` (a periodic Gaussian of standard deviation ``blob_width``, in units of the
    domain side, at a uniform centre). See the module."""
    n = _check_positive_int("n", n)
    size = _check_n(size)
    if kind not in SCALAR_INITS:
        raise ValueError(f"unknown scalar_init {kind!r}; allowed: {', '.join(SCALAR_INITS)}")
    if not 0 < blob_width <= 0.5:
        raise ValueError(f"blob_width must lie in (0, 0.5] (a fraction of the domain side), got {blob_width}")
    keys = [jax.random.fold_in(key, i) for i in range(n)]
    return jnp.stack([_scalar_single(k, size, kind, float(blob_width)) for k in keys])


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _scalar_single(key, size, kind, blob_width):
    dtype = jnp.zeros(()).dtype
    if kind == "grf":
        r = dealias(_grf_one(key, size, SCALAR_ALPHA, SCALAR_TAU, dtype))
        return (r - r.min()) / (r.max() - r.min())
    X, Y = (jnp.asarray(a, dtype) for a in grid(size))
    c = jax.random.uniform(key, (2,), dtype)
    dx = (X - c[0] + 0.5) % 1.0 - 0.5  # minimum-image distance on the torus
    dy = (Y - c[1] + 0.5) % 1.0 - 0.5
    return dealias(jnp.exp(-(dx**2 + dy**2) / (2 * blob_width**2)))


def sample_initial(
    n: int, *, key: Array, size: int = 32, with_scalar: bool = True, scalar_init: str = "grf"
) -> Float[Array, "n C size size"]:
    """``n`` initial states ``[n, C, size, size]``: a GRF vorticity (:func:`sample_vorticity`)
    and, with ``with_scalar``, a scalar (:func:`sample_scalar`). Raw (not warmed up)."""
    kw, kr = jax.random.split(key)
    w = sample_vorticity(n, key=kw, size=size)
    if not with_scalar:
        return w[:, None]
    return jnp.stack([w, sample_scalar(n, key=kr, size=size, kind=scalar_init)], axis=1)


@functools.lru_cache(maxsize=8)
def _batched_simulator(n_frames: int, frame_dt: float, dt: float, scheme: str, nu: float, kappa: float):
    p = {"nu": nu, "kappa": kappa, "forcing": FORCINGS.index("none")}
    return jax.jit(jax.vmap(lambda y: simulate(y, p, n_frames=n_frames, frame_dt=frame_dt, dt=dt, scheme=scheme)))


def density_velocity_states(
    n_sims: int,
    n_frames: int,
    *,
    key: Array,
    size: int = 32,
    tau: float = 60.0,
    amplitude: float = 90.0,
    blob_width: float = 0.25,
    nu: float = 1e-3,
    kappa: float = 3e-3,
    frame_dt: float = 0.1,
    dt: float = 5e-3,
    scheme: str = "rk4_cn",
    chunk: int = 16,
) -> np.ndarray:
    """Unforced flows carrying a density blob, as ``(rho, u_x, u_y)`` frames (partially
    observed experiments: ``rho`` observed, the velocity hidden).

    The initial vorticity is ``amplitude`` times a GRF of the LEADS convention with
    ``alpha = 2.5`` and the given ``tau`` (:func:`sample_vorticity`), projected on the 2/3
    band; the density a ``"blob"`` of standard deviation ``blob_width``
    (:func:`sample_scalar`). No forcing, no warm-up; solved in float64 in batches of
    ``chunk`` (the last one padded: one compiled program), the velocity from
    :func:`velocity_from_vorticity`. The defaults are the
    ``hidden-ns`` experiment's data.

    Args:
        key: PRNG key (vorticity and density draws).
        n_sims: simulations.
        n_frames: frames after the initial one, ``frame_dt`` apart.
        size: grid points per side.
        tau: GRF inverse length scale of the vorticity (larger: smaller eddies).
        amplitude: factor on the vorticity GRF.
        blob_width: density blob standard deviation, a fraction of the domain side.
        nu, kappa: viscosity and density diffusivity.
        frame_dt, dt, scheme: as in :func:`simulate`.
        chunk: simulations solved per compiled call.

    Returns:
        ``[n_sims, n_frames + 1, 3, size, size]`` float32 states ``(rho, u_x, u_y)``.
    """
    kw, kr = jax.random.split(key)
    sim = _batched_simulator(int(n_frames), float(frame_dt), float(dt), scheme, float(nu), float(kappa))
    with jax.enable_x64(True):
        w = dealias(sample_vorticity(n_sims, key=kw, size=size, tau=tau) * amplitude)
        rho = sample_scalar(n_sims, key=kr, size=size, kind="blob", blob_width=blob_width)
        y0 = jnp.stack([w, rho], axis=1)
        chunk = min(chunk, n_sims)
        y0 = jnp.concatenate([y0, jnp.repeat(y0[-1:], -n_sims % chunk, axis=0)])  # equal chunks: one compile
        ys = np.concatenate([np.asarray(sim(y0[i:i + chunk])) for i in range(0, n_sims, chunk)])[:n_sims]
        u = np.asarray(velocity_from_vorticity(ys[:, :, 0]))
    return np.concatenate([ys[:, :, 1:2], u], axis=2).astype(np.float32)


# -- datasets ---------------------------------------------------------------------------------------


def generate(
    split: str,
    *,
    envs: Sequence[Mapping[str, Any]] | None = None,
    n_per_env: int | None = None,
    seed: int = 0,
    warmup: float = 30.0,
    warmup_params: Mapping[str, Any] | None = None,
    n_frames: int = 10,
    frame_dt: float = 1.0,
    dt: float = 1e-3,
    n: int = 32,
    with_scalar: bool = True,
    scalar_init: str = "grf",
    scheme: str = "euler_cn",
    dtype: str = "float32",
    batch_size: int = 32,
    cache: bool = True,
    cache_dir=None,
) -> data.TrajectoryDataset:
    """Navier-Stokes trajectories, environment-major (env 0's, then env 1's, ...).

    Trajectory ``i`` of every environment starts from the same raw initial state (drawn from
    ``fold_in(fold_in(key(seed), SPLIT_INDEX[split]), i)``); its vorticity is projected onto
    the 2/3 band and warmed up once for ``warmup`` time units under ``warmup_params``
    (default :data:`PARAMS`: ``nu = 1e-3``, ``xi1``), then the (band-limited) scalar is
    joined and each environment's trajectory is recorded. Computed in float64.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        envs: environments, mappings of overrides of :data:`PARAMS` (default
            :data:`ENVIRONMENTS`; :data:`ENVIRONMENTS_CODE` for the code's ``xi4``).
        n_per_env: trajectories per environment (default :data:`DEFAULT_N_PER_ENV`:
            8 / 8 / 32, the LEADS code's train and test sizes).
        seed: base seed.
        warmup: warm-up duration (``>= 0``, a whole number of steps).
        warmup_params: parameters of the warm-up (``forcing``, ``nu``).
        n_frames, frame_dt: recorded frames after the initial one, and their spacing.
        dt: solver step.
        n: grid size (even, ``>= 8``).
        with_scalar: store ``(w, rho)`` (``C = 2``) or ``w`` alone (``C = 1``).
        scalar_init: ``"grf"`` or ``"blob"`` (:func:`sample_scalar`).
        scheme: one of :data:`SCHEMES`.
        dtype: storage, ``"float32"`` (default) or ``"float64"``.
        batch_size: trajectories per compiled batch.
        cache, cache_dir: see :func:`dynajax.data.cached`.

    Returns:
        A :class:`~dynajax.data.TrajectoryDataset`: ``states [n_env * n_per_env,
        n_frames + 1, C, n, n]``, ``times = frame_dt * arange(n_frames + 1)`` (``t = 0`` is
        the end of the warm-up), ``params`` (``nu``, ``kappa``, ``forcing``) and ``env``.

    Raises:
        ValueError: unknown split, parameter, forcing, scheme or scalar init; odd or too small
            ``n``; non-positive ``dt``/``frame_dt``, negative ``warmup`` or times that are not
            whole numbers of steps; sizes ``< 1``.
    """
    _gen.check_split(split)
    envs = ENVIRONMENTS if envs is None else tuple(envs)
    if len(envs) < 1:
        raise ValueError("envs must hold at least one environment")
    env_params = [_check_env(e) for e in envs]
    wu_params = _check_env(PARAMS if warmup_params is None else warmup_params)
    n_env = len(env_params)
    n_per_env = DEFAULT_N_PER_ENV[split] if n_per_env is None else n_per_env
    _check_positive_int("n_per_env", n_per_env)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("n_frames", n_frames)
    n = _check_n(n)
    dt = _check_positive("dt", dt)
    frame_dt = _check_positive("frame_dt", frame_dt)
    warmup = _check_positive("warmup", warmup, allow_zero=True)
    _n_steps("frame_dt", frame_dt, dt)
    n_warm = _n_steps("warmup", warmup, dt)
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    if scalar_init not in SCALAR_INITS:
        raise ValueError(f"unknown scalar_init {scalar_init!r}; allowed: {', '.join(SCALAR_INITS)}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")

    config = {
        "system": NAME, "split": split, "seed": int(seed), "n_per_env": int(n_per_env),
        "envs": env_params, "warmup": warmup, "warmup_params": wu_params,
        "n_frames": int(n_frames), "frame_dt": frame_dt, "dt": dt, "n": n,
        "with_scalar": bool(with_scalar), "scalar_init": scalar_init if with_scalar else None,
        "ic": {"alpha": GRF_ALPHA, "tau": GRF_TAU, "scalar_alpha": SCALAR_ALPHA,
               "scalar_tau": SCALAR_TAU, "blob_width": BLOB_WIDTH},
        "scheme": scheme, "dtype": dtype, "version": _VERSION,
    }

    def make() -> data.TrajectoryDataset:
        with jax.enable_x64(True):
            key = _gen.split_key(split, seed=seed)
            y0 = np.asarray(
                sample_initial(n_per_env, key=key, size=n, with_scalar=with_scalar, scalar_init=scalar_init)
            )  # [n_per_env, C, n, n]
            w0 = np.asarray(dealias(y0[:, :1]))
            if n_warm > 0:  # shared by every environment: once per initial condition
                def warm(w):
                    return jax.vmap(
                        lambda y: simulate(y, wu_params, n_frames=1, frame_dt=warmup, dt=dt,
                                           scheme=scheme)[-1]
                    )(w)

                w0 = data.map_in_batches(warm, w0, batch_size, desc=f"{NAME} {split} warm-up")
            start = np.concatenate([w0, y0[:, 1:]], axis=1)  # scalar joins after the warm-up
            starts = np.tile(start, (n_env, 1, 1, 1))  # env-major
            per_traj = {
                "nu": np.repeat(np.asarray([p["nu"] for p in env_params], np.float64), n_per_env),
                "kappa": np.repeat(np.asarray([p["kappa"] for p in env_params], np.float64), n_per_env),
                "forcing": np.repeat(np.asarray([p["forcing"] for p in env_params], np.int64), n_per_env),
            }
            out_dtype = np.float32 if dtype == "float32" else np.float64

            def run(batch):
                y, p = batch
                ys = jax.vmap(
                    lambda yy, pp: simulate(yy, pp, n_frames=n_frames, frame_dt=frame_dt, dt=dt,
                                            scheme=scheme)
                )(y, p)
                return ys.astype(out_dtype)

            states = data.map_in_batches(run, (starts, per_traj), batch_size, desc=f"{NAME} {split}")
            return data.TrajectoryDataset(
                states=np.asarray(states, out_dtype),
                times=frame_dt * np.arange(n_frames + 1, dtype=np.float64),
                params=per_traj,
                env=np.repeat(np.arange(n_env), n_per_env),
                split=split,
                system=NAME,
                config=config,
            )

    return data.cached(make, config, directory=cache_dir, enabled=cache)


def _check_env(env: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(env, Mapping):
        raise ValueError(f"an environment must be a mapping of parameters, got {env!r}")
    p = _resolve_params(env)
    return {
        "nu": _check_positive("nu", p["nu"], allow_zero=True),
        "kappa": _check_positive("kappa", p["kappa"], allow_zero=True),
        "forcing": _check_forcing_index(p["forcing"]),
    }


SYSTEM = register(
    System(
        name=NAME,
        state_shape=(2, 32, 32),
        field=field,
        params=PARAMS,
        families=FAMILIES,
        sample_initial=sample_initial,
        generate=generate,
        description="2-D Navier-Stokes (vorticity) + passive scalar, 4 forcing environments, periodic 32x32 (LEADS)",
    )
)
