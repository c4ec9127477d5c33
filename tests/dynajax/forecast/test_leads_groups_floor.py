"""The grouping protocol of thesis Tables 3.11 / 3.15: consecutive groups, per-group training, One-For-All floor."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.forecast.leads_baselines import group_mse, grouped, one_for_all_floor


def _states(key):
    x = np.array(jax.random.normal(key, (8, 3, 5, 2)), np.float64)
    x[:, :, 0] = x[:1, :, 0]  # initial states shared across environments
    return x


def test_floor_is_the_best_group_constant_prediction(rng):
    k_x, k_p = jax.random.split(rng)
    x = _states(k_x)
    noise = 0.1 * np.asarray(jax.random.normal(k_p, (5, 8, *x.shape[1:])))
    for m in (1, 2, 4, 8):
        g = x.reshape(8 // m, m, *x.shape[1:])
        floor = one_for_all_floor(x, m)
        mean = g.mean(1, keepdims=True)
        assert np.isclose(np.mean((np.broadcast_to(mean, g.shape) - g) ** 2), floor)
        for dn in noise[:, : 8 // m, None]:  # any other prediction shared by a group does worse
            pred = mean + dn
            assert np.mean((np.broadcast_to(pred, g.shape) - g) ** 2) > floor
    # consecutive groups are nested, so by the law of total variance the floor cannot fall with m
    floors = [one_for_all_floor(x, m) for m in (1, 2, 4, 8)]
    assert floors[0] == 0.0 and all(a <= b + 1e-12 for a, b in itertools.pairwise(floors))
    # grouping the first 4 environments only: their own within-group variance
    np.testing.assert_allclose(one_for_all_floor(x, 4, n_env=4), one_for_all_floor(x[:4], 4, n_env=4))


def test_floor_rejects_bad_inputs(rng):
    x = _states(rng)
    with pytest.raises(ValueError, match="divide n_env=8"):
        one_for_all_floor(x, 3)
    with pytest.raises(ValueError, match="n_env >= 8"):
        one_for_all_floor(x[:4], 2)
    y = x.copy()
    y[1, 0, 0] += 1.0
    with pytest.raises(ValueError, match="shared"):
        one_for_all_floor(y, 2)


def test_grouped_is_consecutive():
    x = jnp.arange(10.0)[:, None] * jnp.ones((10, 3))
    g = grouped(x, 4, n_env=8)
    assert g.shape == (2, 4, 3)
    np.testing.assert_array_equal(g[1, :, 0], [4, 5, 6, 7])  # environments 8, 9 left out
    with pytest.raises(ValueError, match="divide"):
        grouped(x, 3, n_env=8)
    with pytest.raises(ValueError, match="n_env"):
        grouped(x, 1, n_env=11)


@pytest.mark.slow
def test_group_mse_trains_every_group(rng):
    """du/dt = a_e u with a different rate per environment: each group's f + g_e fits its own."""
    rates = -0.2 * jnp.arange(1, 5.0)  # 4 environments
    u0 = jax.random.uniform(rng, (4, 2, 1, 1), minval=1.0, maxval=2.0)  # [env, traj, 1, dim]
    ts = 0.25 * jnp.arange(6)
    states = u0 * jnp.exp(rates[:, None, None, None] * ts[None, None, :, None])  # [env, traj, time, 1]
    net = nn.Dense(1, use_bias=False, kernel_init=nn.initializers.zeros)
    keys = jax.vmap(lambda s: jax.random.fold_in(rng, s))(jnp.arange(2))
    kw = dict(dt=0.25, keys=keys, chunk_size=50, lr=3e-2)
    (start,) = group_mse("leads_no_min", net, 2, states, states, [states], n_steps=1, **kw)
    val, test = group_mse("leads_no_min", net, 2, states, states, [states, states], n_steps=300, **kw)
    assert val.shape == test.shape == (2,)
    np.testing.assert_allclose(val, test)
    assert np.all(test < 1e-3 * start)
