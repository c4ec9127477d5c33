"""GP-flows: the fields preserve N(0, I) exactly (divergence), in law (1e5 samples), and learn."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynajax.cnf import AntisymmetricField, gaussian_divergence, gp_flow, gp_transport_cost, standard_normal_logpdf


def _field(d, scale=30.0, seed=0):
    """A random field far from zero (the last layer's near-zero init scaled up)."""
    f = AntisymmetricField(d, hidden=(16, 16))
    p = f.init(key=jax.random.key(seed))
    p = jax.tree_util.tree_map(lambda a: a * scale if a.shape[-1] == d * (d - 1) // 2 else a, p)
    return f, p


@pytest.mark.parametrize("d", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_gaussian_divergence_is_zero(d):
    f, p = _field(d)
    x = 1.5 * jax.random.normal(jax.random.key(1), (32, d))
    v = lambda y: f(p, y)  # noqa: E731
    div_g, speed = jax.jit(lambda y: (gaussian_divergence(v, y), jnp.abs(v(y)).mean()))(x)
    assert float(speed) > 0.1
    np.testing.assert_allclose(np.asarray(div_g), 0.0, atol=1e-5 * max(1.0, float(speed)) * d)
    # the oracle is not vacuous: a constant drift does not preserve the Gaussian
    assert float(jnp.max(jnp.abs(gaussian_divergence(lambda y: y * 0 + 1.0, x)))) > 0.1


def _rff_mmd(x, y, key, n_feat=256, bw=1.0):
    w = jax.random.normal(key, (x.shape[1], n_feat)) / bw
    b = jax.random.uniform(jax.random.fold_in(key, 1), (n_feat,), maxval=2 * jnp.pi)
    phi = lambda a: jnp.sqrt(2.0 / n_feat) * jnp.cos(a @ w + b)  # noqa: E731
    return jnp.sum((phi(x).mean(0) - phi(y).mean(0)) ** 2)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.slow
def test_flow_keeps_the_gaussian_in_law(d):
    """1e5 pushed samples: mean, covariance and a kernel MMD at the noise level of fresh samples."""
    f, p = _field(d)
    n = 100_000

    @jax.jit
    def run(key):
        k1, k2, k3 = jax.random.split(key, 3)
        z = jax.random.normal(k1, (n, d))
        y = gp_flow(lambda a: f(p, a), z, n_steps=8)
        fresh = jax.random.normal(k2, (n, d))
        moved = jnp.mean(jnp.sum((y - z) ** 2, 1))
        return y.mean(0), jnp.cov(y.T), _rff_mmd(y, fresh, k3), _rff_mmd(z, fresh, k3), moved

    mean, cov, mmd, mmd_null, moved = run(jax.random.key(2))
    assert float(moved) > 0.1  # the flow really moves the samples
    se = 1.0 / np.sqrt(n)
    assert float(jnp.max(jnp.abs(mean))) < 4.5 * se
    assert float(jnp.max(jnp.abs(cov - jnp.eye(d)))) < 4.5 * np.sqrt(2) * se
    assert float(mmd) < 4.0 * float(mmd_null) + 1e-5


@pytest.mark.slow
def test_log_determinant_is_zero_with_respect_to_the_gaussian():
    """``log gamma(s(z)) + log|det ds/dz| = log gamma(z)`` up to RK4's error."""
    with jax.enable_x64(True):
        f, p = _field(3)
        p = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p)
        z = jax.random.normal(jax.random.key(3), (4, 3), jnp.float64)
        s = lambda zi: gp_flow(lambda a: f(p, a), zi[None], n_steps=32)[0]  # noqa: E731

        @jax.jit
        def run(z):
            ld = jax.vmap(lambda zi: jnp.linalg.slogdet(jax.jacfwd(s)(zi))[1])(z)
            return standard_normal_logpdf(jax.vmap(s)(z)) + ld - standard_normal_logpdf(z), ld

        err, ld = run(z)
        assert float(jnp.max(jnp.abs(ld))) > 0.05
        np.testing.assert_allclose(np.asarray(err), 0.0, atol=1e-6)


@pytest.mark.slow
def test_learns_to_undo_a_rotation():
    """``T`` a rotation (it preserves N(0, I)): the optimal ``T o s`` is the identity, cost 0.

    The learned ``s`` must remove most of ``T``'s cost ``|R - I|_F^2``.
    """
    th = 1.0
    R = jnp.asarray([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]], jnp.float32)
    T = lambda y: y @ R.T  # noqa: E731
    f = AntisymmetricField(2, hidden=(32, 32))
    params = f.init(key=jax.random.key(0))
    opt = optax.adam(1e-2)
    loss = lambda q, z: gp_transport_cost(T, gp_flow(lambda a: f(q, a), z, n_steps=4), z)  # noqa: E731

    @jax.jit
    def step(q, o, key):
        z = jax.random.normal(key, (256, 2))
        val, g = jax.value_and_grad(loss)(q, z)
        up, o = opt.update(g, o, q)
        return optax.apply_updates(q, up), o, val

    o = opt.init(params)
    for i in range(300):
        params, o, val = step(params, o, jax.random.key(i))
    z = jax.random.normal(jax.random.key(10_000), (4096, 2))
    before = float(gp_transport_cost(T, z, z))
    after = float(jax.jit(loss)(params, z))
    assert before == pytest.approx(float(jnp.sum((R - jnp.eye(2)) ** 2)), rel=0.05)
    assert after < 0.05 * before


def test_bad_inputs():
    with pytest.raises(ValueError, match="dim >= 2"):
        AntisymmetricField(1)
    f = AntisymmetricField(2, hidden=(4,))
    p = f.init(key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"shape \[n, 2\]"):
        f(p, jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="t1"):
        gp_flow(lambda a: f(p, a), jnp.zeros((3, 2)), t1=0.0)
    with pytest.raises(ValueError, match="n_steps"):
        gp_flow(lambda a: f(p, a), jnp.zeros((3, 2)), n_steps=0)
