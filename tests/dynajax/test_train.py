"""Tests for dynajax.train: pure steps, scan loops, Uzawa multipliers, seeds, checkpoints."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynajax import train
from dynajax.train import (
    FitResult,
    TrainState,
    Uzawa,
    fit,
    init_state,
    load_checkpoint,
    make_step,
    sample_minibatch,
    save_checkpoint,
)

# ---------------------------------------------------------------------------------------
# A small noisy linear least-squares problem shared by most tests.

_kx, _kn = jax.random.split(jax.random.key(42))
X = jax.random.normal(_kx, (64, 3))
W_TRUE = jnp.array([1.0, -2.0, 0.5])
Y = X @ W_TRUE + 0.5 * jax.random.normal(_kn, (64,))
DATA = (X, Y)


def mse_loss(params, batch, key):
    x, y = batch
    return jnp.mean((x @ params - y) ** 2), {}


def noisy_mse_loss(params, batch, key):
    """Uses the step key (a random perturbation), so key handling is part of the result."""
    x, y = batch
    noise = 0.01 * jax.random.normal(key, params.shape)
    loss = jnp.mean((x @ (params + noise) - y) ** 2)
    return loss, {"pnorm": jnp.sum(params**2)}


def lstsq_solution():
    return np.asarray(jnp.linalg.lstsq(X, Y)[0])


def assert_trees_equal(a, b, *, atol=0.0):
    """Same structure, shapes and dtypes; equal (or within ``atol``) leaf by leaf, keys by their data."""
    data = lambda t: jax.tree_util.tree_map(  # noqa: E731
        lambda x: jax.random.key_data(x) if jnp.issubdtype(jnp.result_type(x), jax.dtypes.prng_key) else x, t)
    a, b = data(a), data(b)
    chex.assert_trees_all_equal_shapes_and_dtypes(a, b)
    if atol == 0.0:
        chex.assert_trees_all_equal(a, b)
    else:
        chex.assert_trees_all_close(a, b, atol=atol, rtol=0)


def python_loop(step, state, sample, n_steps):
    """The reference for fit: a plain loop with the fold_in(key, step) batch convention."""
    jstep, jsample = jax.jit(step), jax.jit(sample)
    history = {}
    for _ in range(n_steps):
        batch = jsample(jax.random.fold_in(state.key, state.step), state.step)
        state, metrics = jstep(state, batch)
        for k, v in metrics.items():
            history.setdefault(k, []).append(np.asarray(v))
    return state, {k: np.stack(v) for k, v in history.items()}


# ---------------------------------------------------------------------------------------
# Convergence to the closed-form solution.


def test_full_batch_converges_to_lstsq(rng):
    opt = optax.sgd(0.1)
    state = init_state(jnp.zeros(3), opt, key=rng)
    res = fit(make_step(mse_loss, opt), state, DATA, n_steps=200, chunk_size=100, progress=False)
    assert isinstance(res, FitResult)
    np.testing.assert_allclose(res.state.params, lstsq_solution(), atol=1e-5)
    assert int(res.state.step) == 200
    assert res.history["loss"].shape == (200,)
    # Full-batch gradient descent on a convex quadratic decreases the loss monotonically.
    assert np.all(np.diff(res.history["loss"]) <= 1e-6)
    assert not res.stopped_early
    assert np.isnan(res.best_val)
    assert_trees_equal(res.best_params, res.state.params)


def test_minibatch_converges_to_lstsq(rng):
    opt = optax.sgd(optax.exponential_decay(0.1, 100, 0.5))
    state = init_state(jnp.zeros(3), opt, key=rng)
    res = fit(
        make_step(mse_loss, opt), state, DATA, n_steps=1000, chunk_size=500, batch_size=16,
        progress=False,
    )
    w = lstsq_solution()
    err = np.abs(np.asarray(res.state.params) - w).max()
    # Clearly closer to the least-squares solution than the noise separates it from w_true.
    assert err < 1e-2
    assert err < 0.25 * np.abs(w - np.asarray(W_TRUE)).max()
    # Minibatch losses are noisy (not the monotone full-batch curve).
    assert np.any(np.diff(res.history["loss"]) > 0)


# ---------------------------------------------------------------------------------------
# The step is pure; fit equals a Python loop of steps.


def test_step_is_pure_and_jit_invariant(rng):
    opt = optax.adam(1e-2)
    step = make_step(noisy_mse_loss, opt)
    state = init_state(jnp.ones(3), opt, key=rng)
    s1, m1 = step(state, DATA)
    s2, m2 = step(state, DATA)
    assert_trees_equal((s1, m1), (s2, m2))
    sj, mj = jax.jit(step)(state, DATA)
    assert_trees_equal((s1, m1), (sj, mj), atol=1e-6)
    # The input state is untouched and the step advanced the counter and the key.
    assert int(state.step) == 0 and int(s1.step) == 1
    assert not np.array_equal(jax.random.key_data(s1.key), jax.random.key_data(state.key))
    assert set(m1) == {"loss", "pnorm"}
    np.testing.assert_allclose(m1["pnorm"], 3.0)


@pytest.mark.parametrize("kind", ["minibatch", "callable"])
def test_fit_equals_python_loop(rng, kind):
    opt = optax.adam(5e-2)
    step = make_step(noisy_mse_loss, opt)
    state = init_state(jnp.zeros(3), opt, key=rng)
    if kind == "minibatch":
        data, kwargs = DATA, {"batch_size": 8}
        sample = lambda key, step: sample_minibatch(DATA, 8, key=key)  # noqa: E731
    else:

        def sample(key, step):  # step-dependent: a noise level that decays with the step
            return X + 0.1 / (1.0 + step) * jax.random.normal(key, X.shape), Y

        data, kwargs = sample, {}
    # Minibatch: 7 steps in chunks of 3, two full chunks and a partial one.
    n = 7 if kind == "minibatch" else 6
    res = fit(step, state, data, n_steps=n, chunk_size=3, progress=False, **kwargs)
    ref_state, ref_hist = python_loop(step, state, sample, n)
    assert_trees_equal(res.state, ref_state, atol=1e-6)
    assert set(res.history) == set(ref_hist)
    for k in ref_hist:
        np.testing.assert_allclose(res.history[k], ref_hist[k], atol=1e-6, rtol=0)


def test_zero_steps_returns_initial_state(rng):
    opt = optax.sgd(0.1)
    state = init_state(jnp.zeros(3), opt, key=rng)
    res = fit(make_step(mse_loss, opt), state, DATA, n_steps=0, progress=False)
    assert_trees_equal(res.state, state)
    assert res.history == {}
    assert not res.stopped_early


def test_progress_bar_run(rng):
    opt = optax.sgd(0.1)
    state = init_state(jnp.zeros(3), opt, key=rng)
    res = fit(make_step(mse_loss, opt), state, DATA, n_steps=4, chunk_size=2, progress=True)
    assert int(res.state.step) == 4 and res.history["loss"].shape == (4,)


# ---------------------------------------------------------------------------------------
# Several seeds in one program.


def test_seeds_equal_separate_runs(rng):
    opt = optax.sgd(5e-2)
    step = make_step(noisy_mse_loss, opt)

    def init(key):
        return init_state(jax.random.normal(key, (3,)), opt, key=key)

    keys = jax.random.split(rng, 2)
    states = jax.vmap(init)(keys)
    res = fit(step, states, DATA, n_steps=6, chunk_size=3, batch_size=8, seeds=True, progress=False)
    assert res.history["loss"].shape == (6, 2)
    assert res.history["pnorm"].shape == (6, 2)
    assert res.state.params.shape == (2, 3)
    assert np.asarray(res.state.step).tolist() == [6, 6]
    for i, key in enumerate(keys):
        single = fit(step, init(key), DATA, n_steps=6, chunk_size=3, batch_size=8, progress=False)
        assert_trees_equal(jax.tree_util.tree_map(lambda x: x[i], res.state), single.state, atol=1e-5)
        np.testing.assert_allclose(res.history["loss"][:, i], single.history["loss"], atol=1e-5)
    # The seeds really are different runs.
    assert not np.allclose(res.history["loss"][:, 0], res.history["loss"][:, 1])


# ---------------------------------------------------------------------------------------
# Uzawa multipliers.


def uzawa_loss(params, batch, key):
    x, y = batch
    objective = jnp.sum(params**2)
    constraint = jnp.mean((x @ params - y) ** 2)
    return (objective, constraint), {}


@pytest.mark.parametrize("weight", ["constraint", "objective"])
def test_uzawa_multiplier_schedule(rng, weight):
    lr, lam0, tau, every = 0.02, 0.5, 0.3, 3
    uz = Uzawa(lambda0=lam0, tau=tau, every=every, weight=weight)
    opt = optax.sgd(lr)
    step = make_step(uzawa_loss, opt, uzawa=uz)
    p0 = jnp.array([0.3, -0.2, 0.1])
    state = init_state(p0, opt, key=rng, uzawa=uz)
    np.testing.assert_allclose(state.multiplier, lam0)

    n = 10
    res = fit(step, state, DATA, n_steps=n, chunk_size=5, progress=False)
    h = res.history
    con, obj, mult = h["constraint"].astype(np.float64), h["objective"], h["multiplier"]
    assert con.shape == obj.shape == mult.shape == (n,)
    due = (np.arange(1, n + 1) % every) == 0
    expected = lam0 + tau * np.cumsum(np.where(due, con, 0.0))
    np.testing.assert_allclose(mult, expected, rtol=1e-6)
    np.testing.assert_allclose(res.state.multiplier, lam0 + tau * con[due].sum(), rtol=1e-6)
    # ``every`` respected: the multiplier only moves at due steps.
    moved = np.diff(np.concatenate([[lam0], mult])) != 0
    np.testing.assert_array_equal(moved, due)

    # The minimised loss is the relaxed one at the multiplier in force before the step.
    before = np.concatenate([[lam0], mult[:-1]])
    total = obj + before * con if weight == "constraint" else con + obj / before
    np.testing.assert_allclose(h["loss"], total, rtol=1e-5)

    # The first update is a gradient step on the relaxed loss.
    def relaxed(p):
        (o, c), _ = uzawa_loss(p, DATA, None)
        return uz.total(jnp.asarray(lam0), o, c)

    s1, _ = jax.jit(step)(state, DATA)
    np.testing.assert_allclose(s1.params, p0 - lr * jax.jit(jax.grad(relaxed))(p0), atol=1e-6)


def test_uzawa_tau_zero_keeps_multiplier(rng):
    uz = Uzawa(lambda0=2.0, tau=0.0)
    opt = optax.sgd(0.01)
    state = init_state(jnp.zeros(3), opt, key=rng, uzawa=uz)
    s, m = jax.jit(make_step(uzawa_loss, opt, uzawa=uz))(state, DATA)
    np.testing.assert_allclose(s.multiplier, 2.0)
    assert set(m) == {"loss", "objective", "constraint", "multiplier"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lambda0": 0.0, "tau": 0.1},
        {"lambda0": -1.0, "tau": 0.1},
        {"lambda0": math.nan, "tau": 0.1},
        {"lambda0": 1.0, "tau": -0.1},
        {"lambda0": 1.0, "tau": math.nan},
        {"lambda0": 1.0, "tau": 0.1, "every": 0},
        {"lambda0": 1.0, "tau": 0.1, "every": -3},
        {"lambda0": 1.0, "tau": 0.1, "weight": "penalty"},
    ],
)
def test_uzawa_invalid(kwargs):
    with pytest.raises(ValueError, match="Uzawa"):
        Uzawa(**kwargs)


# ---------------------------------------------------------------------------------------
# Stateful losses thread model_state.

A = jnp.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])


def stateful_loss(params, model_state, batch, key):
    x, y = batch
    v = A @ model_state["v"]
    v = v / jnp.linalg.norm(v)
    new_state = {"count": model_state["count"] + 1, "v": v}
    loss = jnp.mean((x @ params - y) ** 2)
    return loss, ({"count": model_state["count"]}, new_state)


def test_stateful_loss_updates_model_state(rng):
    opt = optax.sgd(0.1)
    ms = {"count": jnp.zeros((), jnp.int32), "v": jnp.ones(3) / jnp.sqrt(3.0)}
    state = init_state(jnp.zeros(3), opt, key=rng, model_state=ms)
    step = make_step(stateful_loss, opt, stateful=True)
    res = fit(step, state, DATA, n_steps=100, chunk_size=50, progress=False)
    assert int(res.state.model_state["count"]) == 100
    # The metric logged the count seen by each step: 0, 1, ..., 99.
    np.testing.assert_array_equal(res.history["count"], np.arange(100))
    # Power iteration converged to the top eigenvector of A.
    _, vecs = np.linalg.eigh(np.asarray(A))
    np.testing.assert_allclose(abs(np.dot(res.state.model_state["v"], vecs[:, -1])), 1.0, atol=1e-5)
    # Training still happened.
    np.testing.assert_allclose(res.state.params, lstsq_solution(), atol=1e-4)


# ---------------------------------------------------------------------------------------
# Validation, best parameters and early stopping.


def scalar_loss(params, batch, key):
    return (params["w"] - 1.0) ** 2, {}


def val_loss(params):
    # Measured against a different target: training overshoots it, so validation
    # improves, then worsens.
    return (params["w"] - 0.3) ** 2


def _trajectory(step, state, n):
    ws = []
    for _ in range(n):
        state, _ = step(state, None)
        ws.append(float(state.params["w"]))
    return np.array(ws)


def test_early_stopping_keeps_best_params(rng):
    opt = optax.sgd(0.05)
    step = make_step(scalar_loss, opt)
    state = init_state({"w": jnp.zeros(())}, opt, key=rng)
    data = lambda key, step: None  # noqa: E731
    res = fit(step, state, data, n_steps=100, chunk_size=2, validate=val_loss, patience=3,
              progress=False)
    assert res.stopped_early
    n_done = int(res.state.step)
    assert n_done < 100
    vl, vs = res.history["val_loss"], res.history["val_step"]
    np.testing.assert_array_equal(vs, np.arange(2, n_done + 1, 2))
    assert len(res.history["loss"]) == n_done
    best = int(np.argmin(vl))
    # Stopped exactly ``patience`` evaluations after the best one.
    assert len(vl) - 1 - best == 3
    np.testing.assert_allclose(res.best_val, vl[best])
    np.testing.assert_allclose(val_loss(res.best_params), res.best_val, rtol=1e-6)
    # The best parameters are those at the best validation step, not the final ones.
    traj = _trajectory(jax.jit(step), state, n_done)
    np.testing.assert_allclose(res.best_params["w"], traj[vs[best] - 1], atol=1e-7)
    assert abs(float(res.state.params["w"]) - float(res.best_params["w"])) > 1e-3
    assert val_loss(res.state.params) > res.best_val


def test_early_stopping_per_seed_best_params(rng):
    opt = optax.sgd(0.05)
    step = make_step(scalar_loss, opt)
    w0 = jnp.array([-1.0, 0.0, 0.5])
    keys = jax.random.split(rng, 3)
    states = jax.vmap(lambda w, k: init_state({"w": w}, opt, key=k))(w0, keys)
    res = fit(step, states, lambda key, step: None, n_steps=80, chunk_size=1, validate=val_loss,
              patience=4, seeds=True, progress=False)
    vl = res.history["val_loss"]
    assert vl.shape[1] == 3
    assert res.best_val.shape == (3,)
    np.testing.assert_allclose(res.best_val, vl.min(axis=0))
    for i in range(3):
        traj = _trajectory(jax.jit(step), jax.tree_util.tree_map(lambda x: x[i], states),
                           int(res.state.step[i]))
        best = int(np.argmin(vl[:, i]))
        np.testing.assert_allclose(res.best_params["w"][i], traj[best], atol=1e-7)
    # The run stops only once every seed has run out of patience.
    assert res.stopped_early
    since = len(vl) - 1 - np.argmin(vl, axis=0)
    assert since.min() == 4


def test_validate_without_patience_runs_to_the_end(rng):
    opt = optax.sgd(0.05)
    state = init_state({"w": jnp.zeros(())}, opt, key=rng)
    res = fit(make_step(scalar_loss, opt), state, lambda k, s: None, n_steps=40, chunk_size=10,
              validate=val_loss, progress=False)
    assert not res.stopped_early and int(res.state.step) == 40
    assert res.history["val_loss"].shape == (4,)
    np.testing.assert_allclose(res.best_val, res.history["val_loss"].min())


@pytest.mark.parametrize("patience", [1, 0, -1])
def test_patience_validation(rng, patience):
    opt = optax.sgd(0.1)
    state = init_state(jnp.zeros(3), opt, key=rng)
    with pytest.raises(ValueError, match="patience"):
        kw = {} if patience == 1 else {"validate": lambda p: jnp.sum(p)}
        fit(make_step(mse_loss, opt), state, DATA, n_steps=2, patience=patience, progress=False, **kw)


# ---------------------------------------------------------------------------------------
# Checkpoints.


def test_checkpoint_roundtrip_with_prng_keys(tmp_path, rng):
    keys = jax.random.split(rng, 4)
    tree = {
        "key": rng,
        "keys": keys,
        "w": jnp.arange(6.0).reshape(2, 3),
        "n": jnp.array(7, jnp.int32),
        "nested": [jnp.ones(2, jnp.float32), {"b": jnp.array([True, False])}],
        "np64": np.array([1.5, np.inf]),
    }
    path = tmp_path / "ck.npz"
    save_checkpoint(path, tree, extra={"loss": np.array([3.0, 2.0, 1.0])})
    like = jax.tree_util.tree_map(lambda x: x, tree)
    out, extra = load_checkpoint(path, like, with_extra=True)
    assert_trees_equal(out, tree)
    assert out["np64"].dtype == np.float64
    assert jax.random.key_impl(out["key"]) == jax.random.key_impl(rng)
    # The restored keys draw the same numbers.
    np.testing.assert_array_equal(jax.random.normal(out["key"], (3,)), jax.random.normal(rng, (3,)))
    np.testing.assert_array_equal(
        jax.vmap(lambda k: jax.random.uniform(k))(out["keys"]),
        jax.vmap(lambda k: jax.random.uniform(k))(keys),
    )
    np.testing.assert_array_equal(extra["loss"], [3.0, 2.0, 1.0])
    assert_trees_equal(load_checkpoint(path, like), tree)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]


def test_checkpoint_mismatch_raises(tmp_path, rng):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"w": jnp.zeros(3), "k": rng})
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(path, {"w": jnp.zeros(4), "k": rng})
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(path, {"w": jnp.zeros(3, jnp.int32), "k": rng})
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(path, {"w": jnp.zeros(3), "k": jax.random.split(rng, 2)})
    with pytest.raises(ValueError, match="holds 2 arrays"):
        load_checkpoint(path, {"w": jnp.zeros(3), "k": rng, "extra": jnp.zeros(1)})


def test_fit_with_mismatched_checkpoint_raises(tmp_path, rng):
    opt = optax.sgd(0.1)
    step = make_step(mse_loss, opt)
    path = tmp_path / "run.npz"
    fit(step, init_state(jnp.zeros(3), opt, key=rng), DATA, n_steps=2, chunk_size=2,
        checkpoint=path, progress=False)
    other = init_state({"w": jnp.zeros(3)}, optax.adam(0.1), key=rng)
    with pytest.raises(ValueError):
        fit(make_step(lambda p, b, k: mse_loss(p["w"], b, k), optax.adam(0.1)), other, DATA,
            n_steps=4, chunk_size=2, checkpoint=path, progress=False)


class _Crash(Exception):
    pass


def test_checkpoint_resume_is_exact(tmp_path, rng, monkeypatch):
    opt = optax.adam(5e-2)
    step = make_step(noisy_mse_loss, opt)
    state = init_state(jnp.zeros(3), opt, key=rng)
    validate = lambda p: jnp.mean((X @ p - Y) ** 2) + jnp.sum(p**2)  # noqa: E731
    kw = dict(chunk_size=3, batch_size=8, validate=validate, progress=False)
    full = fit(step, state, DATA, n_steps=9, **kw)

    path = tmp_path / "run.npz"
    real_save = train.checkpoint.save_checkpoint
    calls = []

    def crashing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise _Crash("interrupted while writing the second checkpoint")
        real_save(*args, **kwargs)

    monkeypatch.setattr(train.checkpoint, "save_checkpoint", crashing_save)
    with pytest.raises(_Crash):
        fit(step, state, DATA, n_steps=9, checkpoint=path, **kw)
    monkeypatch.undo()
    # The chunk written before the interruption is intact.
    best = train.Best.init(state.params, ())
    saved, extra = load_checkpoint(path, (state, best.as_tree()), with_extra=True)
    assert int(saved[0].step) == 3
    assert extra["loss"].shape == (3,)
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]

    # Resume in two more pieces (resuming a resumed run must work too), then compare;
    # a rerun of a finished run changes nothing.
    part = fit(step, state, DATA, n_steps=6, checkpoint=path, **kw)
    assert int(part.state.step) == 6
    resumed = fit(step, state, DATA, n_steps=9, checkpoint=path, **kw)
    for r in (resumed, fit(step, state, DATA, n_steps=9, checkpoint=path, **kw)):
        assert_trees_equal(r.state, full.state)
        assert_trees_equal(r.best_params, full.best_params)
        np.testing.assert_array_equal(r.best_val, full.best_val)
        assert set(r.history) == set(full.history)
        for k in full.history:
            np.testing.assert_array_equal(r.history[k], full.history[k])


def test_checkpoint_resume_with_seeds(tmp_path, rng):
    opt = optax.sgd(0.05)
    step = make_step(noisy_mse_loss, opt)
    states = jax.vmap(lambda k: init_state(jnp.zeros(3), opt, key=k))(jax.random.split(rng, 2))
    kw = dict(chunk_size=2, seeds=True, progress=False)
    full = fit(step, states, DATA, n_steps=4, **kw)
    path = tmp_path / "seeds.npz"
    fit(step, states, DATA, n_steps=2, checkpoint=path, **kw)
    resumed = fit(step, states, DATA, n_steps=4, checkpoint=path, **kw)
    assert_trees_equal(resumed.state, full.state)
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])
    assert resumed.history["loss"].shape == (4, 2)


# ---------------------------------------------------------------------------------------
# Bad inputs and minibatch sampling.


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        (DATA, {"batch_size": 65}, "batch_size"),
        (DATA, {"batch_size": 0}, "batch_size"),
        (DATA, {"batch_size": -1}, "batch_size"),
        ((X, Y[:10]), {}, "leading"),
        ({}, {}, "empty"),
        ((X[:0], Y[:0]), {}, "no examples"),
        ((X, jnp.zeros(())), {}, "leading"),
        (DATA, {"n_steps": -1}, "n_steps"),
        (DATA, {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_inputs(rng, data, kwargs, match):
    opt = optax.sgd(0.1)
    state = init_state(jnp.zeros(3), opt, key=rng)
    kwargs = {"n_steps": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit(make_step(mse_loss, opt), state, data, progress=False, **kwargs)


def test_sample_minibatch_without_replacement(rng):
    idx = jnp.arange(20)
    data = {"i": idx, "x": jnp.stack([idx, -idx], axis=1)}
    sample = jax.jit(sample_minibatch, static_argnums=1)
    b = sample(data, 20, key=rng)
    assert sorted(np.asarray(b["i"]).tolist()) == list(range(20))
    b = sample(data, 7, key=jax.random.fold_in(rng, 1))
    assert b["x"].shape == (7, 2)
    assert len(set(np.asarray(b["i"]).tolist())) == 7
    np.testing.assert_array_equal(b["x"][:, 0], b["i"])  # rows stay aligned across leaves
    b2 = sample(data, 7, key=jax.random.fold_in(rng, 2))
    assert not np.array_equal(b["i"], b2["i"])


def test_init_state_defaults(rng):
    opt = optax.adam(1e-3)
    s = init_state({"a": jnp.ones(2)}, opt, key=rng)
    assert isinstance(s, TrainState)
    assert s.step.dtype == jnp.int32 and int(s.step) == 0
    assert s.model_state == {}
    assert float(s.multiplier) == 0.0
    s = init_state({"a": jnp.ones(2)}, opt, key=rng, uzawa=Uzawa(lambda0=2.5, tau=0.1))
    assert s.multiplier.dtype == jnp.float32 and float(s.multiplier) == 2.5


def test_fit_keeps_one_best_per_model_and_resumes(tmp_path, rng):
    # params [G=3, d]: three independent least-squares models; validate returns [G] losses,
    # each model keeps its own best, and a run split by a checkpoint equals an unbroken one
    opt = optax.sgd(0.05)
    step = make_step(lambda p, b, k: (jnp.sum(jax.vmap(lambda q: mse_loss(q, b, k)[0])(p)), {}), opt)
    start = jnp.stack([jnp.zeros(3), 5 * jnp.ones(3), -5 * jnp.ones(3)])
    validate = jax.vmap(lambda q: mse_loss(q, DATA, None)[0])
    kw = dict(chunk_size=2, validate=validate, progress=False)
    full = fit(step, init_state(start, opt, key=rng), DATA, n_steps=6, **kw)
    path = tmp_path / "run.npz"
    fit(step, init_state(start, opt, key=rng), DATA, n_steps=4, checkpoint=path, **kw)
    resumed = fit(step, init_state(start, opt, key=rng), DATA, n_steps=6, checkpoint=path, **kw)
    hist = np.asarray(full.history["val_loss"])  # [n_evals, G]
    assert full.best_val.shape == (3,) and hist.shape == (3, 3)
    np.testing.assert_allclose(full.best_val, hist.min(axis=0))
    np.testing.assert_allclose(np.asarray(validate(full.best_params)), full.best_val, rtol=1e-5)
    np.testing.assert_allclose(resumed.best_val, full.best_val, rtol=1e-6)


# ---------------------------------------------------------------------------------------
# Fingerprints, corrupted checkpoints, the metrics CSV, curricula, NaN validations.


def test_resume_with_another_fingerprint_or_model_is_refused(tmp_path, rng):
    opt = optax.sgd(0.1)
    step = make_step(lambda p, b, k: mse_loss(p["w"], b, k), opt)
    path = tmp_path / "run.npz"
    kw = dict(n_steps=2, chunk_size=2, checkpoint=path, progress=False)
    fit(step, init_state({"w": jnp.zeros(3)}, opt, key=rng), DATA, fingerprint="config-a", **kw)
    with pytest.raises(ValueError, match="written by a different model or configuration"):
        fit(step, init_state({"w": jnp.zeros(3)}, opt, key=rng), DATA, fingerprint="config-b", **kw)
    # same shapes, another model (parameter names differ): the structure hash tells them apart
    other = make_step(lambda p, b, k: mse_loss(p["v"], b, k), opt)
    with pytest.raises(ValueError, match="does not match the state"):
        fit(other, init_state({"v": jnp.zeros(3)}, opt, key=rng), DATA, fingerprint="config-a", **kw)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_checkpoint_is_refused_by_name(tmp_path, rng, damage):
    path = tmp_path / "ck.npz"
    save_checkpoint(path, {"w": jnp.arange(1000.0), "k": rng})
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"not a zip" * 10, "empty": b""}[damage])
    with pytest.raises(ValueError, match=f"checkpoint {path} is corrupted or truncated"):
        load_checkpoint(path, {"w": jnp.zeros(1000), "k": rng})


def test_metrics_csv_rows_per_chunk_and_exact_after_resume(tmp_path, rng):
    import csv

    opt = optax.sgd(0.05)
    step = make_step(noisy_mse_loss, opt)
    validate = lambda p: jnp.mean((X @ p - Y) ** 2)  # noqa: E731
    kw = dict(chunk_size=3, batch_size=8, validate=validate, progress=False)
    full = fit(step, init_state(jnp.zeros(3), opt, key=rng), DATA, n_steps=8, metrics_csv=tmp_path / "a.csv", **kw)
    rows = list(csv.DictReader((tmp_path / "a.csv").open()))
    assert [int(r["step"]) for r in rows] == [3, 6, 8]
    np.testing.assert_allclose([float(r["loss"]) for r in rows],
                               [full.history["loss"][a:b].mean() for a, b in ((0, 3), (3, 6), (6, 8))], rtol=1e-6)
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], full.history["val_loss"], rtol=1e-6)
    # interrupted after 6 steps, resumed to 8: the same file, no lost or repeated row
    path, log = tmp_path / "run.npz", tmp_path / "b.csv"
    fit(step, init_state(jnp.zeros(3), opt, key=rng), DATA, n_steps=6, checkpoint=path, metrics_csv=log, **kw)
    with log.open("a") as f:
        f.write("9,9,9,9\n")  # a row the checkpoint does not know of (written after it)
    fit(step, init_state(jnp.zeros(3), opt, key=rng), DATA, n_steps=8, checkpoint=path, metrics_csv=log, **kw)
    assert log.read_text() == (tmp_path / "a.csv").read_text()


def test_curriculum_stages_carry_the_best(rng):
    # two stages with different (static) batch shapes, one fit each; the best parameters of
    # stage 1 survive a worse stage 2, and stage 2 continues the step counter
    opt = optax.sgd(0.05)
    step = make_step(mse_loss, opt)
    validate = lambda p: jnp.mean((X @ p - Y) ** 2)  # noqa: E731
    first = fit(step, init_state(jnp.zeros(3), opt, key=rng), (X[:16], Y[:16]), n_steps=20, chunk_size=5,
                validate=validate, progress=False)
    bad = optax.sgd(5.0)  # stage 2 diverges: its validations are worse than stage 1's best
    state2 = first.state.replace(opt_state=bad.init(first.state.params))
    second = fit(make_step(mse_loss, bad), state2, DATA, n_steps=30, chunk_size=5, validate=validate,
                 best=first.best, progress=False)
    assert int(second.state.step) == 30
    assert second.best_step <= 20 and float(second.best_val) == float(first.best_val)
    np.testing.assert_array_equal(second.best_params, first.best_params)
    with pytest.raises(ValueError, match="best tracks validations of shape"):
        states = jax.vmap(lambda k: init_state(jnp.zeros(3), opt, key=k))(jax.random.split(rng, 2))
        fit(step, states, DATA, n_steps=1, validate=validate, seeds=True, best=first.best, progress=False)


def test_nan_validation_is_never_the_best_and_is_reported(rng):
    opt = optax.sgd(0.05)
    w0 = jnp.array([0.0, 1.0])
    states = jax.vmap(lambda w, k: init_state({"w": w}, opt, key=k))(w0, jax.random.split(rng, 2))
    validate = lambda p: jnp.where(p["w"] > 0.5, jnp.nan, val_loss(p))  # noqa: E731  seed 1: always NaN
    with pytest.warns(RuntimeWarning, match="never finite for 1 of 2"):
        res = fit(make_step(scalar_loss, opt), states, lambda k, s: None, n_steps=6, chunk_size=2,
                  validate=validate, seeds=True, progress=False)
    assert np.isfinite(res.best_val[0]) and np.isnan(res.best_val[1])
    assert res.best_step.tolist()[1] == -1 and float(res.best_params["w"][1]) == 1.0


# ---------------------------------------------------------------------------------------
# scan_fit: the same loop as one traceable function


def test_scan_fit_takes_the_steps_of_fit():
    opt = optax.sgd(0.05)
    step = make_step(noisy_mse_loss, opt)
    state = init_state(jnp.zeros(3), opt, key=jax.random.key(3))
    ref = fit(step, state, DATA, n_steps=40, chunk_size=10, batch_size=16, progress=False)
    evaluate = lambda p: {"err": jnp.sum((p - W_TRUE) ** 2)}  # noqa: E731
    st, evals = jax.jit(lambda s: train.scan_fit(step, s, DATA, n_steps=40, batch_size=16,
                                                 evaluate=evaluate, eval_every=10))(state)
    np.testing.assert_allclose(st.params, ref.state.params, rtol=1e-6, atol=1e-7)
    assert int(st.step) == 40 and evals["err"].shape == (4,)
    np.testing.assert_allclose(evals["err"][-1], jnp.sum((st.params - W_TRUE) ** 2), rtol=1e-6)


def test_scan_fit_vmaps_over_runs_with_their_own_data():
    opt = optax.sgd(0.1)
    step = make_step(mse_loss, opt)
    halves = jax.tree_util.tree_map(lambda a: jnp.stack([a[:32], a[32:]]), DATA)

    def one(data):
        return train.scan_fit(step, init_state(jnp.zeros(3), opt, key=jax.random.key(0)), data,
                              n_steps=300)[0].params

    got = jax.jit(jax.vmap(one))(halves)
    for i in range(2):
        x, y = halves[0][i], halves[1][i]
        np.testing.assert_allclose(got[i], jnp.linalg.lstsq(x, y)[0], atol=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_steps": 10, "evaluate": lambda p: {}}, "needs eval_every"),
    ({"n_steps": 10, "evaluate": lambda p: {}, "eval_every": 3}, "multiple"),
    ({"n_steps": 0}, "multiple"),
])
def test_scan_fit_refuses_bad_schedules(kwargs, match):
    opt = optax.sgd(0.1)
    with pytest.raises(ValueError, match=match):
        train.scan_fit(make_step(mse_loss, opt), init_state(jnp.zeros(3), opt, key=jax.random.key(0)),
                       DATA, **kwargs)
