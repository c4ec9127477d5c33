"""PINN residuals, Deep Ritz, MFN and the divergence-free penalty against analytic oracles."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax import arch


@pytest.fixture(autouse=True)
def _fast_random():
    with jax.threefry_partitionable(False):
        yield


def _u_exact(x):  # -Lap u = _g(x)
    return jnp.sum(jnp.sin(0.5 * jnp.pi * x)) / x.shape[-1] + jnp.exp(-jnp.sum(x**2))


def _g(x):
    d = x.shape[-1]
    r2 = jnp.sum(x**2)
    return (jnp.pi**2 / 4) * jnp.sum(jnp.sin(0.5 * jnp.pi * x)) / d + (2 * d - 4 * r2) * jnp.exp(-r2)


def test_laplacian_and_residual_of_exact_and_wrong_solutions():
    with jax.enable_x64(True):
        d = 5
        pts = arch.sample_ball(64, d, jnp.float64, key=jax.random.key(0))
        bnd = arch.sample_sphere(32, d, jnp.float64, key=jax.random.key(1))
        residual = lambda u, x: -arch.laplacian(u, x) - _g(x)
        wrong = lambda x: _u_exact(x) + 0.01 * x[0] ** 2

        @jax.jit
        def evaluate(pts, bnd):
            q = jax.vmap(_u_exact)(bnd)
            total, terms = arch.pinn_loss(_u_exact, residual, pts, boundary=(bnd, q),
                                          data=(pts[:4], jax.vmap(_u_exact)(pts[:4])))
            return (jax.vmap(lambda x: -arch.laplacian(_u_exact, x))(pts), jax.vmap(_g)(pts),
                    arch.hessian(lambda x: jnp.sum(x**3), pts[0]), total, terms,
                    arch.residual_loss(residual, wrong, pts))

        lap, g, hess, total, terms, wrong_loss = evaluate(pts, bnd)
        np.testing.assert_allclose(lap, g, rtol=1e-10)  # operators against closed forms
        np.testing.assert_allclose(hess, np.diag(6 * np.asarray(pts[0])), atol=1e-12)
        assert float(total) < 1e-20 and set(terms) == {"residual", "boundary", "data"}
        np.testing.assert_allclose(wrong_loss, 0.02**2, rtol=1e-8)


def test_deep_ritz_energy_is_minimal_at_the_solution():
    with jax.enable_x64(True):
        d = 2
        pts = arch.sample_ball(20000, d, jnp.float64, key=jax.random.key(2))
        bnd = arch.sample_sphere(2000, d, jnp.float64, key=jax.random.key(3))

        @jax.jit
        def energy(a, b, c):  # E(u* + a phi_1 + b phi_2 + c), phi_i = 0 on the sphere
            def u(x):
                bubble = 1 - jnp.sum(x**2)
                return _u_exact(x) + a * bubble + b * bubble * x[0] + c

            q = jax.vmap(_u_exact)(bnd)
            return arch.deep_ritz_energy(u, _g, pts, volume=arch.ball_volume(d), boundary=(bnd, q),
                                         area=arch.sphere_area(d), beta=100.0)[0]

        e0 = float(energy(0.0, 0.0, 0.0))
        # E(u + eps phi) - E(u) = eps^2 / 2 int |grad phi|^2 > 0 for phi = 0 on the boundary
        assert float(energy(0.3, 0.0, 0.0)) > e0 + 1e-3
        assert float(energy(0.0, 0.3, 0.0)) > e0 + 1e-3
        assert float(energy(0.0, 0.0, 0.1)) > e0  # boundary misfit is penalised
        np.testing.assert_allclose(arch.ball_volume(2), math.pi)
        np.testing.assert_allclose(arch.sphere_area(3), 4 * math.pi)


def test_divergence_penalty_vanishes_on_a_curl_field_only():
    with jax.enable_x64(True):
        psi = lambda x: jnp.sin(2 * jnp.pi * x[0]) * jnp.cos(3 * x[1]) + x[0] ** 3 * x[1]
        pts = jnp.asarray(np.random.default_rng(0).uniform(size=(50, 2)))
        curl_pen, grad_pen = jax.jit(lambda p: (arch.divergence_penalty(arch.stream_velocity(psi), p),
                                                arch.divergence_penalty(jax.grad(psi), p)))(pts)
        assert float(curl_pen) < 1e-24
        assert float(grad_pen) > 1.0  # div grad psi = Lap psi != 0
        # grid diagnostics: the spectral divergence of a sampled curl field is ~0, and the
        # energy spectrum of a single Fourier mode sits in its shell
        n = 16
        xg = np.arange(n) / n
        X, Y = np.meshgrid(xg, xg, indexing="ij")
        c = np.cos(2 * np.pi * (2 * X + Y))
        u = np.stack([2 * np.pi * c, -4 * np.pi * c])  # (d psi/dy, -d psi/dx), psi = sin 2 pi (2x + y)
        assert float(jnp.max(jnp.abs(arch.spectral_divergence(u)))) < 1e-10
        E = np.asarray(arch.energy_spectrum(u))
        assert np.argmax(E) == 2 and E[2] / E.sum() > 0.99
        np.testing.assert_allclose(E.sum(), 0.5 * np.mean(np.sum(u**2, axis=0)), rtol=1e-10)  # Parseval


@pytest.mark.parametrize("filt", ["fourier", "gabor"])
def test_mfn_matches_its_definition(filt):
    model = arch.MFN(hidden=8, n_filters=2, out=2, filter=filt, input_scale=10.0)
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(7, 2)), jnp.float32)
    p = model.init(jax.random.key(0), x)["params"]

    def g(i):
        s = jnp.sin(x @ p[f"omega_{i}"] + p[f"phi_{i}"])
        if filt == "gabor":
            d2 = jnp.sum((x[:, None, :] - p[f"mu_{i}"][None]) ** 2, axis=-1)
            s = s * jnp.exp(-0.5 * jnp.abs(p[f"gamma_{i}"]) * d2)
        return s

    z = (g(0) @ p["linear_1"]["kernel"] + p["linear_1"]["bias"]) * g(1)
    want = z @ p["out"]["kernel"] + p["out"]["bias"]
    np.testing.assert_allclose(model.apply({"params": p}, x), want, rtol=2e-5, atol=2e-6)
    if filt == "fourier":  # frequencies start in the box |omega| <= input_scale / sqrt(k)
        assert float(jnp.max(jnp.abs(p["omega_0"]))) <= 10.0 / math.sqrt(2)
    else:
        assert bool(jnp.all(p["gamma_0"] > 0))
    with pytest.raises(ValueError):
        arch.MFN(filter="wavelet")
