"""Reaction-diffusion (FitzHugh-Nagumo): field, generator protocols, calibration to the thesis."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynajax.solve import integrate
from dynajax.systems import reaction_diffusion as rd


def reaction_ode(t, y, k=rd.PARAMS["k"]):
    u, v = y
    return [u - u**3 - k - v, u - v]


def constant_state(u0, v0, size=8):
    return jnp.stack([jnp.full((size, size), u0), jnp.full((size, size), v0)])


def test_constant_state_follows_the_reaction_ode():
    """No diffusion on a uniform field: the PDE is the 2-D reaction ODE at every pixel."""
    with jax.enable_x64(True):
        y0 = constant_state(0.7, 0.2)
        ts = np.linspace(0.0, 2.5, 11)
        ys = integrate(rd.field, y0, ts, solver="rk4", dt0=1e-3, args=rd.PARAMS)  # global error ~1e-13
        ref = solve_ivp(reaction_ode, (0, 2.5), [0.7, 0.2], method="DOP853", t_eval=ts, rtol=1e-13, atol=1e-14).y
        np.testing.assert_allclose(ys[:, :, 0, 0].T, ref, atol=1e-10)
        assert float(jnp.ptp(ys, axis=(-2, -1)).max()) == 0.0  # stays uniform


def test_generator_on_a_constant_state_is_explicit_euler_of_the_ode(monkeypatch):
    """The thesis generator (warm-up 0.5, Euler 1e-3, frames every 0.1) checked step by step."""
    monkeypatch.setattr(rd, "sample_initial", lambda n, *, key, size=32: jnp.broadcast_to(
        constant_state(0.9, 0.1, size), (n, 2, size, size)))
    ds = rd.generate("test", n_traj=1, size=6, dtype="float64", cache=False)
    assert ds.states.dtype == np.float64
    u, v, k, h = 0.9, 0.1, rd.PARAMS["k"], 1e-3
    frames = []
    for step in range(3001):  # t = -0.5 + step * h
        if step >= 500 and (step - 500) % 100 == 0:
            frames.append((u, v))
        u, v = u + h * (u - u**3 - k - v), v + h * (u - v)
    np.testing.assert_allclose(ds.states[0, :, :, 2, 3], np.array(frames), atol=1e-10)
    np.testing.assert_allclose(ds.times, np.arange(26) * 0.1, atol=1e-12)


def test_families_decompose_the_true_field(rng):
    with jax.enable_x64(True):
        y = rd.sample_initial(3, key=rng)
        full = rd.field(0.0, y, rd.PARAMS)
        diff = rd.FAMILIES["diffusion"].field(0.0, y, {"a": 1e-3, "b": 5e-3})
        np.testing.assert_allclose(diff + rd.reaction(y, 5e-3), full, atol=1e-12)
        np.testing.assert_allclose(rd.FAMILIES["complete"].field(0.0, y, rd.PARAMS), full, atol=0)
        # the five-point periodic Laplacian with dx = 2 / 32, as the code builds it
        u = np.asarray(y[0, 0])
        lap = (-4 * u + np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1) + np.roll(u, -1, 1)) / (2 / 32) ** 2
        np.testing.assert_allclose(diff[0, 0], 1e-3 * lap, rtol=1e-12)
    init = 1e-2 / (1 + math.exp(2.0))
    assert rd.FAMILIES["complete"].init == {"a": init, "b": init, "k": init}
    assert rd.FAMILIES["diffusion"].param_names == ("a", "b")
    np.testing.assert_allclose(rd.to_unconstrained(init), -2.0, atol=1e-6)
    np.testing.assert_allclose(rd.from_unconstrained(rd.to_unconstrained(4e-3)), 4e-3, rtol=1e-6)


@pytest.mark.slow
def test_calibration_true_pde_matches_the_thesis():
    """Table 3.4 'True PDE': RK4 (3/8) with one step per frame against the data.

    Spec 4.3 measures log10 MSE -8.78 on this protocol, the thesis reports -8.81 +- 0.05.
    Measured here: -8.783 (32 test sequences, seed 0; the MSE includes the t = 0 frame).
    """
    ds = rd.generate("test", n_traj=32, cache=False)
    assert ds.states.shape == (32, 26, 2, 32, 32) and ds.states.dtype == np.float32
    with jax.enable_x64(True):
        y = jnp.asarray(ds.states, jnp.float64)
        roll = jax.jit(jax.vmap(lambda y0: integrate(rd.field, y0, ds.times, solver="rk4_38", dt0=0.1, args=rd.PARAMS)))
        log_mse = math.log10(float(jnp.mean((roll(y[:, 0]) - y) ** 2)))
    print(f"RD True PDE log10 MSE = {log_mse:.3f}")
    assert -9.3 < log_mse < -8.3


@pytest.mark.slow
def test_determinism_splits_seeds_and_prefixes():
    kw = dict(n_traj=3, horizon=0.3, size=8, cache=False)  # n_traj <= batch_size: one batch of 3
    a = rd.generate("train", **kw)
    b = rd.generate("train", **kw)
    np.testing.assert_array_equal(a.states, b.states)
    assert a.states.shape == (3, 4, 2, 8, 8) and a.split == "train" and a.system == "reaction_diffusion"
    val = rd.generate("val", **kw)
    other = rd.generate("train", **kw, seed=1)
    assert not np.allclose(a.states[:, 0], val.states[:, 0]) and not np.allclose(a.states[:, 0], other.states[:, 0])
    longer = rd.generate("train", **{**kw, "n_traj": 5}, batch_size=3)  # same compiled batch
    np.testing.assert_array_equal(longer.states[:3], a.states)  # per-index keys: prefixes agree
    assert a.config["version"] == 1 and a.config["params"] == rd.PARAMS
    np.testing.assert_array_equal(a.params["k"], np.full(3, 5e-3))
    assert a.env.tolist() == [0, 0, 0]


def test_cache_round_trip(tmp_path):
    kw = dict(n_traj=3, horizon=0.3, size=8, cache_dir=tmp_path)
    a = rd.generate("val", **kw)
    files = list(tmp_path.glob("reaction_diffusion-val-*.npz"))
    assert len(files) == 1
    b = rd.generate("val", **kw)
    np.testing.assert_array_equal(a.states, b.states)
    assert b.config["cache_key"]["n_traj"] == 3
    rd.generate("val", **kw, params={"k": 1e-2})  # another key, another file
    assert len(list(tmp_path.glob("*.npz"))) == 2


@pytest.mark.slow
def test_varying_parameters_and_reserved_frames():
    ds = rd.generate("train", n_traj=16, vary_params=True, horizon=0.2, size=8, cache=False)
    assert ds.states.shape == (16, 5 + 3, 2, 8, 8)
    np.testing.assert_allclose(ds.times, [-0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2], atol=1e-12)
    assert np.all((ds.params["a"] >= 1e-3) & (ds.params["a"] <= 2e-3)) and np.ptp(ds.params["a"]) > 0
    assert np.all((ds.params["b"] >= 3e-3) & (ds.params["b"] <= 7e-3)) and np.ptp(ds.params["b"]) > 0
    np.testing.assert_array_equal(ds.params["k"], 5e-3)
    context, rest = rd.split_reserved(ds)
    assert context.shape == (16, 5, 2, 8, 8) and rest.states.shape == (16, 3, 2, 8, 8)
    assert rest.times[0] == 0.0 and rest.config["n_reserved"] == 0
    # per-trajectory parameters are used: the true field with them reproduces the data
    with jax.enable_x64(True):
        y0 = jnp.asarray(rest.states[:, 0], jnp.float64)
        p = {k: jnp.asarray(v) for k, v in ds.params.items()}
        pred = jax.jit(jax.vmap(lambda y, p: integrate(rd.field, y, rest.times, solver="rk4_38", dt0=0.1, args=p)))(y0, p)
        assert float(jnp.mean((pred - rest.states) ** 2)) < 1e-8


@pytest.mark.slow
def test_code_protocol():
    ds = rd.generate("test", n_traj=2, protocol="code", size=8, cache=False)
    assert ds.states.shape == (2, 30, 2, 8, 8)
    np.testing.assert_allclose(ds.times[[0, -1]], [0.0, 2.9], atol=1e-12)
    assert 0 <= ds.states[:, 0].min() and ds.states[:, 0].max() <= 1  # X0 is the U[0, 1] field
    assert ds.config["solver"] == "dopri5" and ds.config["rtol"] == 1e-3


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown parameter"):
        rd.generate("train", params={"D": 1.0}, cache=False)
    with pytest.raises(ValueError, match="unknown split"):
        rd.generate("training", cache=False)
    with pytest.raises(ValueError, match="n_traj must be an integer >= 1"):
        rd.generate("train", n_traj=0, cache=False)
    with pytest.raises(ValueError, match="dt must be positive"):
        rd.generate("train", dt=-0.1, cache=False)
    with pytest.raises(ValueError, match="horizon must be positive"):
        rd.generate("train", horizon=0.0, cache=False)
    with pytest.raises(ValueError, match="dt_sim must be positive"):
        rd.generate("train", dt_sim=-1e-3, cache=False)
    with pytest.raises(ValueError, match="not a whole number"):
        rd.generate("train", dt=0.1, dt_sim=0.03, cache=False)
    with pytest.raises(ValueError, match="too small"):
        rd.generate("train", size=2, cache=False)
    with pytest.raises(ValueError, match="unknown protocol"):
        rd.generate("train", protocol="paper", cache=False)
    with pytest.raises(ValueError, match="need warmup"):
        rd.generate("train", n_reserved=6, cache=False)
    with pytest.raises(ValueError, match="do not also fix"):
        rd.generate("train", vary_params=True, params={"a": 1e-3}, cache=False)
    with pytest.raises(ValueError, match="dtype"):
        rd.generate("train", dtype="float16", cache=False)
    with pytest.raises(ValueError, match="n must be"):
        rd.sample_initial(0, key=jax.random.key(0))
    assert rd.SYSTEM.state_shape == (2, 32, 32) and rd.SYSTEM.family("diffusion") is rd.FAMILIES["diffusion"]
