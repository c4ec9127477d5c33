"""OT-Flow: exact solutions, change of variables, inverse flow, and dynamic OT between Gaussians."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynajax.cnf import (
    Potential,
    characteristics,
    otflow_log_density,
    otflow_loss,
    otflow_sample,
    otflow_step,
    standard_normal_logpdf,
)
from dynajax.train import fit, init_state


def _shift_potential(m):
    """``Phi(x, t) = m.x + |m|^2 t / 2``: the exact OT potential from ``N(m, I)`` to ``N(0, I)``
    (velocity ``-m``, and ``d_t Phi = |grad Phi|^2 / 2``: zero HJB residual)."""
    d = m.shape[0]
    pot = Potential(d, width=4)
    p = jax.tree_util.tree_map(jnp.zeros_like, pot.init(key=jax.random.key(0)))
    p["b"] = jnp.concatenate([m, jnp.asarray([0.5 * jnp.sum(m**2)])])
    return pot, p


def test_shift_between_gaussians_is_exact():
    m = jnp.asarray([1.5, -0.5, 2.0])
    pot, p = _shift_potential(m)
    x = m + jax.random.normal(jax.random.key(1), (64, 3))

    @jax.jit
    def run(x):
        ch = characteristics(pot, p, x, n_steps=4)
        J, terms = otflow_loss(pot, p, x, alpha=(1.0, 10.0, 5.0), n_steps=4)
        return ch, J, terms, otflow_log_density(pot, p, x, n_steps=4)

    ch, J, terms, logp = run(x)
    np.testing.assert_allclose(np.asarray(ch.z), np.asarray(x - m), atol=1e-5)
    np.testing.assert_allclose(np.asarray(ch.logdet), 0.0, atol=1e-6)
    # 2 L = W2^2(N(m, I), N(0, I)) = |m|^2, and the HJB residual vanishes
    np.testing.assert_allclose(2 * float(terms.L), float(jnp.sum(m**2)), rtol=1e-5)
    np.testing.assert_allclose(float(terms.R), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(logp), np.asarray(standard_normal_logpdf(x - m)), atol=1e-5)
    np.testing.assert_allclose(float(terms.C), -float(jnp.mean(logp)), rtol=1e-6)
    np.testing.assert_allclose(float(J), float(terms.L + 10 * terms.C + 5 * terms.R), rtol=1e-6)


@pytest.mark.slow
def test_log_determinant_is_the_change_of_variables():
    """The integrated ``l`` equals ``log|det dz/dx|`` of the discrete map (autodiff through RK4)."""
    with jax.enable_x64(True):
        pot = Potential(3, width=8, n_layers=3)
        p = pot.init(key=jax.random.key(4), dtype=jnp.float64)
        p["w"] = 0.5 * p["w"]
        x = jax.random.normal(jax.random.key(5), (4, 3), jnp.float64)

        @jax.jit
        def run(x):
            ch = characteristics(pot, p, x, n_steps=32)
            flow = lambda xi: characteristics(pot, p, xi[None], n_steps=32).z[0]  # noqa: E731
            return ch.logdet, jax.vmap(lambda xi: jnp.linalg.slogdet(jax.jacfwd(flow)(xi))[1])(x)

        ld, ref = run(x)
        assert float(jnp.max(jnp.abs(ld))) > 0.05  # a genuinely non volume-preserving flow
        # both are within O(dt^4) of the exact flow's log-determinant (RK4, 32 steps)
        np.testing.assert_allclose(np.asarray(ld), np.asarray(ref), rtol=1e-5)


@pytest.mark.slow
def test_sampling_inverts_the_flow():
    pot = Potential(2, width=8)
    p = pot.init(key=jax.random.key(6))

    @jax.jit
    def run(key):
        xs, logp = otflow_sample(pot, p, 256, key=key, n_steps=16)
        return xs, logp, characteristics(pot, p, xs, n_steps=16), otflow_log_density(pot, p, xs, n_steps=16)

    xs, logp, ch, logp_fwd = run(jax.random.key(7))
    z = jax.random.normal(jax.random.key(7), (256, 2))
    np.testing.assert_allclose(np.asarray(ch.z), np.asarray(z), atol=2e-3)
    np.testing.assert_allclose(np.asarray(logp_fwd), np.asarray(logp), atol=2e-3)


@pytest.mark.slow
def test_path_and_vmap_over_seeds():
    pot = Potential(2, width=8)
    ps = jax.vmap(lambda k: pot.init(key=k))(jax.random.split(jax.random.key(0), 3))
    x = jax.random.normal(jax.random.key(1), (16, 2))
    Js = jax.jit(jax.vmap(lambda q: otflow_loss(pot, q, x, n_steps=2)[0]))(ps)
    assert Js.shape == (3,) and bool(jnp.all(jnp.isfinite(Js)))
    path = jax.jit(lambda q: characteristics(pot, q, x, n_steps=4, path=True))(jax.tree_util.tree_map(lambda a: a[0], ps))
    assert path.z.shape == (5, 16, 2)
    np.testing.assert_array_equal(np.asarray(path.z[0]), np.asarray(x))


def test_bad_inputs():
    pot = Potential(2, width=4)
    p = pot.init(key=jax.random.key(0))
    x = jnp.zeros((4, 2))
    with pytest.raises(ValueError, match="alpha"):
        otflow_loss(pot, p, x, alpha=(1.0, 2.0))
    with pytest.raises(ValueError, match="alpha_C"):
        otflow_loss(pot, p, x, alpha=(1.0, -2.0, 1.0))
    with pytest.raises(ValueError, match="t_span"):
        characteristics(pot, p, x, t_span=(1.0, 0.0))
    with pytest.raises(ValueError, match="dimension"):
        characteristics(pot, p, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="n_steps"):
        characteristics(pot, p, x, n_steps=0)


@pytest.mark.slow
def test_dynamic_ot_between_gaussians_approaches_w2():
    """Learned ``2 L`` vs the closed-form ``W2^2(N(m, diag s^2), N(0, I))`` within 2 %, and the
    learned map vs the linear Monge map ``x -> (x - m) / s``."""
    m, s = jnp.asarray([1.0, -0.5]), jnp.asarray([0.7, 1.3])
    w2 = float(jnp.sum(m**2) + jnp.sum((s - 1.0) ** 2))
    pot = Potential(2, width=16)
    opt = optax.adam(optax.exponential_decay(0.05, 150, 0.5))
    state = init_state(pot.init(key=jax.random.key(0)), opt, key=jax.random.key(1))
    sampler = lambda key, step: m + s * jax.random.normal(key, (512, 2))  # noqa: E731
    step = otflow_step(pot, opt, alpha=(1.0, 1000.0, 5.0), n_steps=8)
    res = fit(step, state, sampler, n_steps=600, chunk_size=100, progress=False)
    x = m + s * jax.random.normal(jax.random.key(5), (20_000, 2))
    ch = jax.jit(lambda q: characteristics(pot, q, x, n_steps=16))(res.state.params)
    assert abs(2 * float(jnp.mean(ch.kinetic)) / w2 - 1.0) < 0.02
    assert float(jnp.mean(jnp.sum((ch.z - (x - m) / s) ** 2, 1))) < 0.01 * w2
