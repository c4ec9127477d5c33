"""The damped pendulum: trajectories against scipy's DOP853, energy, seeding, noise,
the on-disk cache, the varying-parameter dataset, the families and the input checks.

Generation compiles one program per padded batch size (32 for every small request), so the
tests share module-scoped datasets and keep to small trajectory counts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynajax.data import TrajectoryDataset
from dynajax.systems import get_system
from dynajax.systems import pendulum as P


def scipy_solution(y0, times, T0=6.0, alpha=0.2):
    w2 = (2 * np.pi / T0) ** 2

    def f(t, y):
        return [y[1], -w2 * np.sin(y[0]) - alpha * y[1]]

    sol = solve_ivp(f, (times[0], times[-1]), y0, method="DOP853", rtol=1e-10, atol=1e-12,
                    t_eval=times)
    return sol.y.T


@pytest.fixture(scope="module")
def clean_test():
    return P.generate("test", noise_std=0.0, cache=False)


@pytest.fixture(scope="module")
def noisy_test():
    return P.generate("test", cache=False)


def test_defaults_match_the_thesis(clean_test):
    ds = clean_test
    assert isinstance(ds, TrajectoryDataset) and ds.system == "pendulum" and ds.split == "test"
    assert ds.states.shape == (25, 40, 2) and ds.states.dtype == np.float64
    np.testing.assert_allclose(ds.times, 0.5 * np.arange(40))
    assert ds.times[-1] == 19.5
    np.testing.assert_array_equal(ds.params["T0"], 6.0)
    np.testing.assert_array_equal(ds.params["alpha"], 0.2)
    np.testing.assert_allclose(ds.params["omega0_sq"], (2 * np.pi / 6) ** 2)
    np.testing.assert_array_equal(ds.env, 0)
    assert P.PARAMS == {"T0": 6.0, "alpha": 0.2}
    assert get_system("pendulum") is P.SYSTEM and P.SYSTEM.state_shape == (2,)
    # the released code's initial conditions: radius ~ U[1.3, 2.3]
    r = np.linalg.norm(ds.states[:, 0], axis=-1)
    assert np.all((r >= 1.3) & (r <= 2.3)) and r.max() - r.min() > 0.3


def test_trajectories_match_scipy_dop853(clean_test):
    ds = clean_test
    for i in range(ds.n_traj):
        np.testing.assert_allclose(ds.states[i], scipy_solution(ds.states[i, 0], ds.times),
                                   rtol=0, atol=1e-6)


def test_frictionless_energy_is_conserved_and_friction_dissipates(clean_test):
    ds = P.generate("val", n_traj=6, noise_std=0.0, params={"alpha": 0.0}, cache=False)
    with jax.enable_x64(True):
        e = np.asarray(P.energy(ds.states, {"alpha": 0.0}))
        e_damped = np.asarray(P.energy(clean_test.states))
    assert np.max(np.abs(e - e[:, :1])) < 1e-8
    assert np.all(np.diff(e_damped, axis=1) < 0)


def test_noise_is_added_to_the_clean_trajectories(clean_test, noisy_test):
    noise = noisy_test.states - clean_test.states
    assert noisy_test.config["noise_std"] == 0.01
    assert abs(noise.std() - 0.01) < 0.001 and abs(noise.mean()) < 0.001
    assert np.all(noise[:, 0] != 0)  # X0 is noisy too


def test_determinism_splits_seeds_and_prefixes(clean_test):
    again = P.generate("test", noise_std=0.0, cache=False)
    np.testing.assert_array_equal(again.states, clean_test.states)
    prefix = P.generate("test", n_traj=5, noise_std=0.0, cache=False)
    np.testing.assert_array_equal(prefix.states, clean_test.states[:5])
    train = P.generate("train", n_traj=5, noise_std=0.0, cache=False)
    other_seed = P.generate("test", n_traj=5, noise_std=0.0, seed=1, cache=False)
    assert not np.allclose(train.states[:, 0], prefix.states[:, 0])
    assert not np.allclose(other_seed.states[:, 0], prefix.states[:, 0])


def test_sample_initial(rng):
    with jax.enable_x64(True):
        y0 = P.sample_initial(1000, key=rng, radius_range=(1.0, 2.0))
        assert y0.shape == (1000, 2) and y0.dtype == jnp.float64
    r = np.linalg.norm(np.asarray(y0), axis=1)
    assert r.min() >= 1.0 and r.max() <= 2.0 and abs(r.mean() - 1.5) < 0.05
    np.testing.assert_array_equal(P.sample_initial(3, key=rng), P.sample_initial(5, key=rng)[:3])


def test_released_initial_conditions_are_the_codes_draws():
    # the released code: np.random.seed(i) (train) / seed(INT32_MAX - i) (test), then
    # y = 2 rand(2) - 1 scaled to radius rand() + 1.3, drawn here through the global state
    def code(seed):
        np.random.seed(seed)
        y = np.random.rand(2) * 2.0 - 1
        return y / np.sqrt((y**2).sum()) * (np.random.rand() + 1.3)

    top = np.iinfo(np.int32).max
    train, val, test = (P.released_initial(s, 5) for s in ("train", "val", "test"))
    np.testing.assert_array_equal(train, np.stack([code(i) for i in range(5)]))
    np.testing.assert_array_equal(test, np.stack([code(top - i) for i in range(5)]))
    r = np.linalg.norm(np.concatenate([train, val, test]), axis=1)
    assert r.min() >= 1.3 and r.max() <= 2.3
    assert not np.isclose(val[:, None], np.concatenate([train, test])[None]).all(-1).any()

    ds = P.generate("test", n_traj=3, initial="released", noise_std=0.0, cache=False)
    np.testing.assert_allclose(ds.states[:, 0], test[:3], atol=1e-12)
    with pytest.raises(ValueError, match="initial"):
        P.generate("test", initial="numpy", cache=False)
    with pytest.raises(ValueError, match="radius"):
        P.generate("test", initial="released", radius_range=(1.0, 2.0), cache=False)


def _count_calls(monkeypatch):
    calls = []
    real = P._simulate

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "_simulate", counting)
    return calls


def test_cache_round_trip_corruption_and_keys(tmp_path, monkeypatch):
    calls = _count_calls(monkeypatch)
    first = P.generate("train", n_traj=4, cache_dir=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert len(calls) == 1 and len(files) == 1 and files[0].name.startswith("pendulum-train-")
    assert first.config["version"] == 1 and first.config["cache_key"]["n_traj"] == 4

    second = P.generate("train", n_traj=4, cache_dir=tmp_path)  # from disk
    assert len(calls) == 1
    np.testing.assert_array_equal(second.states, first.states)
    np.testing.assert_array_equal(second.params["omega0_sq"], first.params["omega0_sq"])

    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="regenerating"):
        third = P.generate("train", n_traj=4, cache_dir=tmp_path)
    assert len(calls) == 2
    np.testing.assert_array_equal(third.states, first.states)



def test_every_generating_parameter_is_in_the_cache_key(tmp_path, monkeypatch):
    calls = []

    def fake(key_ic, key_noise, n_traj, per_traj, times, *rest):
        calls.append(n_traj)
        return np.zeros((n_traj, len(times), 2))

    monkeypatch.setattr(P, "_simulate", fake)
    changes = [dict(), dict(params={"alpha": 0.3}), dict(params={"T0": 12.0}), dict(noise_std=0.02),
               dict(seed=1), dict(n_traj=3), dict(dt=0.25), dict(horizon=10.0),
               dict(radius_range=(1.0, 2.0)), dict(initial="released"), dict(solver="dopri5"), dict(rtol=1e-9), dict(atol=1e-10)]
    for kw in changes:
        P.generate("train", **{"n_traj": 2, "cache_dir": tmp_path, **kw})
    P.generate("val", n_traj=2, cache_dir=tmp_path)
    P.generate_varying("train", n_traj=2, cache_dir=tmp_path)
    assert len(calls) == len(changes) + 2
    assert len(list(tmp_path.iterdir())) == len(changes) + 2


def test_varying_parameters(monkeypatch):
    ds = P.generate_varying("val", n_traj=6, cache=False)
    assert ds.states.shape == (6, 40, 2) and ds.config["n_input"] == 20
    T0, alpha = ds.params["T0"], ds.params["alpha"]
    assert np.all((T0 >= 3) & (T0 <= 10)) and np.all((alpha >= 0) & (alpha <= 0.5))
    assert len(np.unique(T0)) == 6
    np.testing.assert_allclose(ds.params["omega0_sq"], (2 * np.pi / T0) ** 2)
    for i in range(ds.n_traj):
        np.testing.assert_allclose(
            ds.states[i], scipy_solution(ds.states[i, 0], ds.times, T0[i], alpha[i]), atol=1e-6)

    sizes = {}

    def fake(key_ic, key_noise, n_traj, per_traj, times, *rest):
        sizes[len(sizes)] = n_traj
        return np.zeros((n_traj, len(times), 2))

    monkeypatch.setattr(P, "_simulate", fake)
    for split in ("train", "val", "test"):
        P.generate_varying(split, cache=False)
    assert list(sizes.values()) == [500, 50, 50]


def test_families_and_conversions():
    w2 = float(P.omega0_sq_from_T0(6.0))
    assert w2 == pytest.approx((2 * np.pi / 6) ** 2)
    assert float(P.T0_from_omega0_sq(w2)) == pytest.approx(6.0)
    y = jnp.array([0.7, -0.3])
    true = P.field(0.0, y, P.PARAMS)
    complete = P.SYSTEM.family("complete")
    np.testing.assert_allclose(complete.field(0.0, y, {"omega0_sq": w2, "alpha": 0.2}), true, rtol=1e-6)
    fric = P.SYSTEM.family("frictionless")
    np.testing.assert_allclose(fric.field(0.0, y, {"omega0_sq": w2}),
                               P.field(0.0, y, {"T0": 6.0, "alpha": 0.0}), rtol=1e-6)
    assert fric.param_names == ("omega0_sq",) and fric.init == {"omega0_sq": 0.2}
    assert complete.param_names == ("omega0_sq", "alpha") and complete.init == {"omega0_sq": 0.2, "alpha": 0.1}
    with pytest.raises(ValueError, match="no physical family 'x'; known: frictionless, complete"):
        P.SYSTEM.family("x")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="training"), "unknown split 'training'; allowed: train, val, test"),
        (dict(params={"omega": 1.0}), r"unknown parameter\(s\) \['omega'\] for system 'pendulum'; allowed: T0, alpha"),
        (dict(params={"T0": -1.0}), "T0 must be a positive period"),
        (dict(n_traj=0), "n_traj must be an integer >= 1, got 0"),
        (dict(n_traj=2.5), "n_traj must be an integer"),
        (dict(dt=-0.5), "dt must be a positive number"),
        (dict(dt=0.0), "dt must be a positive number"),
        (dict(horizon=-20.0), "horizon must be a positive number"),
        (dict(horizon=20.2), "whole multiple of dt"),
        (dict(noise_std=-0.1), "noise_std must be a finite number >= 0"),
        (dict(radius_range=(2.0, 1.0)), "radius_range must be finite with low <= high"),
        (dict(seed=1.5), "seed must be an integer"),
    ],
)
def test_bad_inputs(kwargs, match):
    split = kwargs.pop("split", "train")
    with pytest.raises(ValueError, match=match):
        P.generate(split, cache=False, **kwargs)


def test_bad_varying_inputs():
    with pytest.raises(ValueError, match="T0_range must be positive"):
        P.generate_varying("train", T0_range=(0.0, 3.0), cache=False)
    with pytest.raises(ValueError, match="unknown split"):
        P.generate_varying("valid", cache=False)
    with pytest.raises(ValueError, match="n_traj must be an integer >= 1"):
        P.generate_varying("train", n_traj=-1, cache=False)
