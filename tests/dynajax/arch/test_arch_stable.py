"""Stable architectures: antisymmetric spectra, leapfrog symplecticity and reversibility,
the reversible backward pass against autodiff, and the stability of the conv blocks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.arch import stable


@pytest.fixture(autouse=True)
def _fast_random():
    with jax.threefry_partitionable(False):
        yield


def _normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


def test_antisymmetric_layer_jacobian_eigenvalues_have_real_part_minus_gamma():
    with jax.enable_x64(True):
        W, b, gamma = _normal((6, 6)), _normal((6,), 1), 0.3
        pre = lambda y: stable.antisymmetric_matrix(W, gamma) @ y + b
        J = jax.jacfwd(pre)(_normal((6,), 2))
        ev = np.linalg.eigvals(np.asarray(J))
        np.testing.assert_allclose(ev.real, -gamma, atol=1e-12)
        assert np.max(np.abs(ev.imag)) > 0.1  # not trivially real


def test_leapfrog_is_symplectic_and_time_reversible():
    with jax.enable_x64(True):
        d = 3
        p = {k: _normal(s, i) for i, (k, s) in enumerate([("K", (d, d)), ("b", (d,)), ("K2", (d, d)), ("b2", (d,))])}
        y, z, h = _normal((1, d), 7), _normal((1, d), 8), 0.4

        def step(v):
            yn, zn = stable.leapfrog_step(p, v[None, :d], v[None, d:], h)
            return jnp.concatenate([yn[0], zn[0]])

        J = jax.jacfwd(step)(jnp.concatenate([y[0], z[0]]))
        Om = np.block([[np.zeros((d, d)), np.eye(d)], [-np.eye(d), np.zeros((d, d))]])
        np.testing.assert_allclose(J.T @ Om @ J, Om, atol=1e-12)
        # many layers forward, then the inverse steps backward: back to the start to round-off
        params = stable.init_layers("hamiltonian", 50, d, key=jax.random.key(0), scale=2.0, dtype=jnp.float64)
        yL, zL = stable.hamiltonian_forward(params, y, z, h)
        back = jax.lax.scan(lambda c, q: (stable.leapfrog_inverse(q, *c, h), None), (yL, zL), params, reverse=True)[0]
        np.testing.assert_allclose(back[0], y, atol=1e-11)
        np.testing.assert_allclose(back[1], z, atol=1e-11)
        # time reversibility: flipping the momentum and stepping again retraces the path
        y2, z2 = stable.leapfrog_step(jax.tree_util.tree_map(lambda a: a[0], params), y, z, h)
        y3, z3 = stable.leapfrog_step(jax.tree_util.tree_map(lambda a: a[0], params), y2, -z2, h)
        np.testing.assert_allclose(y3, y, atol=1e-13)
        np.testing.assert_allclose(-z3, z, atol=1e-13)


def test_reversible_backward_equals_autodiff():
    with jax.enable_x64(True):
        params = stable.init_layers("hamiltonian", 12, 4, key=jax.random.key(1), scale=1.5, dtype=jnp.float64)
        y, z = _normal((5, 4), 3), _normal((5, 4), 4)
        w = _normal((5, 4), 5)

        def loss(fwd):
            return lambda p, y, z: jnp.sum(w * fwd(p, y, z, 0.3)[0] ** 2) + jnp.sum(fwd(p, y, z, 0.3)[1])

        g_rev = jax.jit(jax.grad(loss(stable.hamiltonian_reversible), argnums=(0, 1, 2)))(params, y, z)
        g_ad = jax.jit(jax.grad(loss(stable.hamiltonian_forward), argnums=(0, 1, 2)))(params, y, z)
        for a, b in zip(jax.tree_util.tree_leaves(g_rev), jax.tree_util.tree_leaves(g_ad)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_parabolic_block_is_nonexpansive_and_hyperbolic_block_reversible():
    with jax.enable_x64(True):
        c, L = 2, 4
        K = 0.3 * _normal((L, 3, 3, c, c), 9)
        params = {"K": K, "b": _normal((L, c), 10)}
        # h max(sigma') ||K||^2 <= 2 with ||K|| <= sum |entries| (a crude upper bound)
        h = 2.0 / float(jnp.max(jnp.sum(jnp.abs(K), axis=(1, 2, 3, 4))) ** 2)
        Y1, Y2 = _normal((2, 8, 8, c), 11), _normal((2, 8, 8, c), 12)
        F1, F2 = stable.parabolic_forward(params, Y1, h), stable.parabolic_forward(params, Y2, h)
        assert float(jnp.linalg.norm(F1 - F2)) <= float(jnp.linalg.norm(Y1 - Y2)) * (1 + 1e-12)
        # the transposed convolution is the adjoint: <K x, y> = <x, K^T y>
        x = _normal((1, 8, 8, c), 13)
        np.testing.assert_allclose(jnp.vdot(stable.conv2d(K[0], x), Y1[:1]),
                                   jnp.vdot(x, stable.conv2d_transpose(K[0], Y1[:1])), rtol=1e-12)
        Yp, YL = stable.hyperbolic_forward(params, Y1, 0.5)
        rev = {k: v[::-1] for k, v in params.items()}
        Y0, Ym1 = stable.hyperbolic_forward(rev, Yp, 0.5, Y_prev=YL)
        np.testing.assert_allclose(Ym1, Y1, atol=1e-10)
        np.testing.assert_allclose(Y0, Y1, atol=1e-10)


def test_growth_ratio_of_a_linear_map_is_its_gain():
    with jax.enable_x64(True):
        y = _normal((10, 3), 14)
        r = stable.growth_ratio(lambda v: 3.0 * v, y, key=jax.random.key(0))
        np.testing.assert_allclose(r, 3.0, rtol=1e-8)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError):
        stable.StableClassifier("spiky", dim_in=2)
    with pytest.raises(ValueError):
        stable.StableClassifier("resnet", dim_in=2, reversible=True)
    with pytest.raises(ValueError):
        stable.init_layers("hamiltonian", 0, 3, key=jax.random.key(0))
