"""LEADS library: penalty, environment vmap, g = 0, scheduled sampling, frozen-f adaptation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.forecast import leads, leads_baselines
from dynajax.solve import integrate

DIM, N_ENV, K, DT = 3, 4, 6, 0.25


def _model(**kw):
    return leads.make_model(kw.pop("variant", "leads"), nn.Dense(DIM, use_bias=False), N_ENV, DT, **kw)


def _states(rng, n_traj=2):
    """Exact trajectories of du/dt = A_e u (a different stable A_e per environment)."""
    k1, k2 = jax.random.split(rng)
    a = -0.5 * jnp.eye(DIM) + 0.2 * jax.random.normal(k1, (N_ENV, DIM, DIM))
    u0 = jax.random.normal(k2, (N_ENV, n_traj, DIM))
    ts = DT * np.arange(K)
    sol = jax.vmap(lambda ae, u: jax.vmap(lambda t: jax.scipy.linalg.expm(t * ae) @ u.T)(ts))(a, u0)
    return jnp.transpose(sol, (0, 3, 1, 2))  # [env, traj, time, dim]


@pytest.mark.slow
def test_penalty_equals_its_definition_on_linear_g(rng):
    lam, alpha = 7.0, 0.3
    model = _model(lam=lam, alpha=alpha, n_power_iter=200)
    params = leads.init_params(model, jnp.zeros(DIM), key=rng)
    x = jax.random.normal(jax.random.fold_in(rng, 1), (N_ENV, 5, DIM))
    sn = leads.init_sn_state(model, params, key=jax.random.fold_in(rng, 2))
    pen, parts, _ = leads.penalty(model, params["g"], sn, x)
    w = np.asarray(params["g"]["kernel"], np.float64)  # [env, in, out]: g_e(x) = x @ W_e
    xs = np.asarray(x, np.float64)
    expected = 0.0
    for e in range(N_ENV):
        gx = xs[e] @ w[e]
        ratio = np.sum(gx**2, -1) / (np.linalg.norm(xs[e], axis=-1) + 1e-5) ** 2
        expected += ratio.mean() + alpha * np.linalg.svd(w[e], compute_uv=False)[0] ** 2
    np.testing.assert_allclose(float(pen), expected / lam, rtol=1e-4)
    frob = _model(lam=lam, omega="frobenius")
    pen_f, _, _ = leads.penalty(frob, params["g"], {}, x)
    np.testing.assert_allclose(float(pen_f), np.sum(w**2) / lam, rtol=1e-5)


@pytest.mark.slow
def test_environment_vmap_equals_a_loop(rng):
    model = _model()
    params = leads.init_params(model, jnp.zeros(DIM), key=rng)
    states = _states(jax.random.fold_in(rng, 1))
    pred = leads.predict(model, params, states[:, :, 0], K)
    for e in range(N_ENV):
        a_e = params["f"]["kernel"] + params["g"]["kernel"][e]
        field = lambda t, y, _: y @ a_e  # noqa: E731
        want = integrate(field, states[e, :, 0], DT * np.arange(K), solver="rk4_38", dt0=DT)
        np.testing.assert_allclose(pred[e], jnp.moveaxis(want, 0, 1), rtol=1e-5, atol=1e-6)
    d = leads.derivative(model, params, states[:, :, 3])
    loop = jnp.stack([states[e, :, 3] @ (params["f"]["kernel"] + params["g"]["kernel"][e]) for e in range(N_ENV)])
    np.testing.assert_allclose(d, loop, rtol=1e-5, atol=1e-6)


def test_zero_g_gives_f_alone(rng):
    model = _model()
    params = leads.zero_like_g(leads.init_params(model, jnp.zeros(DIM), key=rng))
    states = _states(jax.random.fold_in(rng, 1))
    pred = leads.predict(model, params, states[:, :, 0], K)
    field = lambda t, y, _: y @ params["f"]["kernel"]  # noqa: E731
    want = integrate(field, states[:, :, 0], DT * np.arange(K), solver="rk4_38", dt0=DT)
    np.testing.assert_allclose(pred, jnp.moveaxis(want, 0, 2), rtol=1e-5, atol=1e-6)


def test_scheduled_sampling_extremes(rng):
    model = _model()
    params = leads.init_params(model, jnp.zeros(DIM), key=rng)
    states = _states(jax.random.fold_in(rng, 1))
    key = jax.random.fold_in(rng, 2)
    np.testing.assert_allclose(leads.rollout(model, params, states, 0.0, key=key),
                               leads.predict(model, params, states[:, :, 0], K), rtol=1e-6)
    # eps = 1: every frame is one step from the previous ground-truth frame
    teacher = leads.rollout(model, params, states, 1.0, key=key)
    one_step = leads.predict(model, params, states[:, :, :-1].reshape(N_ENV, -1, DIM), 2)[:, :, 1]
    np.testing.assert_allclose(teacher[:, :, 1:], one_step.reshape(N_ENV, 2, K - 1, DIM), rtol=1e-5, atol=1e-6)
    assert float(leads.scheduled_sampling_eps(25)) == pytest.approx(0.99**2)


@pytest.mark.slow
def test_leads_training_fits_and_adaptation_keeps_f_bit_identical(rng):
    states = _states(rng)
    model = _model(lam=1e3, alpha=1e-3)
    keys = jax.random.split(jax.random.fold_in(rng, 3), 2)
    res = leads.fit_leads(model, states, keys=keys, val=states, n_steps=150, chunk_size=50, lr=1e-2)
    first, best = res.history["val_loss"][0], res.best_val
    assert np.all(best < 0.2 * first), (first, best)
    f = res.best_params["f"]
    f_before = jax.tree_util.tree_map(np.array, f)
    mse, state = leads_baselines.adaptation_curve(model, states, states, (20, 60), keys=keys, frozen_f=f, lr=1e-2)
    assert mse.shape == (2, 2) and np.all(mse[:, 1] <= mse[:, 0] * 1.01)
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.model_state["frozen_f"], f_before)
    jax.tree_util.tree_map(np.testing.assert_array_equal, f, f_before)


@pytest.mark.slow
def test_groups_select_their_own_best_step(rng):
    # three independent groups of N_ENV environments (scaled data, so their validation curves
    # differ): each group keeps the parameters of its own lowest validation
    # MSE, which the recorded history and a re-evaluation of the kept parameters confirm
    states = jnp.stack([s * _states(jax.random.fold_in(rng, i)) for i, s in enumerate((1.0, 2.0, 3.0))])  # [G=3, env, traj, time, d]
    model = _model(lam=1e3, alpha=1e-3)
    keys = jax.random.split(jax.random.fold_in(rng, 3), 2)
    res = leads.fit_leads(model, states, keys=keys, val=states, n_steps=60, chunk_size=20, lr=3e-2, groups=True)
    hist = np.asarray(res.history["val_loss"])  # [n_evals, seeds, G]
    assert res.best_val.shape == (2, 3) and hist.shape[1:] == (2, 3)
    np.testing.assert_allclose(res.best_val, hist.min(axis=0), rtol=1e-6)
    kept = leads_baselines.evaluate(model, res.best_params, states, groups=True)  # [seeds, G, env]
    np.testing.assert_allclose(np.asarray(kept).reshape(2, 3, -1).mean(-1), res.best_val, rtol=1e-4)


def test_invalid_configuration_raises():
    with pytest.raises(ValueError, match="unknown variant"):
        _model(variant="nope")
    with pytest.raises(ValueError, match="lam"):
        _model(lam=-1.0)
    with pytest.raises(ValueError, match="omega"):
        _model(omega="l1")
