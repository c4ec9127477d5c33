"""Lotka-Volterra (LEADS): trajectories against scipy's DOP853, the conserved quantity,
environments and shared initial conditions, the RK45-default option, cache keys, inputs."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from dynajax.systems import generation as G
from dynajax.systems import get_system
from dynajax.systems import lotka_volterra as LV

TRAINING_RATIOS = {0.5, 1.0, 1.5, 2.0}


def scipy_solution(y0, times, p, method="DOP853", **tol):
    def f(t, y):
        return [p["alpha"] * y[0] - p["beta"] * y[0] * y[1], p["delta"] * y[0] * y[1] - p["gamma"] * y[1]]

    tol = tol or dict(rtol=1e-10, atol=1e-12)
    return solve_ivp(f, (times[0], times[-1]), y0, method=method, t_eval=times, **tol).y.T


@pytest.fixture(scope="module")
def small_test():
    # 10 environments x 2 trajectories (one compiled program serves up to 32 trajectories)
    return LV.generate("test", n_per_env=2, cache=False)


def test_environments_match_the_released_code():
    assert len(LV.ENVIRONMENTS) == 10
    assert all(e["beta"] == 0.5 and e["delta"] == 0.5 for e in LV.ENVIRONMENTS)
    assert [(e["alpha"], e["gamma"]) for e in LV.ENVIRONMENTS] == [
        (0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (1.0, 0.5), (0.5, 0.25),
        (0.5, 0.75), (0.5, 1.0), (0.25, 0.25), (0.75, 0.75), (1.0, 1.0)]
    for e in LV.ENVIRONMENTS:
        assert {e["alpha"] / e["beta"], e["gamma"] / e["delta"]} <= TRAINING_RATIOS
    # novel environments: the thesis ratios that no training environment uses
    assert len(LV.NOVEL_ENVIRONMENTS) == 2
    for e in LV.NOVEL_ENVIRONMENTS:
        ratios = (e["alpha"] / e["beta"], e["gamma"] / e["delta"])
        assert sorted(np.round(ratios, 6)) == [1.44, 1.86]
    assert get_system("lotka_volterra") is LV.SYSTEM and LV.SYSTEM.family("complete").param_names == (
        "alpha", "beta", "gamma", "delta")


def test_layout_env_ids_and_shared_initial_conditions(small_test):
    ds = small_test
    assert ds.states.shape == (20, 20, 2) and ds.states.dtype == np.float64
    np.testing.assert_allclose(ds.times, 0.5 * np.arange(20))
    np.testing.assert_array_equal(ds.env, np.repeat(np.arange(10), 2))
    grouped = ds.by_env()
    assert grouped.shape == (10, 2, 20, 2)
    for e in range(10):  # the same two initial conditions in every environment
        np.testing.assert_array_equal(grouped[e, :, 0], grouped[0, :, 0])
        for k, v in LV.ENVIRONMENTS[e].items():
            np.testing.assert_array_equal(ds.params[k][ds.env == e], v)
    y0 = ds.states[:, 0]
    assert np.all((y0 >= 1) & (y0 <= 2)) and not np.allclose(grouped[0, 0, 0], grouped[0, 1, 0])


def test_trajectories_match_scipy_dop853(small_test):
    ds = small_test
    for j in range(ds.n_traj):
        p = {k: ds.params[k][j] for k in LV.PARAMS}
        np.testing.assert_allclose(ds.states[j], scipy_solution(ds.states[j, 0], ds.times, p), atol=1e-6)


def test_conserved_quantity(small_test):
    ds = small_test
    with jax.enable_x64(True):
        v = np.asarray(LV.conserved_quantity(ds.states, {k: ds.params[k][:, None] for k in LV.PARAMS}))
    assert np.max(np.abs(v - v[:, :1])) < 1e-8
    assert np.ptp(v[:, 0]) > 0.1  # not trivially constant


def test_novel_environments_and_subsets(small_test):
    novel = LV.generate("train", envs=LV.NOVEL_ENVIRONMENTS, n_per_env=2, cache=False)
    np.testing.assert_array_equal(novel.env, [0, 0, 1, 1])
    np.testing.assert_array_equal(novel.params["alpha"], [0.72, 0.72, 0.93, 0.93])
    sub = LV.generate("test", envs=[3, 0], n_per_env=2, cache=False)
    np.testing.assert_array_equal(sub.states[:2], small_test.states[6:8])  # env 3
    np.testing.assert_array_equal(sub.states[2:], small_test.states[:2])  # env 0
    custom = LV.generate("test", envs=[{"alpha": 0.6}], n_per_env=2, cache=False)
    assert custom.params["alpha"][0] == 0.6 and custom.params["gamma"][0] == 0.5


def test_default_sizes_and_determinism(monkeypatch, small_test):
    again = LV.generate("test", n_per_env=2, cache=False)
    np.testing.assert_array_equal(again.states, small_test.states)
    train = LV.generate("train", n_per_env=2, cache=False)
    assert not np.allclose(train.states[:, 0], small_test.states[:, 0])
    noisy = LV.generate("test", n_per_env=2, noise_std=0.01, cache=False)
    assert abs((noisy.states - small_test.states).std() - 0.01) < 0.002

    seen = []

    def fake(key_ic, key_noise, envs, n_per_env, times, *rest):
        seen.append((len(envs), n_per_env))
        n = len(envs) * n_per_env
        return np.ones((n, len(times), 2)), {k: np.repeat([e[k] for e in envs], n_per_env) for k in LV.PARAMS}

    monkeypatch.setattr(LV, "_simulate", fake)
    for split in ("train", "val", "test"):
        LV.generate(split, cache=False)
    assert seen == [(10, 1), (10, 32), (10, 32)]


def test_scipy_rk45_default_tolerances_option():
    times = G.time_grid(10.0, 0.5)
    mimic = LV.generate("test", n_per_env=2, cache=False, **LV.SCIPY_RK45_DEFAULTS)
    assert mimic.config["rtol"] == 1e-3 and mimic.config["solver"] == "dopri5"
    exact = np.stack([scipy_solution(y[0], times, {k: mimic.params[k][j] for k in LV.PARAMS})
                      for j, y in enumerate(mimic.states)])
    code = np.stack([scipy_solution(y[0], times, {k: mimic.params[k][j] for k in LV.PARAMS}, "RK45",
                                    rtol=1e-3, atol=1e-6) for j, y in enumerate(mimic.states)])
    err_mimic = np.mean((mimic.states - exact) ** 2)
    err_code = np.mean((code - exact) ** 2)
    # loose data, inaccurate like the code's scipy RK45 at its defaults (same tableau and
    # tolerances; diffrax's step control and interpolation differ, so not the same numbers:
    # measured MSE 1.3e-4 here against scipy's 1.3e-5)
    assert 1e-6 < err_mimic < 1e-3 and 1e-6 < err_code < 1e-3


def test_cache_keys(tmp_path, monkeypatch):
    calls = []

    def fake(key_ic, key_noise, envs, n_per_env, times, *rest):
        calls.append(1)
        n = len(envs) * n_per_env
        return np.ones((n, len(times), 2)), {k: np.repeat([e[k] for e in envs], n_per_env) for k in LV.PARAMS}

    monkeypatch.setattr(LV, "_simulate", fake)
    changes = [dict(), dict(envs=[0, 1]), dict(envs=LV.NOVEL_ENVIRONMENTS), dict(n_per_env=2),
               dict(seed=3), dict(noise_std=0.1), dict(horizon=5.0), dict(dt=0.25),
               dict(ic_range=(0.5, 1.0)), dict(SCIPY_RK45_DEFAULTS=True)]
    for kw in changes:
        if kw.pop("SCIPY_RK45_DEFAULTS", False):
            kw = LV.SCIPY_RK45_DEFAULTS
        LV.generate("train", cache_dir=tmp_path, **kw)
    LV.generate("train", cache_dir=tmp_path)  # cached
    assert len(calls) == len(changes) == len(list(tmp_path.iterdir()))
    assert all(p.name.startswith("lotka_volterra-train-") for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(envs=[10]), r"environment index 10 out of range: there are 10 training environments \(0..9\)"),
        (dict(envs=[-1]), "environment index -1 out of range"),
        (dict(envs=[]), "non-empty sequence"),
        (dict(envs=3), "non-empty sequence"),
        (dict(envs=[True]), "an environment is an index or a parameter dict"),
        (dict(envs=[{"a": 1.0}]), r"unknown parameter\(s\) \['a'\] for system 'lotka_volterra'"),
        (dict(n_per_env=0), "n_per_env must be an integer >= 1"),
        (dict(dt=-0.5), "dt must be a positive number"),
        (dict(horizon=0.0), "horizon must be a positive number"),
        (dict(ic_range=(-1.0, 2.0)), "ic_range must be positive"),
        (dict(split="dev"), "unknown split 'dev'"),
    ],
)
def test_bad_inputs(kwargs, match):
    split = kwargs.pop("split", "train")
    with pytest.raises(ValueError, match=match):
        LV.generate(split, cache=False, **kwargs)
    with pytest.raises(ValueError, match="no physical family 'none'"):
        LV.SYSTEM.family("none")
