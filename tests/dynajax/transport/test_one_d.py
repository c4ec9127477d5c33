"""1-D and circle OT primitives against POT and exact formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from dynajax.transport import one_d
from dynajax.transport.one_d import circle_coordinates

# jitted once per module (p static) so the many small cases share compilations
wasserstein_1d = jax.jit(one_d.wasserstein_1d, static_argnames="p")
wasserstein_circle = jax.jit(one_d.wasserstein_circle, static_argnames=("p", "n_iter"))
wasserstein1_circle = jax.jit(one_d.wasserstein1_circle)
wasserstein2_unif_circle = jax.jit(one_d.wasserstein2_unif_circle)


def _measures(seed, n=7, m=5):
    r = np.random.default_rng(seed)
    u, v = r.normal(size=n), r.normal(size=m)
    a, b = r.random(n) + 0.1, r.random(m) + 0.1
    return u, v, a / a.sum(), b / b.sum()


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_weighted_w1d_matches_pot(p):
    for seed in range(3):
        u, v, a, b = _measures(seed)
        ref = ot.wasserstein_1d(u, v, a, b, p=p)
        np.testing.assert_allclose(
            wasserstein_1d(u, v, a, b, p=p), ref, rtol=1e-5, atol=1e-6
        )


def test_weighted_w1d_matches_emd2():
    u, v, a, b = _measures(3)
    M = np.abs(u[:, None] - v[None, :]) ** 2
    np.testing.assert_allclose(
        wasserstein_1d(u, v, a, b, p=2), ot.emd2(a, b, M), rtol=1e-5
    )


def test_uniform_fast_path_equals_general_path():
    r = np.random.default_rng(4)
    u, v = r.normal(size=9), r.normal(size=9)
    w = np.full(9, 1 / 9)
    for p in (1.0, 2.0):
        np.testing.assert_allclose(
            wasserstein_1d(u, v, p=p), wasserstein_1d(u, v, w, w, p=p), rtol=1e-5
        )


def test_unequal_sizes_uniform():
    r = np.random.default_rng(5)
    u, v = r.normal(size=6), r.normal(size=10)
    np.testing.assert_allclose(
        wasserstein_1d(u, v, p=2), ot.wasserstein_1d(u, v, p=2), rtol=1e-5
    )


@pytest.mark.parametrize("p", [1.0, 2.0, 1.5])
def test_circle_matches_pot(p):
    for seed in range(3):
        u, v, a, b = _measures(seed)
        u, v = u % 1, v % 1
        ref = ot.lp.wasserstein_circle(u, v, a, b, p=p)[0]
        np.testing.assert_allclose(
            wasserstein_circle(u, v, a, b, p=p), ref, rtol=1e-4, atol=1e-6
        )


def test_level_median_w1_equals_search_and_pot():
    # POT's own wasserstein1_circle ignores the arc [0, x_min) for weighted inputs; its
    # binary search (wasserstein_circle, p=1) is the reference.
    for seed in range(4):
        _check_level_median(seed)


def _check_level_median(seed):
    u, v, a, b = _measures(seed)
    u, v = u % 1, v % 1
    lm = wasserstein1_circle(u, v, a, b)
    np.testing.assert_allclose(
        lm, wasserstein_circle(u, v, a, b, p=1), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        lm, ot.lp.wasserstein_circle(u, v, a, b, p=1)[0], rtol=1e-4
    )


def test_circle_shortcut_across_zero():
    # masses at 0.95 and 0.05: geodesic distance 0.1, not 0.9
    assert float(
        wasserstein1_circle(jnp.array([0.95]), jnp.array([0.05]))
    ) == pytest.approx(0.1, abs=1e-6)
    assert float(
        wasserstein_circle(jnp.array([0.95]), jnp.array([0.05]), p=2)
    ) == pytest.approx(0.01, abs=1e-6)


def test_unif_closed_form_matches_pot_and_dense_uniform():
    r = np.random.default_rng(0)
    u = r.random(12)
    ref = ot.lp.semidiscrete_wasserstein2_unif_circle(u)[0]
    np.testing.assert_allclose(wasserstein2_unif_circle(u), ref, rtol=1e-5)
    grid = (np.arange(4000) + 0.5) / 4000  # fine discretisation of the uniform law
    np.testing.assert_allclose(wasserstein_circle(u, grid, p=2), ref, rtol=2e-3)


def test_circle_coordinates_convention():
    ang = jnp.array([0.0, jnp.pi / 2, jnp.pi, 3 * jnp.pi / 2])
    z = jnp.stack([jnp.cos(ang), jnp.sin(ang)], -1)
    np.testing.assert_allclose(circle_coordinates(z), [0.0, 0.25, 0.5, 0.75], atol=1e-6)
    zz = np.asarray(z)
    np.testing.assert_allclose(
        circle_coordinates(z), ot.utils.get_coordinate_circle(zz) % 1, atol=1e-6
    )


def test_gradients_and_jit():
    u, v, a, b = _measures(7)
    g = jax.jit(jax.grad(lambda u: wasserstein_1d(u, v, a, b, p=2)))(
        jnp.asarray(u, jnp.float32)
    )
    assert g.shape == (7,) and bool(jnp.all(jnp.isfinite(g)))
    # translation: d/dt W_2^2(u + t, u) = 2 t
    f = lambda t: wasserstein_1d(jnp.asarray(u) + t, jnp.asarray(u), p=2)
    np.testing.assert_allclose(jax.grad(f)(0.3), 0.6, rtol=1e-4)
    gc = jax.grad(lambda u: wasserstein_circle(u, v % 1, a, b, p=2))(
        jnp.asarray(u % 1, jnp.float32)
    )
    assert bool(jnp.all(jnp.isfinite(gc)))


def test_bad_shapes():
    with pytest.raises(ValueError):
        one_d.wasserstein_1d(jnp.zeros((3, 2)), jnp.zeros(3))
    with pytest.raises(ValueError):
        one_d.wasserstein_1d(jnp.zeros(0), jnp.zeros(3))
