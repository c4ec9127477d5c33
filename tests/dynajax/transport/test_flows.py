"""Oracle tests for dynajax.transport.flows (particle flows, SW-JKO, sphere variants)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.transport.flows import (
    interaction_energy,
    kl_to_target,
    particle_flow,
    particle_flow_sphere,
    potential_energy,
    ssw_jko,
    sw_jko,
)
from dynajax.transport.sliced import random_stiefel, spherical_sliced_wasserstein

KEY = jax.random.PRNGKey(0)


def _sphere_cloud(key, n, d=3, loc=None, scale=1.0):
    z = scale * jax.random.normal(key, (n, d))
    if loc is not None:
        z = z + loc
    return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# functionals
# ---------------------------------------------------------------------------------------------
def test_functional_values():
    x = jax.random.normal(KEY, (7, 3))
    b = jnp.array([1.0, 2.0, -1.0])
    P = potential_energy(lambda z: 0.5 * jnp.sum((z - b) ** 2))
    np.testing.assert_allclose(
        P(x), 0.5 * np.mean(np.sum((np.asarray(x) - b) ** 2, -1)), rtol=1e-6
    )
    I = interaction_energy(lambda z: 0.5 * jnp.sum(z**2))
    xn = np.asarray(x, np.float64)
    brute = sum(0.5 * np.sum((xi - xj) ** 2) for xi in xn for xj in xn) / (2 * 7**2)
    np.testing.assert_allclose(I(x), brute, rtol=1e-5)
    np.testing.assert_allclose((P + I)(x), P(x) + I(x), rtol=1e-6)
    K = kl_to_target(lambda z: -0.5 * jnp.sum(z**2))
    assert K.temperature == 1.0
    np.testing.assert_allclose(K(x), 0.5 * np.mean(np.sum(xn**2, -1)), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# (a) particle flows
# ---------------------------------------------------------------------------------------------
def test_potential_flow_analytic_rate():
    b = jnp.array([1.5, -0.5, 2.0])
    x0 = jax.random.normal(KEY, (64, 3))
    step, n_steps = 0.1, 40
    x, snaps = particle_flow(
        x0, grad_V=lambda z: z - b, step=step, n_steps=n_steps, snapshot_every=5
    )
    assert snaps.shape == (9, 64, 3)
    for i, k in enumerate(range(0, n_steps + 1, 5)):
        expected = np.asarray(b) + (1 - step) ** k * (
            np.asarray(x0, np.float64) - np.asarray(b)
        )
        np.testing.assert_allclose(snaps[i], expected, atol=1e-5)
    np.testing.assert_array_equal(snaps[-1], x)
    # the same through V (autodiff) and a snapshot period that does not divide n_steps
    x2, snaps2 = particle_flow(
        x0,
        V=lambda z: 0.5 * jnp.sum((z - b) ** 2),
        step=step,
        n_steps=n_steps,
        snapshot_every=7,
    )
    assert snaps2.shape == (1 + 6, 64, 3)
    np.testing.assert_allclose(x2, x, atol=1e-6)


def test_langevin_ou_stationary_variance():
    n, d, step = 4000, 2, 0.1
    x0 = jnp.zeros((n, d))
    K = kl_to_target(lambda z: -0.5 * jnp.sum(z**2))
    x, _ = particle_flow(x0, **K.flow_kwargs(), step=step, n_steps=150, key=KEY)
    var_inf = 1.0 / (1.0 - step / 2)
    # after 150 steps the variance is var_inf (1 - 0.81^150) = var_inf to 1e-13
    se_mean = np.sqrt(var_inf / n)
    np.testing.assert_array_less(np.abs(np.mean(x, 0)), 4 * se_mean)
    se_var = var_inf * np.sqrt(2.0 / n)
    np.testing.assert_array_less(np.abs(np.var(x, 0) - var_inf), 4 * se_var)
    # deterministic given the key
    x_again, _ = particle_flow(
        x0, **K.flow_kwargs(), step=step, n_steps=150, key=KEY, snapshot_every=40
    )
    np.testing.assert_allclose(x_again, x, atol=1e-6)


def test_interaction_flow_contracts_to_mean():
    x0 = jax.random.normal(KEY, (50, 2)) * 2 + 3
    step, n_steps = 0.2, 20
    m = np.mean(np.asarray(x0, np.float64), 0)
    _, snaps = particle_flow(
        x0,
        W=lambda z: 0.5 * jnp.sum(z**2),
        step=step,
        n_steps=n_steps,
        snapshot_every=1,
    )
    for k in range(n_steps + 1):
        np.testing.assert_allclose(np.mean(snaps[k], 0), m, atol=1e-5)
        expected = m + (1 - step) ** k * (np.asarray(x0, np.float64) - m)
        np.testing.assert_allclose(snaps[k], expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# (b) SW-JKO
# ---------------------------------------------------------------------------------------------
def test_sw_jko_moves_mean_to_b():
    b = jnp.array([2.0, -1.0])
    F = potential_energy(lambda z: 0.5 * jnp.sum((z - b) ** 2))
    x0 = jax.random.normal(KEY, (100, 2))
    dists = {}
    for h in (0.1, 0.5):
        _, snaps = sw_jko(
            x0,
            F,
            h=h,
            n_outer=12,
            n_inner=40,
            lr=0.05,
            n_proj=30,
            key=jax.random.PRNGKey(1),
            progress=h == 0.5,
        )
        assert snaps.shape == (13, 100, 2)
        dists[h] = np.linalg.norm(np.mean(snaps, 1) - np.asarray(b), axis=-1)
    d_fast = dists[0.5]
    assert np.all(np.diff(dists[0.1]) < 0), dists[0.1]
    assert np.all(np.diff(d_fast[:6]) < 0), d_fast
    assert d_fast[-1] < 0.05, d_fast
    # larger h moves faster per step
    assert np.all(d_fast[1:4] < dists[0.1][1:4])


# ---------------------------------------------------------------------------------------------
# (d) sphere
# ---------------------------------------------------------------------------------------------
def test_sphere_flow_toward_mu():
    mu = jnp.array([0.0, 0.6, 0.8])
    x0 = _sphere_cloud(KEY, 200)
    x, snaps = particle_flow_sphere(
        x0, V=lambda z: -jnp.dot(z, mu), step=0.1, n_steps=60, snapshot_every=5
    )
    cos = np.mean(np.asarray(snaps) @ np.asarray(mu), axis=1)
    assert np.all(np.diff(cos) > 0), cos
    assert cos[-1] > 0.99
    np.testing.assert_allclose(np.linalg.norm(snaps, axis=-1), 1.0, atol=1e-6)
    # Langevin on the sphere stays on the sphere
    x, _ = particle_flow_sphere(
        x0, V=lambda z: -jnp.dot(z, mu), step=0.05, n_steps=20, key=KEY, temperature=0.5
    )
    np.testing.assert_allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("p", [1.0, 2.0])
def test_ssw_jko_decreases_ssw_to_target(p):
    mu = jnp.array([0.0, 0.0, 1.0])
    n = 40
    x0 = _sphere_cloud(KEY, n)
    target = _sphere_cloud(jax.random.PRNGKey(3), 200, loc=mu, scale=0.1)
    F = potential_energy(lambda z: -10.0 * jnp.dot(z, mu))
    _, snaps = ssw_jko(
        x0,
        F,
        h=0.05,
        n_outer=6,
        n_inner=10,
        lr=0.03,
        n_proj=10,
        key=jax.random.PRNGKey(2),
        p=p,
    )
    assert snaps.shape == (7, n, 3)
    np.testing.assert_allclose(np.linalg.norm(snaps, axis=-1), 1.0, atol=1e-5)
    U = random_stiefel(100, 3, key=jax.random.PRNGKey(7))
    ssw_fn = jax.jit(
        lambda s, t: spherical_sliced_wasserstein(s, t, p=1, projections=U)
    )
    ssw = [float(ssw_fn(s, target)) for s in snaps]
    assert np.all(np.diff(ssw) < 0), ssw
    assert ssw[-1] < 0.8 * ssw[0], ssw


# ---------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------
def test_bad_inputs():
    x = jax.random.normal(KEY, (10, 2))
    gV = lambda z: z
    with pytest.raises(ValueError, match="step"):
        particle_flow(x, gV, step=0.0, n_steps=3)
    with pytest.raises(ValueError, match="step"):
        particle_flow(x, gV, step=-1.0, n_steps=3)
    with pytest.raises(ValueError, match="n_steps"):
        particle_flow(x, gV, step=0.1, n_steps=0)
    with pytest.raises(ValueError, match="shape"):
        particle_flow(x[0], gV, step=0.1, n_steps=3)
    with pytest.raises(ValueError, match="dimension"):
        particle_flow(x, lambda z: jnp.zeros(3), step=0.1, n_steps=3)
    with pytest.raises(ValueError, match="NaN"):
        particle_flow(x.at[0, 0].set(jnp.nan), gV, step=0.1, n_steps=3)
    with pytest.raises(ValueError, match="key"):
        particle_flow(x, gV, step=0.1, n_steps=3, temperature=1.0)
    with pytest.raises(ValueError, match="nothing drives"):
        particle_flow(x, step=0.1, n_steps=3)
    with pytest.raises(ValueError, match="diverged"):
        particle_flow(x, lambda z: 1e30 * z**3, step=1.0, n_steps=10)
    with pytest.raises(ValueError, match="sphere"):
        particle_flow_sphere(2 * _sphere_cloud(KEY, 5), gV, step=0.1, n_steps=3)
    F = potential_energy(lambda z: jnp.sum(z**2))
    with pytest.raises(ValueError, match="h must"):
        sw_jko(x, F, h=0.0, n_outer=1, n_inner=1, lr=0.1, n_proj=5, key=KEY)
    with pytest.raises(ValueError, match="key"):
        sw_jko(x, F, h=0.1, n_outer=1, n_inner=1, lr=0.1, n_proj=5, key=None)
    with pytest.raises(ValueError, match="n_outer"):
        sw_jko(x, F, h=0.1, n_outer=0, n_inner=1, lr=0.1, n_proj=5, key=KEY)
    with pytest.raises(ValueError, match="scalar"):
        sw_jko(x, lambda y: y, h=0.1, n_outer=1, n_inner=1, lr=0.1, n_proj=5, key=KEY)
    with pytest.raises(ValueError, match="sphere"):
        ssw_jko(
            jnp.ones((5, 3)), F, h=0.1, n_outer=1, n_inner=1, lr=0.1, n_proj=5, key=KEY
        )
