"""OT-Flow potential: closed-form gradient and Hessian trace against autodiff and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.cnf import Potential, autodiff_divergence, hutchinson_divergence, log_cosh


def _random(d, dtype, seed=0, width=12, n_layers=3):
    """Random parameters (``b``, ``c``, ``w`` perturbed away from their init values)."""
    pot = Potential(d, width=width, n_layers=n_layers)

    @jax.jit
    def draw(key):
        k0, k1, k2 = jax.random.split(key, 3)
        p = pot.init(key=k0, dtype=dtype)
        keys = jax.random.split(k1, len(p))
        p = {k: v + 0.3 * jax.random.normal(kk, v.shape, dtype) for (k, v), kk in zip(sorted(p.items()), keys)}
        return p, jax.random.normal(k2, (4, d), dtype)

    return (pot, *draw(jax.random.key(seed)))


_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "d, x64",
    # d = 2, 10 <= width 12 carry the Jacobians; d = 100 > width the Gram matrices
    [pytest.param(2, False, marks=_SLOW), pytest.param(10, False, marks=_SLOW), (100, False),
     pytest.param(2, True, marks=_SLOW), (10, True), pytest.param(100, True, marks=_SLOW)],
)
def test_exact_trace_matches_hessian(d, x64):
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        pot, p, x = _random(d, dtype)
        t = jnp.asarray([0.0, 0.3, 0.7, 1.0], dtype)
        hess_tr = lambda q, xi, ti: jnp.trace(jax.hessian(lambda y: pot(q, y[None], ti)[0])(xi))  # noqa: E731
        tr, ref = jax.jit(lambda q: (pot.grad_and_laplacian(q, x, t)[2], jax.vmap(hess_tr, (None, 0, 0))(q, x, t)))(p)
        tol = 1e-10 if x64 else 1e-5
        np.testing.assert_allclose(np.asarray(tr), np.asarray(ref), rtol=tol, atol=tol)


@pytest.mark.slow
def test_gradient_matches_autodiff_and_finite_differences():
    with jax.enable_x64(True):
        pot, p, x = _random(5, jnp.float64, seed=3)
        t = 0.4
        (g, gt, _), (g2, gt2) = jax.jit(lambda q: (pot.grad_and_laplacian(q, x, t), pot.grad(q, x, t)))(p)
        np.testing.assert_array_equal(np.asarray(g), np.asarray(g2))
        np.testing.assert_array_equal(np.asarray(gt), np.asarray(gt2))
        phi = jax.jit(lambda y, s: pot(p, y, s))
        eps = 1e-6
        e = eps * jnp.eye(5)
        for i in range(2):
            fd = (phi(x[i] + e, t) - phi(x[i] - e, t)) / (2 * eps)
            np.testing.assert_allclose(np.asarray(g[i]), np.asarray(fd), rtol=1e-7, atol=1e-8)
            fdt = (phi(x[i : i + 1], t + eps) - phi(x[i : i + 1], t - eps)) / (2 * eps)
            np.testing.assert_allclose(float(gt[i]), float(fdt[0]), rtol=1e-7, atol=1e-8)


@pytest.mark.slow
def test_trace_parameter_gradients_match_finite_differences():
    """d/dtheta of the closed-form trace (what training differentiates) vs central differences."""
    with jax.enable_x64(True):
        pot, p, x = _random(3, jnp.float64, seed=5, n_layers=2)
        f = jax.jit(lambda q: jnp.sum(pot.grad_and_laplacian(q, x, 0.5)[2]))
        g = jax.jit(jax.grad(f))(p)
        eps = 1e-6
        for name, idx in [("K0", (1, 2)), ("K", (0, 3, 4)), ("w", (2,)), ("A", (0, 1)), ("bK", (0, 5))]:
            e = jnp.zeros_like(p[name]).at[idx].set(eps)
            fd = (f({**p, name: p[name] + e}) - f({**p, name: p[name] - e})) / (2 * eps)
            np.testing.assert_allclose(float(g[name][idx]), float(fd), rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_divergence_helpers_agree_with_the_exact_trace():
    pot, p, x = _random(6, jnp.float32, seed=7)
    tr = jax.jit(lambda q: pot.grad_and_laplacian(q, x, 0.2)[2])(p)
    field = lambda y: pot.grad(p, y[None], 0.2)[0][0]  # noqa: E731
    exact = jax.jit(lambda y: autodiff_divergence(field, y))(x)
    np.testing.assert_allclose(np.asarray(exact), np.asarray(tr), rtol=1e-5)
    est = jax.jit(lambda y: hutchinson_divergence(field, y, key=jax.random.key(0), n_probes=1))(x)
    assert est.shape == tr.shape and bool(jnp.all(jnp.isfinite(est)))


@pytest.mark.slow
def test_log_cosh_is_stable_and_its_derivative_is_tanh():
    a = jnp.asarray([-1e4, -30.0, -1.0, 0.0, 2.0, 1e4])
    np.testing.assert_allclose(np.asarray(log_cosh(a))[2:5], np.log(np.exp(a[2:5]) + np.exp(-a[2:5])), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(log_cosh(a))[[0, 5]], [1e4, 1e4], rtol=1e-7)
    np.testing.assert_allclose(np.asarray(jax.vmap(jax.grad(log_cosh))(a)), np.tanh(np.asarray(a)), atol=1e-6)


@pytest.mark.slow
def test_vmap_over_seeds_and_jit():
    pot = Potential(3, width=8)
    ps = jax.vmap(lambda k: pot.init(key=k))(jax.random.split(jax.random.key(0), 4))
    x = jax.random.normal(jax.random.key(1), (5, 3))
    tr = jax.jit(jax.vmap(lambda q: pot.grad_and_laplacian(q, x, 0.5)[2]))(ps)
    one = jax.jit(lambda q: pot.grad_and_laplacian(q, x, 0.5)[2])(jax.tree_util.tree_map(lambda a: a[2], ps))
    assert tr.shape == (4, 5)
    np.testing.assert_allclose(np.asarray(tr[2]), np.asarray(one), rtol=1e-5)


def test_bad_inputs():
    with pytest.raises(ValueError, match="dim"):
        Potential(0)
    with pytest.raises(TypeError, match="width"):
        Potential(2, width=2.5)
    pot = Potential(2)
    p = pot.init(key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \[n, 2\]"):
        pot(p, jnp.zeros((3, 4)), 0.0)
    with pytest.raises(ValueError, match="point cloud"):
        pot(p, jnp.zeros(2), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        pot(p, jnp.full((3, 2), jnp.nan), 0.0)
    with pytest.raises(ValueError, match="t must be"):
        pot(p, jnp.zeros((3, 2)), jnp.zeros(4))
