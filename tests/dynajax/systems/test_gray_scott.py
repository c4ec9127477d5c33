"""Gray-Scott: field, the LEADS code's initial condition and environments, generator accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynajax.solve import integrate
from dynajax.systems import gray_scott as gs


def test_constant_state_follows_the_reaction_ode():
    """A uniform state has no diffusion: each pixel solves the Gray-Scott reaction ODE."""
    F, k = 0.030, 0.062
    params = {**gs.PARAMS, "F": F, "k": k}

    def ode(t, y):
        u, v = y
        return [-u * v * v + F * (1 - u), u * v * v - (F + k) * v]

    with jax.enable_x64(True):
        y0 = jnp.stack([jnp.full((6, 7), 0.6), jnp.full((6, 7), 0.3)])
        ts = np.linspace(0.0, 360.0, 10)
        ys = integrate(gs.field, y0, ts, solver="rk4", dt0=0.1, args=params)  # global error ~1e-13
        spread = float(jnp.ptp(ys, axis=(-2, -1)).max())
    ref = solve_ivp(ode, (0, 360), [0.6, 0.3], method="DOP853", t_eval=ts, rtol=1e-13, atol=1e-14).y
    np.testing.assert_allclose(np.asarray(ys[:, :, 3, 4]).T, ref, atol=1e-10)
    assert spread < 1e-13


def code_field(uv, size, p):
    """``datasets/gs.py`` ``_f`` transcribed (dx = 1)."""
    u, v = uv.reshape(2, size, size)

    def lap(a):
        r = lambda s: np.roll(a, s, (0, 1))
        return -3 * a + 0.5 * (r((1, 0)) + r((-1, 0)) + r((0, 1)) + r((0, -1))) + 0.25 * (
            r((1, 1)) + r((1, -1)) + r((-1, 1)) + r((-1, -1)))

    du = p["Du"] * lap(u) - u * v**2 + p["F"] * (1 - u)
    dv = p["Dv"] * lap(v) + u * v**2 - (p["F"] + p["k"]) * v
    return np.concatenate([du.ravel(), dv.ravel()])


def test_field_is_the_leads_code(rng):
    with jax.enable_x64(True):
        y = jax.random.uniform(rng, (2, 10, 10))
        p = {**gs.PARAMS, **gs.ENVIRONMENTS[2]}
        np.testing.assert_allclose(
            np.asarray(gs.field(0.0, y, p)).ravel(), code_field(np.asarray(y).ravel(), 10, p), atol=1e-13
        )
        parts = gs.FAMILIES["diffusion"].field(0.0, y, p) + gs.reaction(y, p["F"], p["k"])
        np.testing.assert_allclose(parts, gs.FAMILIES["complete"].field(0.0, y, p), atol=1e-13)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gs_cache")


@pytest.fixture(scope="module")
def train(cache_dir):
    """The default training split (one trajectory per environment), through the cache."""
    return gs.generate("train", cache_dir=cache_dir)


def test_generator_matches_scipy_dop853(train):
    """Generated trajectories against an independent tight scipy solve of the code's field."""
    for i in (0, 1):
        p = {k: train.params[k][i] for k in gs.PARAMS}
        y0 = train.states[i, 0].astype(np.float64).ravel()
        ref = solve_ivp(lambda t, y, p=p: code_field(y, 32, p), (0, 360), y0, method="DOP853",
                        t_eval=train.times, rtol=1e-11, atol=1e-12).y.T.reshape(train.states[i].shape)
        err = np.abs(train.states[i] - ref).max()
        assert err < 1e-6, err  # float32 storage; the float64 solve agrees to ~1e-7
        assert np.abs(train.states[i, -1] - train.states[i, 0]).max() > 0.1  # something happened


