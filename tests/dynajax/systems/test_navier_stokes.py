"""Navier-Stokes (vorticity + passive scalar): exact solutions, invariants, jax-cfd cross-check, data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax import data, integrate
from dynajax.systems import get_system
from dynajax.systems import navier_stokes as ns

NONE = ns.FORCINGS.index("none")


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _taylor_green(n, m):
    """w = 2k sin(kx) sin(ky), k = 2 pi m: psi = sin(kx) sin(ky) / k, u = (sin kx cos ky, -cos kx sin ky)."""
    k = 2 * np.pi * m
    X, Y = ns.grid(n)
    w = 2 * k * np.sin(k * X) * np.sin(k * Y)
    u = np.stack([np.sin(k * X) * np.cos(k * Y), -np.cos(k * X) * np.sin(k * Y)])
    return w, u, k


def _spectral_div(u):
    n = u.shape[-1]
    k = np.fft.fftfreq(n, 1.0 / n)
    k[n // 2] = 0.0
    kx, ky = np.meshgrid(k, k, indexing="ij")
    uh = np.fft.fft2(u)
    return np.real(np.fft.ifft2(2j * np.pi * (kx * uh[..., 0, :, :] + ky * uh[..., 1, :, :])))


# -- exact solutions --------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ns.SCHEMES)
def test_taylor_green_decays_exactly(x64, scheme):
    # w(t) = 2k sin(kx) sin(ky) exp(-2 nu k^2 t): an exact unforced solution (u . grad w = 0).
    nu, T, n = 0.01, 1.0, 16
    for m in (1, 2):
        w0, _, k = _taylor_green(n, m)
        y0 = jnp.stack([jnp.asarray(w0), jnp.zeros((n, n))])
        ys = jax.jit(lambda y: ns.simulate(y, {"nu": nu, "forcing": NONE}, n_frames=2,
                                           frame_dt=T / 2, dt=1e-3, scheme=scheme))(y0)
        for i, t in enumerate((0.0, T / 2, T)):
            exact = w0 * np.exp(-2 * nu * k**2 * t)
            err = np.abs(np.asarray(ys[i, 0]) - exact).max() / np.abs(exact).max()
            assert err < 1e-5, (m, t, err)
        assert np.abs(np.asarray(ys[:, 1])).max() < 1e-12  # a zero scalar stays zero


def test_taylor_green_field_and_velocity(x64):
    n, nu = 16, 3e-3
    w0, u_exact, k = _taylor_green(n, 1)
    dw = ns.field(0.0, jnp.asarray(w0)[None], {"nu": nu, "forcing": NONE})
    np.testing.assert_allclose(dw[0], -2 * nu * k**2 * w0, atol=1e-10)
    # differentiable in the physical parameter (for fitted priors): d field / d nu = Lap w
    fam = get_system("navier_stokes").family("advection_diffusion")
    dnu = jax.jit(jax.jacfwd(lambda v: fam.field(0.0, jnp.asarray(w0)[None], {"nu": v})))(nu)
    np.testing.assert_allclose(dnu[0], -2 * k**2 * w0, atol=1e-8)
    np.testing.assert_allclose(ns.velocity_from_vorticity(jnp.asarray(w0)), u_exact, atol=1e-12)
    np.testing.assert_allclose(ns.stream_function(jnp.asarray(w0)), w0 / (2 * k**2), atol=1e-12)


# -- invariants --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["euler_cn", "rk4_cn"])
def test_mean_vorticity_and_scalar_mass_conserved(x64, rng, scheme):
    n = 16
    y0 = ns.sample_initial(1, key=rng, size=n)[0]
    y0 = y0.at[0].add(0.3)  # a non-zero mean vorticity
    envs = jnp.arange(len(ns.FORCINGS))  # every forcing (zero mean), traced under vmap
    ys = jax.jit(jax.vmap(lambda f: ns.simulate(y0, {"forcing": f, "kappa": 1e-3}, n_frames=2,
                                                frame_dt=0.5, dt=1e-2, scheme=scheme)))(envs)
    mean_w = np.asarray(ys[:, :, 0].mean(axis=(-1, -2)))
    mass = np.asarray(ys[:, :, 1].sum(axis=(-1, -2)))
    assert np.abs(mean_w - 0.3).max() < 1e-12
    assert np.abs(mass / mass[:, :1] - 1).max() < 1e-10
    assert np.abs(np.asarray(ys[1:, -1, 0] - ys[0, -1, 0])).max() > 1e-3  # forcings differ


def _invariants(y):
    w, r = y[..., 0, :, :], y[..., 1, :, :]
    u = ns.velocity_from_vorticity(w)
    return np.array([float((u**2).sum()), float((w**2).sum()), float((r**2).sum())])


def test_inviscid_unforced_invariants(x64, rng):
    # nu = kappa = 0, no forcing: the dealiased (Galerkin) system conserves energy,
    # enstrophy and the scalar variance; rk4_cn keeps them to round-off, euler_cn drifts O(dt).
    y0 = ns.dealias(ns.sample_initial(1, key=rng, size=16)[0])
    p = {"nu": 0.0, "kappa": 0.0, "forcing": NONE}
    inv0 = _invariants(y0)
    ys = ns.simulate(y0, p, n_frames=1, frame_dt=0.5, dt=1e-2, scheme="rk4_cn")
    assert np.abs(_invariants(ys[-1]) / inv0 - 1).max() < 1e-10
    drift = [np.abs(_invariants(ns.simulate(y0, p, n_frames=1, frame_dt=0.5, dt=dt)[-1]) / inv0 - 1)
             for dt in (1e-2, 5e-3)]
    assert drift[0].max() < 1e-3
    np.testing.assert_allclose(drift[0] / drift[1], 2.0, rtol=0.05)  # first order in time


def test_velocity_divergence_free_and_curl(x64, rng):
    w = ns.dealias(ns.sample_vorticity(3, key=rng, size=16)) + 0.7
    u = ns.velocity_from_vorticity(w)
    assert u.shape == (3, 2, 16, 16)
    assert np.abs(_spectral_div(np.asarray(u))).max() < 1e-12 * np.abs(np.asarray(u)).max() * 16
    np.testing.assert_allclose(ns.vorticity_from_velocity(u), w - 0.7, atol=1e-12)


def test_rhs_matches_jax_cfd(x64, rng):
    # jax-cfd's NavierStokes2D advection (advective form, its own 2/3 mask) equals ours
    # (conservative form) on a field band-limited to |k| <= 4, whose products (|k| <= 8) both
    # masks keep at n = 32 (jax-cfd's keeps k_x in [-11, 9], ours [-10, 10]).
    from jax_cfd.base import grids
    from jax_cfd.spectral import equations as sp_eq

    n = 32
    w = np.asarray(ns.sample_vorticity(1, key=rng, size=n)[0])
    k = np.fft.fftfreq(n, 1.0 / n)
    band = (np.abs(k)[:, None] <= 4) & (np.abs(k)[None, :] <= 4)
    w = np.real(np.fft.ifft2(np.fft.fft2(w) * band))
    eq = sp_eq.NavierStokes2D(0.0, grids.Grid((n, n), domain=((0, 1), (0, 1))), smooth=True)
    ref = jnp.fft.irfftn(eq.explicit_terms(jnp.fft.rfftn(w)))
    ours = ns.field(0.0, jnp.asarray(w)[None], {"nu": 0.0, "forcing": NONE})[0]
    np.testing.assert_allclose(ours, ref, atol=1e-12 * np.abs(ref).max())


def test_field_integrates_like_simulate(x64, rng):
    # the semi-discrete field through dynajax.integrate (RK4) against the CN-RK4 solver
    y0 = ns.dealias(ns.sample_initial(1, key=rng, size=16)[0])
    p = {"nu": 1e-2, "kappa": 5e-3, "forcing": 2}
    a = integrate(ns.field, y0, jnp.asarray([0.0, 0.2]), solver="rk4", dt0=2e-3, args=p)[-1]
    b = ns.simulate(y0, p, n_frames=1, frame_dt=0.2, dt=2e-3, scheme="rk4_cn")[-1]
    np.testing.assert_allclose(a, b, atol=1e-7 * np.abs(np.asarray(b)).max())
    np.testing.assert_allclose(ns.step(y0, p, dt=2e-3, scheme="rk4_cn"),
                               ns.simulate(y0, p, n_frames=1, frame_dt=2e-3, dt=2e-3, scheme="rk4_cn")[-1],
                               atol=1e-13)


@pytest.mark.slow
def test_float32_follows_input_dtype(rng):
    y0 = ns.sample_initial(1, key=rng, size=16)[0].astype(jnp.float32)
    ys = ns.simulate(y0, n_frames=1, frame_dt=0.1, dt=1e-2)
    assert ys.dtype == jnp.float32 and ys.shape == (2, 2, 16, 16)
    assert ns.field(0.0, y0[:1], {}).dtype == jnp.float32


def test_advection_diffusion_family(x64, rng):
    fam = get_system("navier_stokes").family("advection_diffusion")
    y = ns.sample_initial(1, key=rng, size=16)[0]
    np.testing.assert_allclose(fam.field(0.0, y, {"nu": 2e-3}),
                               ns.field(0.0, y, {"nu": 2e-3, "forcing": NONE}), atol=1e-14)
    forcing = ns.field(0.0, y, {"forcing": 1}) - ns.field(0.0, y, {"forcing": NONE})
    np.testing.assert_allclose(forcing[0], ns.forcing_field(1, 16), atol=1e-12)
    np.testing.assert_allclose(forcing[1], 0.0, atol=1e-12)


# -- initial conditions --------------------------------------------------------------------------


def test_grf_zero_mean_and_spectrum(x64, rng):
    n, alpha, tau = 32, ns.GRF_ALPHA, ns.GRF_TAU
    w = np.asarray(ns.sample_vorticity(256, key=rng, size=n))
    assert np.abs(w.mean(axis=(-1, -2))).max() < 1e-12
    power = (np.abs(np.fft.fft2(w)) ** 2).mean(0)
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    lam = 4 * np.pi**2 * (kx**2 + ky**2) + tau**2
    sel = (kx**2 + ky**2 > 0) & (np.abs(kx) < n // 2) & (np.abs(ky) < n // 2)
    slope = np.polyfit(np.log(lam[sel]), np.log(power[sel]), 1)[0]
    assert abs(slope + alpha) < 0.1, slope  # power ~ lam^-alpha (amplitude ~ lam^-alpha/2)
    sigma = tau ** (alpha - 1)
    expected_var = sigma**2 * (lam[kx**2 + ky**2 > 0] ** -alpha).sum()
    np.testing.assert_allclose(w.var(), expected_var, rtol=0.1)


@pytest.mark.parametrize("kind", ns.SCALAR_INITS)
def test_scalar_initial(rng, kind):
    r = np.asarray(ns.sample_scalar(4, key=rng, size=16, kind=kind))
    assert r.shape == (4, 16, 16)
    np.testing.assert_allclose(np.asarray(ns.dealias(r)), r, atol=1e-5)  # band-limited
    if kind == "grf":
        np.testing.assert_allclose(r.min(axis=(1, 2)), 0.0, atol=1e-6)
        np.testing.assert_allclose(r.max(axis=(1, 2)), 1.0, atol=1e-6)
    assert np.abs(r[0] - r[1]).max() > 1e-2


def test_blob_width(rng):
    """The blob's second moment about its centre is ``blob_width**2`` per axis (minimum image)."""
    n = 64
    for width in (0.05, 0.1):
        r = np.asarray(ns.sample_scalar(1, key=rng, size=n, kind="blob", blob_width=width))[0]
        x = np.arange(n) / n
        cx = x[np.argmax(r.sum(axis=1))]
        d = (x - cx + 0.5) % 1.0 - 0.5
        var = (r.sum(axis=1) * d**2).sum() / r.sum()
        np.testing.assert_allclose(np.sqrt(var), width, rtol=0.05)
    with pytest.raises(ValueError, match="blob_width"):
        ns.sample_scalar(1, key=rng, size=16, kind="blob", blob_width=0.0)


