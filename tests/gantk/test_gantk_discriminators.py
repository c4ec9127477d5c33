"""Infinite- and finite-width discriminators against their definitions and ODEs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import discriminators as D
from gantk import kernels as K
from gantk.flows import ntk_mmd2


def _sets(rng, n=9, m=7, dtype=jnp.float64):
    xf = jax.random.normal(jax.random.fold_in(rng, 1), (n, 2), dtype=dtype)
    xr = 2.0 + jax.random.normal(jax.random.fold_in(rng, 2), (m, 2), dtype=dtype)
    return xf, xr


def test_ipm_is_tau_times_witness_and_step_is_grad_of_half_mmd(rng):
    with jax.enable_x64(True):
        xf, xr = _sets(rng)
        q = jax.random.normal(jax.random.fold_in(rng, 3), (4, 2), dtype=jnp.float64)
        tau = 0.7

        @jax.jit
        def run(xf, xr, q):
            d = D.ipm("relu", xf, xr, tau, with_values=True)
            kq = lambda a: K.kernel_matrix("relu", q, a)  # noqa: E731
            S = jnp.concatenate([xf, xr])
            return (D.evaluate(d, "relu", q)[0], tau * (kq(xf).mean(1) - kq(xr).mean(1)), d.F,
                    D.evaluate(d, "relu", S)[0], D.particle_gradient("ipm", d, "relu", xf) / xf.shape[0],
                    jax.grad(lambda z: 0.5 * tau * ntk_mmd2("relu", z, xr))(xf))

        f, fref, F, Fref, g, ref = run(xf, xr, q)
        np.testing.assert_allclose(f, fref, rtol=1e-12)
        np.testing.assert_allclose(F, Fref, rtol=1e-12)
        # the particle update (1/N) grad c(f_tau)(x_i) is the gradient of (tau/2) MMD^2
        np.testing.assert_allclose(g, ref, rtol=1e-7, atol=1e-10)


def test_lsgan_closed_form_matches_ode(rng):
    with jax.enable_x64(True):
        xf, xr = _sets(rng)
        F0 = 0.3 * jnp.sin(jnp.arange(16.0))
        q = jnp.array([[0.1, -3.0], [4.0, 1.0]])

        @jax.jit
        def run(xf, xr, F0, q):
            gram = K.kernel_matrix("relu", jnp.concatenate([xf, xr]), None)
            ode = D.any_loss("lsgan", "relu", xf, xr, 1.5, F0=F0, steps=400, gram=gram)
            out = {"ode": (ode.coef, ode.F, D.evaluate(ode, "relu", q)[0])}
            for method in D.LSGAN_METHODS:
                cf = D.lsgan("relu", xf, xr, 1.5, F0=F0, method=method, rk4_steps=200, gram=gram)
                out[method] = (cf.coef, cf.F, D.evaluate(cf, "relu", q)[0])
            return out

        out = run(xf, xr, F0, q)
        for method in D.LSGAN_METHODS:
            for a, b, tol in zip(out[method], out["ode"], (1e-7, 1e-7, 1e-6)):
                np.testing.assert_allclose(a, b, atol=tol, err_msg=method)


def test_lsgan_tends_to_labels_and_matches_kernel_regression(rng):
    with jax.enable_x64(True):
        xf, xr = _sets(rng)
        sup = D.make_support(xf, xr)
        q = jnp.array([[0.5, 0.5], [-2.0, 3.0]])

        @jax.jit
        def run(xf, xr, q):
            d = D.lsgan("relu", xf, xr, 1e5, method="eigh")
            Kss = K.kernel_matrix("relu", sup.points, sup.points)
            ref = K.kernel_matrix("relu", q, sup.points) @ jnp.linalg.solve(Kss, sup.rho)
            return d.F, D.evaluate(d, "relu", q)[0], ref

        F, fq, ref = run(xf, xr, q)
        np.testing.assert_allclose(F, sup.rho, atol=1e-5)
        # Prop 5.10: f_inf = k(., S) K^-1 rho (minimum-norm interpolant)
        np.testing.assert_allclose(fq, ref, rtol=1e-4, atol=1e-5)


def test_phi_and_gan_first_order(rng):
    z = jnp.array([0.0, 1e-6, 1e-3, 1.0, 30.0])
    np.testing.assert_allclose(D.phi(z), np.where(z == 0, 1.0, -np.expm1(-np.asarray(z)) / np.where(z == 0, 1, z)), rtol=1e-6)
    with jax.enable_x64(True):
        xf, xr = _sets(rng)
        t = 1e-4
        sup = D.make_support(xf, xr)
        g0 = jnp.where(sup.is_fake, -1.0, 1.0)  # -2 sigmoid(0) on fake, 2 (1 - sigmoid(0)) on real
        Kss = jax.jit(lambda p: K.kernel_matrix("relu", p, p))(sup.points)
        d = D.gan("relu", xf, xr, t, steps=4, gram=Kss)
        ref = t * Kss @ (sup.weights * g0)
        np.testing.assert_allclose(d.F, ref, rtol=0, atol=1e-3 * float(jnp.max(jnp.abs(ref))))


@pytest.mark.slow
def test_finite_antisymmetric_step_follows_empirical_ntk(rng):
    with jax.enable_x64(True):
        xf, xr = _sets(rng, 5, 4)
        fd = D.FiniteDiscriminator(K.mlp("relu", 1, 32, 1.0, 1.0), antisymmetric=True)
        p0 = fd.init(rng, 2)
        S = jnp.concatenate([xf, xr])
        assert np.allclose(fd.apply(p0, S), 0.0)
        lr = 1e-4
        p1 = jax.jit(lambda p: fd.sgd_step("lsgan", p, xf, xr, lr))(p0)
        # one gradient-ascent step: Delta f = lr * Theta_emp(S, S) W g(F0) + O(lr^2)
        j = jax.jit(jax.jacobian(lambda p: fd.apply(p, S)))(p0)
        j = jnp.concatenate([a.reshape(S.shape[0], -1) for a in jax.tree_util.tree_leaves(j)], 1)
        sup = D.make_support(xf, xr)
        g = 4.0 * sup.rho  # lsgan g(0) = 4 (rho - 0)
        np.testing.assert_allclose(fd.apply(p1, S), lr * (j @ j.T) @ (sup.weights * g), rtol=1e-3, atol=1e-9)


def test_validation(rng):
    with pytest.raises(ValueError, match="method"):
        D.lsgan("relu", jnp.ones((2, 2)), jnp.ones((2, 2)), method="expm")
    with pytest.raises(ValueError, match="tau"):
        D.ipm("relu", jnp.ones((2, 2)), jnp.ones((2, 2)), -1.0)
    with pytest.raises(ValueError, match="unknown loss"):
        D.any_loss("hinge", "relu", jnp.ones((2, 2)), jnp.ones((2, 2)))