def test_initial_condition_is_the_codes():
    with jax.enable_x64(True):
        y = np.asarray(gs.sample_initial(64, key=jax.random.key(3)))
    u, v = y[:, 0], y[:, 1]
    square = u == 0.0
    assert set(np.unique(u)) <= {0.0, 0.95} and np.array_equal(square, v == 1.0)
    np.testing.assert_array_equal(v[~square], 0.05)
    counts = square.sum(axis=(1, 2))
    assert counts.min() >= 9 and counts.max() <= 27 and np.mean(counts == 27) > 0.5  # 3 squares of 3x3
    # each square's top-left corner is in [0, 32 - 3) (numpy randint's exclusive high), so
    # the squares cover rows and columns 0..30 and never the last one
    assert square[:, 0, :].any() and square[:, 30, :].any() and square[:, :, 30].any()
    assert not square[:, 31, :].any() and not square[:, :, 31].any()
    assert not np.array_equal(y[0], y[1])


def test_defaults_environments_and_keys(train):
    ds = train
    assert ds.states.shape == (3, 10, 2, 32, 32) and ds.states.dtype == np.float32
    np.testing.assert_allclose(ds.times, 40.0 * np.arange(10))
    assert ds.env.tolist() == [0, 1, 2] and ds.config["rtol"] == 1e-8 and ds.config["version"] == 1
    np.testing.assert_array_equal(ds.params["F"], [0.037, 0.030, 0.039])
    np.testing.assert_array_equal(ds.params["k"], [0.060, 0.062, 0.058])
    np.testing.assert_array_equal(ds.params["Du"], 0.2097)
    # every environment starts from trajectory 0's state, drawn from the documented key
    with jax.enable_x64(True):
        split_key = jax.random.fold_in(jax.random.key(0), gs.SPLIT_INDEX["train"])
        key = jax.random.fold_in(jax.random.fold_in(split_key, 0), 0)  # stream 0, trajectory 0
        x0 = np.asarray(gs.sample_initial(1, key=key)[0], np.float32)
    for e in range(3):
        np.testing.assert_array_equal(ds.states[e, 0], x0)
    assert not np.allclose(ds.states[0, -1], ds.states[1, -1])  # environments differ


def test_cache_round_trip_and_splits(train, cache_dir):
    assert len(list(cache_dir.glob("gray_scott-train-*.npz"))) == 1
    again = gs.generate("train", n_traj=3, cache_dir=cache_dir)  # same key: read from the file
    np.testing.assert_array_equal(again.states, train.states)
    assert again.config["cache_key"] == train.config["cache_key"]
    assert len(list(cache_dir.glob("*.npz"))) == 1
    val = gs.generate("val", n_per_env=1, cache=False)
    assert val.states.shape == train.states.shape
    assert not np.array_equal(val.states[:, 0], train.states[:, 0])


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown parameter"):
        gs.generate("train", envs=[{"F": 0.03, "kill": 0.06}], cache=False)
    with pytest.raises(ValueError, match="unknown split"):
        gs.generate("tests", cache=False)
    with pytest.raises(ValueError, match="n_per_env must be an integer >= 1"):
        gs.generate("train", n_per_env=0, cache=False)
    with pytest.raises(ValueError, match="not a multiple"):
        gs.generate("train", n_traj=4, cache=False)
    with pytest.raises(ValueError, match="not both"):
        gs.generate("train", n_traj=3, n_per_env=1, cache=False)
    with pytest.raises(ValueError, match="dt must be positive"):
        gs.generate("train", dt=-40.0, cache=False)
    with pytest.raises(ValueError, match="horizon must be positive"):
        gs.generate("train", horizon=0.0, cache=False)
    with pytest.raises(ValueError, match="not a whole number"):
        gs.generate("train", horizon=100.0, cache=False)
    with pytest.raises(ValueError, match="too small"):
        gs.generate("train", size=2, cache=False)
    with pytest.raises(ValueError, match="block_size"):
        gs.generate("train", size=5, cache=False)  # 5 // 10 = 0
    with pytest.raises(ValueError, match="unknown solver"):
        gs.generate("train", solver="euler", cache=False)
    with pytest.raises(ValueError, match="rtol must be positive"):
        gs.generate("train", rtol=0.0, cache=False)
    with pytest.raises(ValueError, match="at least one environment"):
        gs.generate("train", envs=[], cache=False)