def test_samples_do_not_depend_on_count(rng):
    a = ns.sample_initial(2, key=rng, size=16)
    b = ns.sample_initial(5, key=rng, size=16)
    np.testing.assert_array_equal(a, b[:2])
    assert a.shape == (2, 2, 16, 16)
    assert ns.sample_initial(2, key=rng, size=16, with_scalar=False).shape == (2, 1, 16, 16)


# -- datasets --------------------------------------------------------------------------------------

SMALL = dict(n=16, n_per_env=2, warmup=0.2, n_frames=2, frame_dt=0.1, dt=1e-2)


@pytest.mark.slow
def test_generate_shapes_determinism_and_envs():
    ds = ns.generate("train", cache=False, **SMALL)
    assert ds.states.shape == (8, 3, 2, 16, 16) and ds.states.dtype == np.float32
    np.testing.assert_allclose(ds.times, [0.0, 0.1, 0.2])
    np.testing.assert_array_equal(ds.env, [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(ds.params["forcing"], [0, 0, 1, 1, 2, 2, 3, 3])
    assert ds.system == "navier_stokes" and ds.split == "train"
    by_env = ds.by_env()  # [env, traj, time, C, n, n]
    np.testing.assert_array_equal(by_env[:, :, 0], np.broadcast_to(by_env[:1, :, 0], by_env[:, :, 0].shape))
    for e in range(1, 4):  # the forcing changes the trajectory
        assert np.abs(by_env[e, :, -1, 0] - by_env[0, :, -1, 0]).max() > 1e-4
    assert np.abs(by_env[0, 0] - by_env[0, 1]).max() > 1e-2  # initial conditions differ
    again = ns.generate("train", cache=False, **SMALL)
    np.testing.assert_array_equal(ds.states, again.states)
    other = ns.generate("test", cache=False, **SMALL)
    assert np.abs(other.states[:, 0] - ds.states[:, 0]).max() > 1e-2
    seed1 = ns.generate("train", cache=False, seed=1, **SMALL)
    assert np.abs(seed1.states[:, 0] - ds.states[:, 0]).max() > 1e-2


def test_generate_warmup_then_scalar(x64):
    # frame 0 = the raw vorticity (band-projected) evolved for `warmup` under xi1, plus the raw scalar
    cfg = {**SMALL, "n_per_env": 1}
    ds = ns.generate("val", cache=False, envs=ns.ENVIRONMENTS_CODE[:2], dtype="float64", **cfg)
    key = jax.random.fold_in(jax.random.key(0), ns.SPLIT_INDEX["val"])
    y0 = ns.sample_initial(1, key=key, size=16)[0]
    w = ns.simulate(ns.dealias(y0[:1]), {"forcing": 0}, n_frames=1, frame_dt=0.2, dt=1e-2)[-1, 0]
    np.testing.assert_allclose(ds.states[0, 0, 0], w, atol=1e-12)
    np.testing.assert_allclose(ds.states[0, 0, 1], y0[1], atol=1e-12)
    ref = ns.simulate(jnp.stack([w, y0[1]]), {"forcing": 1}, n_frames=2, frame_dt=0.1, dt=1e-2)
    np.testing.assert_allclose(ds.states[1], ref, atol=1e-12)
    no_scalar = ns.generate("val", cache=False, with_scalar=False, dtype="float64", **cfg)
    assert no_scalar.states.shape == (4, 3, 1, 16, 16)
    np.testing.assert_allclose(no_scalar.states[0, :, 0], ds.states[0, :, 0], atol=1e-12)


def test_generate_cache_round_trip(tmp_path):
    a = ns.generate("train", cache_dir=tmp_path, **SMALL)
    files = list(tmp_path.glob("navier_stokes-train-*.npz"))
    assert len(files) == 1
    b = ns.generate("train", cache_dir=tmp_path, **SMALL)
    np.testing.assert_array_equal(a.states, b.states)
    assert b.config["cache_key"]["version"] == 1
    loaded = data.TrajectoryDataset.load(files[0])
    np.testing.assert_array_equal(loaded.states, a.states)
    ns.generate("train", cache_dir=tmp_path, **{**SMALL, "n_frames": 1})
    assert len(list(tmp_path.glob("*.npz"))) == 2  # another key, another file


# -- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 15}, {"n": 6}, {"envs": [{"forcing": 9}]}, {"envs": [{"forcing": -1}]},
        {"envs": [{"mu": 1.0}]}, {"envs": [{"nu": -1e-3}]}, {"envs": []},
        {"dt": -1e-3}, {"dt": 0.0}, {"warmup": -1.0}, {"frame_dt": 0.015},
        {"warmup": 0.015}, {"n_frames": 0}, {"n_per_env": 0}, {"scheme": "rk45"},
        {"scalar_init": "square"}, {"dtype": "float16"},
    ],
)
def test_generate_rejects_bad_inputs(kwargs):
    with pytest.raises(ValueError):
        ns.generate("train", cache=False, **{**SMALL, **kwargs})


