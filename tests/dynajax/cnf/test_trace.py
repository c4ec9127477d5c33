"""Hutchinson's estimator is unbiased (mean over many probes) and the autodiff divergence exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.cnf import autodiff_divergence, hutchinson_divergence

M = jnp.asarray(np.random.default_rng(0).normal(size=(6, 6)), jnp.float32)


def field(x):
    """A nonlinear field with a known Jacobian trace: tanh(M x) + x^3."""
    return jnp.tanh(M @ x) + x**3


def exact(x):
    return jnp.sum((1.0 - jnp.tanh(x @ M.T) ** 2) * jnp.diag(M), axis=1) + jnp.sum(3 * x**2, axis=1)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
@pytest.mark.slow
def test_hutchinson_is_unbiased(probe):
    x = jax.random.normal(jax.random.key(0), (3, 6))
    n = 20_000

    @jax.jit
    def run(key):
        # n single-probe estimates per point: their mean is within a few standard errors of the trace
        keys = jax.random.split(key, 8)
        ests = jnp.concatenate([hutchinson_divergence(field, jnp.repeat(x, n // 8, 0), key=k, probe=probe)
                                .reshape(3, n // 8) for k in keys], axis=1)
        return ests.mean(1), ests.std(1) / jnp.sqrt(n)

    mean, se = run(jax.random.key(1))
    ref = exact(x)
    assert bool(jnp.all(se > 0))
    assert np.all(np.abs(np.asarray(mean - ref)) < 4.5 * np.asarray(se)), (mean, ref, se)
    # several probes at once: the same estimator, lower variance
    many = jax.jit(lambda k: hutchinson_divergence(field, x, key=k, n_probes=4096, probe=probe))(jax.random.key(2))
    np.testing.assert_allclose(np.asarray(many), np.asarray(ref), atol=float(6 * se.max() * np.sqrt(n / 4096)))


@pytest.mark.slow
def test_autodiff_divergence_is_exact():
    x = jax.random.normal(jax.random.key(3), (5, 6))
    np.testing.assert_allclose(np.asarray(jax.jit(lambda y: autodiff_divergence(field, y))(x)),
                               np.asarray(exact(x)), rtol=1e-5)


def test_bad_inputs():
    x = jnp.zeros((2, 6))
    with pytest.raises(ValueError, match="probe"):
        hutchinson_divergence(field, x, key=jax.random.key(0), probe="uniform")
    with pytest.raises(ValueError, match="n_probes"):
        hutchinson_divergence(field, x, key=jax.random.key(0), n_probes=0)
    with pytest.raises(ValueError, match="point cloud"):
        autodiff_divergence(field, jnp.zeros(6))
