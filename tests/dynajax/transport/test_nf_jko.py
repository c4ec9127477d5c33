"""Oracle tests for dynajax.transport.nf_jko (RealNVP log-det, SW-JKO over flows)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.transport.flows import potential_energy
from dynajax.transport.nf_jko import (
    RealNVP,
    gaussian_log_density,
    nf_sw_jko,
    pull_back_log_density,
    push_forward,
)


@pytest.mark.slow
def test_realnvp_logdet_matches_autodiff_jacobian(rng):
    d = 5
    flow = RealNVP(d, n_layers=3, hidden=16)
    x = jax.random.normal(rng, (4, d))

    @jax.jit
    def run(key, x):
        params = flow.init(key, x)
        y0, ld0 = flow.apply(params, x)  # identity at initialisation
        # perturb every parameter so the flow is far from the identity
        leaves, tree = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
        leaves = [l + 0.3 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)]
        params = jax.tree_util.tree_unflatten(tree, leaves)
        y, ld = flow.apply(params, x)
        J = jax.vmap(jax.jacfwd(lambda z: flow.apply(params, z)[0]))(x)
        xr, ldi = flow.apply(params, y, method=RealNVP.inverse)
        # two maps T o T: the density tracked along the push equals the density recovered at
        # the pushed points by inverting the maps
        logp0 = gaussian_log_density(jnp.zeros(d), jnp.eye(d))
        y2, ld2 = push_forward(flow, [params, params], x, logp0(x))
        back = pull_back_log_density(flow, [params, params], y2, logp0)
        return y0, ld0, ld, jnp.linalg.slogdet(J)[1], xr, ldi, ld2, back, logp0(x)

    y0, ld0, ld, ref, xr, ldi, ld2, back, lp0 = run(rng, x)
    np.testing.assert_allclose(back, ld2, rtol=3e-3, atol=1e-3)  # float32, |log det| ~ 10
    assert float(jnp.max(jnp.abs(ld2 - lp0))) > 0.05  # the maps change the density
    np.testing.assert_allclose(y0, x, atol=1e-6)
    np.testing.assert_allclose(ld0, 0.0, atol=1e-6)
    np.testing.assert_allclose(ld, ref, rtol=1e-4, atol=1e-4)
    assert float(jnp.max(jnp.abs(ld))) > 0.05  # the perturbed flow is not volume preserving
    # the inverse undoes the map and its log-det is the negative
    np.testing.assert_allclose(xr, x, atol=1e-4)
    np.testing.assert_allclose(ldi, -ld, atol=1e-4)


@pytest.mark.slow
def test_jko_step_potential_moves_at_implicit_euler_rate(rng):
    # V = |x - b|^2 / 2, mu_0 = N(m0, s^2 I). The contraction T(x) = b + (1 - c)(x - b) gives
    # SW_2^2(T#mu, mu) = c^2 E|x - b|^2 / d exactly, so the JKO step minimises
    # s_w c^2 / d + h (1 - c)^2: with s_w = d the mean and spread contract by 1 / (1 + h), the
    # implicit-Euler rate of x' = -(x - b); with s_w = 1 by 1 / (1 + h d).
    d, h, n = 2, 0.5, 256
    b = jnp.array([2.0, -1.0])
    m0, s = jnp.array([-1.0, 1.0]), 0.5
    x0 = m0 + s * jax.random.normal(rng, (n, d))
    scale = float(d)
    F = potential_energy(lambda z: 0.5 * jnp.sum((z - b) ** 2))
    flow = RealNVP(d, n_layers=2, hidden=16)
    logp0 = gaussian_log_density(m0, s**2 * jnp.eye(d))
    out = nf_sw_jko(x0, F, h=h, n_outer=1, n_inner=300, lr=1e-2, n_proj=128, key=rng,
                    sw_scale=scale, flow=flow, log_density0=logp0(x0))
    rate = 1.0 / (1.0 + h * d / scale)
    mean0 = jnp.mean(x0, 0)
    # 0.08 is far below the 0.6 gap between the rates with sw_scale = d and 1
    np.testing.assert_allclose(jnp.mean(out.x, 0), b + rate * (mean0 - b), atol=0.08)
    np.testing.assert_allclose(jnp.std(out.x, 0) / jnp.std(x0, 0), rate, rtol=0.1)
    assert out.snapshots.shape == (2, n, d) and len(out.params) == 1
    # the tracked log-density is the change-of-variables one, and push_forward reproduces it
    y, ld = push_forward(flow, out.params, x0, logp0(x0))
    np.testing.assert_allclose(y, out.x, atol=1e-5)
    np.testing.assert_allclose(ld, out.log_density, atol=1e-4)
    # the map is (nearly) the linear contraction: log rho_1(T x) = log rho_0(x) - d log(rate)
    np.testing.assert_allclose(jnp.mean(out.log_density - logp0(x0)), -d * np.log(rate), atol=0.15)


def test_nf_jko_validation(rng):
    F = potential_energy(lambda z: jnp.sum(z**2))
    x = jnp.zeros((8, 2))
    with pytest.raises(ValueError, match="h must be"):
        nf_sw_jko(x, F, h=0.0, n_outer=1, n_inner=1, lr=1e-3, n_proj=4, key=rng)
    with pytest.raises(ValueError, match="d >= 2"):
        nf_sw_jko(jnp.zeros((8, 1)), F, h=0.1, n_outer=1, n_inner=1, lr=1e-3, n_proj=4, key=rng)
    with pytest.raises(TypeError, match="Functional"):
        nf_sw_jko(x, lambda y: 0.0, h=0.1, n_outer=1, n_inner=1, lr=1e-3, n_proj=4, key=rng)
    with pytest.raises(ValueError, match="log_density0"):
        nf_sw_jko(x, F, h=0.1, n_outer=1, n_inner=1, lr=1e-3, n_proj=4, key=rng,
                  log_density0=jnp.zeros(3))

