"""Linear ODE of LEADS: the released code's orthogonal matrix, the spectrum of each
environment, trajectories against scipy's expm and DOP853, layout and input checks."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.linalg
from scipy.integrate import solve_ivp
from scipy.stats import ortho_group

from dynajax.systems import get_system
from dynajax.systems import linear as L


@pytest.fixture(scope="module")
def small_test():
    # 8 environments x 2 trajectories
    return L.generate("test", n_per_env=2, cache=False)


def test_orthogonal_matrix_is_the_released_codes():
    q = L.orthogonal_matrix()
    np.testing.assert_allclose(q @ q.T, np.eye(8), atol=1e-12)
    state = np.random.get_state()
    try:
        np.random.seed(19700101)  # the code: np.random.seed(19700101); ortho_group.rvs(dim)
        m = ortho_group.rvs(8)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(q, m.T)
    assert not np.allclose(L.orthogonal_matrix(1), q)


def test_environment_matrices():
    with jax.enable_x64(True):
        for e in range(8):
            a = np.asarray(L.matrix({"zero_index": e}))
            m = L.orthogonal_matrix().T
            np.testing.assert_allclose(a, m.T @ np.diag(np.where(np.arange(8) == e, 0.0, -0.5)) @ m, atol=1e-14)
            np.testing.assert_allclose(np.linalg.eigvalsh(a), [-0.5] * 7 + [0.0], atol=1e-12)
            np.testing.assert_allclose(a @ L.orthogonal_matrix()[:, e], 0.0, atol=1e-12)  # the kept mode
    assert get_system("linear") is L.SYSTEM and L.SYSTEM.families == {}
    with jax.enable_x64(True):
        u = np.arange(8.0)
        params = {"zero_index": 2, "eigenvalue": -0.5}
        np.testing.assert_allclose(L.field(0.0, u, params), np.asarray(L.matrix(params)) @ u, atol=1e-13)
        other = np.asarray(L.make_field(7)(0.0, u, params))
        np.testing.assert_allclose(other, np.asarray(L.matrix(params, q_seed=7)) @ u, atol=1e-13)
        assert not np.allclose(other, L.field(0.0, u, params))


def test_trajectories_match_expm_and_dop853(small_test):
    ds = small_test
    assert ds.states.shape == (16, 20, 8) and ds.states.dtype == np.float64
    np.testing.assert_allclose(ds.times, 0.5 * np.arange(20))
    np.testing.assert_array_equal(ds.env, np.repeat(np.arange(8), 2))
    np.testing.assert_array_equal(ds.params["zero_index"], np.repeat(np.arange(8), 2))
    with jax.enable_x64(True):
        mats = [np.asarray(L.matrix({"zero_index": e})) for e in range(8)]
    for j in range(ds.n_traj):
        a = mats[ds.params["zero_index"][j]]
        expm = np.stack([scipy.linalg.expm(t * a) @ ds.states[j, 0] for t in ds.times])
        np.testing.assert_allclose(ds.states[j], expm, atol=1e-6)
        dop = solve_ivp(lambda t, u: a @ u, (0, ds.times[-1]), ds.states[j, 0], method="DOP853",
                        rtol=1e-10, atol=1e-12, t_eval=ds.times).y.T
        np.testing.assert_allclose(ds.states[j], dop, atol=1e-6)


def test_exact_solution(small_test):
    ds = small_test
    with jax.enable_x64(True):
        for e in (0, 5):
            sel = ds.env == e
            exact = np.asarray(L.exact_solution(ds.states[sel, 0], ds.times, {"zero_index": e}))
            np.testing.assert_allclose(exact, ds.states[sel], atol=1e-7)
            a = np.asarray(L.matrix({"zero_index": e, "eigenvalue": -1.0}))
            y0 = ds.states[0, 0]
            got = np.asarray(L.exact_solution(y0, [0.0, 1.5], {"zero_index": e, "eigenvalue": -1.0}))
            np.testing.assert_allclose(got[1], scipy.linalg.expm(1.5 * a) @ y0, atol=1e-12)


def test_shared_initial_conditions_determinism_and_defaults(small_test, monkeypatch):
    grouped = small_test.by_env()
    for e in range(8):
        np.testing.assert_array_equal(grouped[e, :, 0], grouped[0, :, 0])
    again = L.generate("test", n_per_env=2, cache=False)
    np.testing.assert_array_equal(again.states, small_test.states)
    sub = L.generate("test", envs=[4], n_per_env=2, cache=False)
    np.testing.assert_array_equal(sub.states, grouped[4])
    train = L.generate("train", envs=[4], n_per_env=2, cache=False)
    assert not np.allclose(train.states[:, 0], sub.states[:, 0])

    seen = []

    def fake(key_ic, key_noise, envs, n_per_env, times, *rest):
        seen.append((len(envs), n_per_env, len(times)))
        n = len(envs) * n_per_env
        return np.zeros((n, len(times), 8)), {
            "zero_index": np.repeat([e["zero_index"] for e in envs], n_per_env),
            "eigenvalue": np.repeat([e["eigenvalue"] for e in envs], n_per_env)}

    monkeypatch.setattr(L, "_simulate", fake)
    for split in ("train", "val", "test"):
        L.generate(split, cache=False)
    assert seen == [(8, 2, 20), (8, 32, 20), (8, 32, 20)]


def test_cache_key_changes_with_q_seed(tmp_path, monkeypatch):
    seeds = []

    def fake(key_ic, key_noise, envs, n_per_env, times, noise_std, q_seed, *rest):
        seeds.append(q_seed)
        n = len(envs) * n_per_env
        return np.zeros((n, len(times), 8)), {
            "zero_index": np.zeros(n, np.int32), "eigenvalue": np.full(n, -0.5)}

    monkeypatch.setattr(L, "_simulate", fake)
    a = L.generate("train", cache_dir=tmp_path)
    b = L.generate("train", q_seed=7, cache_dir=tmp_path)
    L.generate("train", q_seed=7, cache_dir=tmp_path)  # cached
    assert seeds == [19700101, 7] and len(list(tmp_path.iterdir())) == 2
    assert a.config["q_sha256"] != b.config["q_sha256"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(envs=[8]), r"environment index 8 out of range: environments are 0..7"),
        (dict(envs=[-1]), "environment index -1 out of range"),
        (dict(envs=[{"zero_index": 1.5}]), "zero_index .* must be an integer in 0..7"),
        (dict(envs=[{"zero_index": 9}]), "zero_index .* must be an integer in 0..7"),
        (dict(envs=[{"rate": -1.0}]), r"unknown parameter\(s\) \['rate'\] for system 'linear'"),
        (dict(envs=[]), "non-empty sequence"),
        (dict(n_per_env=0), "n_per_env must be an integer >= 1"),
        (dict(dt=-1.0), "dt must be a positive number"),
        (dict(horizon=-1.0), "horizon must be a positive number"),
        (dict(q_seed=-3), "q_seed must be a non-negative integer"),
        (dict(split="testing"), "unknown split 'testing'"),
    ],
)
def test_bad_inputs(kwargs, match):
    split = kwargs.pop("split", "train")
    with pytest.raises(ValueError, match=match):
        L.generate(split, cache=False, **kwargs)
