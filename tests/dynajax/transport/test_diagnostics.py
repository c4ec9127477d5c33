"""Tests of dynajax.transport.diagnostics on flows with known optimal transport."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.transport import diagnostics as dg
from dynajax.transport import ot


def _translation_flow(n=40, d=2, k=5, seed=0):
    x = jax.random.normal(jax.random.PRNGKey(seed), (n, d))
    b = jnp.arange(1.0, d + 1.0)
    states = jnp.stack([x + b * t for t in jnp.linspace(0.0, 1.0, k + 1)])
    return x, b, states


@pytest.mark.slow
def test_translation_flow_is_optimal():
    x, b, states = _translation_flow()
    b2 = float(jnp.sum(b**2))
    tx = states[-1]
    np.testing.assert_allclose(dg.transport_cost(x, tx), b2, rtol=1e-5)
    np.testing.assert_allclose(dg.kinetic_energy(states), b2, rtol=1e-5)
    np.testing.assert_allclose(
        dg.kinetic_energy(residuals=states[1:] - states[:-1], dt=0.2), b2, rtol=1e-5
    )
    np.testing.assert_allclose(dg.path_straightness(states), 1.0, rtol=1e-5)
    gap = dg.optimality_gap(x, tx)
    np.testing.assert_allclose(gap.ratio, 1.0, rtol=1e-5)
    np.testing.assert_allclose(gap.identity_fraction, 1.0)
    np.testing.assert_allclose(gap.w2_squared, b2, rtol=1e-5)
    np.testing.assert_allclose(dg.monge_map_distance(tx, x + b), 0.0, atol=1e-6)
    err = dg.inverse_error(lambda k, z: jnp.broadcast_to(b, z.shape), x, n_blocks=5)
    np.testing.assert_allclose(err, 0.0, atol=1e-6)


def test_kinetic_energy_dt_scaling():
    _, b, states = _translation_flow(k=4)
    # total time 2 with the same displacement: half the speed, half the energy
    np.testing.assert_allclose(
        dg.kinetic_energy(states, dt=0.5), 0.5 * jnp.sum(b**2), rtol=1e-5
    )


def test_non_optimal_map_has_gap_above_one():
    x = jax.random.normal(jax.random.PRNGKey(1), (30, 2))
    # a rotation by 90 degrees maps the cloud onto a rotated copy; the optimal plan between
    # x and R x is not the identity pairing
    rot = jnp.array([[0.0, -1.0], [1.0, 0.0]])
    tx = x @ rot.T
    gap = dg.optimality_gap(x, tx)
    assert float(gap.ratio) > 1.05
    assert float(gap.identity_fraction) < 1.0
    np.testing.assert_allclose(gap.w2_squared, ot.exact_w2(x, tx), rtol=1e-6)
    np.testing.assert_allclose(gap.transport_cost, dg.transport_cost(x, tx), rtol=1e-6)


def test_curved_path_straightness_above_one():
    x = jax.random.normal(jax.random.PRNGKey(2), (20, 2))
    ts = jnp.linspace(0, 1, 9)
    # detour: go up then come back down while translating
    states = jnp.stack([x + jnp.array([t, 2 * jnp.sin(jnp.pi * t)]) for t in ts])
    s = float(dg.path_straightness(states))
    assert s > 1.5
    # non-uniform speed on a straight path: still >= 1 and > 1
    states2 = jnp.stack([x + jnp.array([t**3, 0.0]) for t in ts])
    assert float(dg.path_straightness(states2)) > 1.1
    # kinetic energy bounds the transport cost from above (K dt = 1)
    assert float(dg.kinetic_energy(states)) >= float(
        dg.transport_cost(states[0], states[-1])
    )


def test_monge_map_distance_gaussian():
    rng = np.random.default_rng(3)
    m1, m2 = np.zeros(2), np.array([1.0, 2.0])
    s1 = np.array([[1.0, 0.3], [0.3, 0.5]])
    s2 = np.array([[2.0, -0.4], [-0.4, 1.0]])
    t = ot.gaussian_monge_map(m1, s1, m2, s2)
    x = jnp.asarray(rng.multivariate_normal(m1, s1, size=200), jnp.float32)
    tx = t(x)
    np.testing.assert_allclose(dg.monge_map_distance(tx, tx), 0.0, atol=1e-7)
    shifted = tx + jnp.array([0.3, 0.4])
    np.testing.assert_allclose(dg.monge_map_distance(shifted, tx), 0.5, rtol=1e-5)
    np.testing.assert_allclose(
        dg.monge_map_distance(shifted, tx, squared=True), 0.25, rtol=1e-5
    )


def test_inverse_error_shrinks_with_blocks():
    x = jax.random.normal(jax.random.PRNGKey(4), (50, 2))
    v = lambda k, z: jnp.tanh(z @ jnp.array([[0.0, 1.0], [-1.0, 0.5]]))
    e10 = float(dg.inverse_error(v, x, n_blocks=10))
    e100 = float(dg.inverse_error(v, x, n_blocks=100))
    assert e10 > 0
    assert 5 < e10 / e100 < 20  # first order in dt


@pytest.mark.slow
def test_diagnostics_jit_vmap_grad():
    _, b, states = _translation_flow()
    batch = jnp.stack([states, 2 * states])
    ke = jax.vmap(dg.kinetic_energy)(batch)
    np.testing.assert_allclose(ke[0] * 4, ke[1], rtol=1e-5)
    np.testing.assert_allclose(jax.jit(dg.path_straightness)(states), 1.0, rtol=1e-5)
    g = jax.grad(lambda s: dg.kinetic_energy(s))(states)
    assert np.all(np.isfinite(g))
    x, tx = states[0], states[-1]
    gg = jax.grad(lambda t: dg.optimality_gap(x, t).ratio)(tx)
    assert np.all(np.isfinite(gg))
    gaps = jax.vmap(lambda t: dg.optimality_gap(x, t).ratio)(jnp.stack([tx, x + 2 * b]))
    np.testing.assert_allclose(gaps, [1.0, 1.0], rtol=1e-5)


def test_bad_inputs():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="exactly one"):
        dg.kinetic_energy()
    with pytest.raises(ValueError, match="exactly one"):
        dg.path_straightness(np.zeros((3, 4, 2)), residuals=np.zeros((2, 4, 2)))
    with pytest.raises(ValueError, match="states"):
        dg.kinetic_energy(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="K\\+1 >= 2"):
        dg.kinetic_energy(np.zeros((1, 4, 2)))
    with pytest.raises(ValueError, match="empty"):
        dg.path_straightness(residuals=np.zeros((2, 0, 2)))
    with pytest.raises(ValueError, match="NaN"):
        dg.kinetic_energy(np.full((3, 4, 2), np.nan))
    with pytest.raises(ValueError, match="dt"):
        dg.kinetic_energy(np.ones((3, 4, 2)), dt=-1.0)
    with pytest.raises(ValueError, match="same number"):
        dg.transport_cost(x, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="dimension"):
        dg.optimality_gap(x, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        dg.monge_map_distance(x, np.full((4, 2), np.inf))
    with pytest.raises(ValueError, match="n_blocks"):
        dg.inverse_error(lambda k, z: z, x, n_blocks=0)