def test_functions_reject_bad_inputs(rng):
    y = ns.sample_initial(1, key=rng, size=16)[0]
    with pytest.raises(ValueError):
        ns.generate("dev", cache=False, **SMALL)
    with pytest.raises(ValueError, match="forcing"):
        ns.field(0.0, y, {"forcing": len(ns.FORCINGS)})
    with pytest.raises(ValueError, match="unknown parameter"):
        ns.field(0.0, y, {"viscosity": 1.0})
    with pytest.raises(ValueError):
        ns.field(0.0, jnp.zeros((2, 15, 15)), {})
    with pytest.raises(ValueError):
        ns.field(0.0, jnp.zeros((3, 16, 16)), {})
    with pytest.raises(ValueError):
        ns.simulate(y, dt=-1e-3)
    with pytest.raises(ValueError):
        ns.simulate(y, frame_dt=0.1, dt=0.03)
    with pytest.raises(ValueError):
        ns.step(y, scheme="euler")
    with pytest.raises(ValueError):
        ns.forcing_field("xi5")
    with pytest.raises(ValueError):
        ns.forcing_field(1, n=7)
    with pytest.raises(ValueError):
        ns.sample_initial(1, key=rng, size=4)
    with pytest.raises(ValueError):
        ns.velocity_from_vorticity(jnp.zeros((16, 8)))


def test_registered():
    system = get_system("navier_stokes")
    assert system is ns.SYSTEM and system.state_shape == (2, 32, 32)
    assert system.check_params({"nu": 2e-3})["forcing"] == 0
    assert len(ns.ENVIRONMENTS) == 4
    X, Y = ns.grid(8)
    np.testing.assert_allclose(ns.forcing_field("xi4_code", 8),
                               0.1 * (np.sin(2 * np.pi * (X + 2 * Y)) + np.cos(2 * np.pi * (2 * X + Y))))
