"""Exponential-map flow on S^2 and vMF utilities: log-det vs finite differences, unit mass, entropy, geodesic W2."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.experiments import ssw_earth
from dynajax.transport import sphere_flow as sf
from dynajax.transport import sphere_vmf as vmf


def _nontrivial_params(key, n_layers=3, n_components=5):
    p = sf.init_exp_map_flow(n_layers, n_components, key=key)
    # push alpha to sum close to 1 and sharpen the bumps: far from the identity
    return {**p, "raw_alpha": p["raw_alpha"].at[:, -1].set(-2.0), "raw_beta": p["raw_beta"] + 2.0}


def _layers(p):
    return [jax.tree.map(lambda a, i=i: a[i], p) for i in range(p["raw_mu"].shape[0])]


def _np_layer(mu, alpha, beta, x):
    """Independent float64 numpy version of one exponential-map layer (Rezende et al. 2020)."""
    g = (alpha * np.exp(beta * (mu @ x - 1.0))) @ mu
    v = g - (g @ x) * x
    r = np.linalg.norm(v)
    return x if r == 0 else np.cos(r) * x + np.sin(r) * v / r


def test_logdet_matches_finite_differences_and_density_has_unit_mass(rng):
    p = _nontrivial_params(rng)
    grid = vmf.fibonacci_sphere(20000)
    z, ld = jax.jit(sf.flow_forward)(p, grid)
    z, ld = np.asarray(z), np.asarray(ld)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    # change of variables on S^2: the density integrates to one (equal-area quadrature)
    assert abs(4 * np.pi * np.mean(np.exp(ld - sf.LOG_AREA)) - 1.0) < 2e-3
    assert np.ptp(ld) > 0.5  # the test flow is far from the identity
    consts = [tuple(np.asarray(a, np.float64) for a in sf.layer_constraints(lay)) for lay in _layers(p)]

    def F(y):
        for mu, alpha, beta in consts:
            y = _np_layer(mu, alpha, beta, y)
        return y

    h = 1e-5
    for i in range(0, 20000, 2857):
        x = grid[i].astype(np.float64)
        x = x / np.linalg.norm(x)
        E = np.linalg.qr(np.stack([x, *np.eye(3)[:2]], 1))[0][:, 1:]  # basis of T_x S^2
        cols = []
        for k in range(2):  # derivative along the geodesic t -> exp_x(t e_k)
            fp = F(math.cos(h) * x + math.sin(h) * E[:, k])
            fm = F(math.cos(h) * x - math.sin(h) * E[:, k])
            cols.append((fp - fm) / (2 * h))
        Ef = np.linalg.qr(np.stack([F(x), *np.eye(3)[:2]], 1))[0][:, 1:]  # basis at f(x)
        Jt = Ef.T @ np.stack(cols, 1)
        np.testing.assert_allclose(ld[i], np.log(abs(np.linalg.det(Jt))), atol=2e-4)
        np.testing.assert_allclose(z[i], F(x), atol=1e-5)


def test_constraints_and_validation(rng):
    p = sf.init_exp_map_flow(2, 4, key=rng)
    mu, alpha, beta = sf.layer_constraints(jax.tree.map(lambda a: a[0], p))
    np.testing.assert_allclose(np.linalg.norm(np.asarray(mu), axis=1), 1.0, rtol=1e-6)
    assert float(jnp.sum(alpha)) < 1.0 and bool(jnp.all(alpha >= 0)) and bool(jnp.all(beta > 0))
    with pytest.raises(ValueError, match="unit sphere"):
        sf.flow_forward(p, np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        sf.flow_forward(p, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError):
        sf.init_exp_map_flow(0, 3, key=rng)


def test_vmf_mixture_sampler_density_and_fit(rng):
    # heterogeneous concentrations (up to 60) and weights
    means = vmf.latlon_to_unit([45.0, -15.0, 50.0, 37.0, -80.0], [-100.0, -60.0, 15.0, 139.0, 0.0])
    kappas, weights = [8.0, 10.0, 25.0, 60.0, 3.0], [0.3, 0.2, 0.2, 0.1, 0.2]
    grid = vmf.fibonacci_sphere(40000)
    mass = 4 * np.pi * np.mean(np.exp(np.asarray(vmf.vmf_mixture_logpdf(grid, means, kappas, weights))))
    assert abs(mass - 1.0) < 5e-3
    # one component: mean resultant length coth(k) - 1/k, and the fit recovers kappa
    mu = np.array([[0.0, 0.6, 0.8]])
    x = np.asarray(vmf.sample_vmf_mixture(mu, 12.0, 20000, key=rng))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    r = np.linalg.norm(x.mean(0))
    assert abs(r - (1 / math.tanh(12.0) - 1 / 12.0)) < 5e-3
    m_hat, k_hat = vmf.fit_vmf(x)
    assert np.dot(m_hat, mu[0]) > 0.999 and abs(k_hat - 12.0) < 0.5
    # mixture weights are respected: the fraction of samples near each centre
    two = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    xs = np.asarray(vmf.sample_vmf_mixture(two, 20.0, 20000, [1.0, 3.0], key=jax.random.fold_in(rng, 1)))
    assert abs(np.mean(xs[:, 2] > 0) - 0.25) < 0.015  # P(wrong hemisphere) ~ exp(-40)
    with pytest.raises(ValueError):
        vmf.vmf_mixture_logpdf(grid, means, -1.0)


def test_kde_is_a_density():
    c = vmf.fibonacci_sphere(300)[:40]
    grid = vmf.fibonacci_sphere(40000)
    mass = 4 * np.pi * np.mean(np.exp(np.asarray(vmf.vmf_kde_logpdf(grid, c, 20.0))))
    assert abs(mass - 1.0) < 5e-3


def test_entropy_coordinates_and_geodesic_w2(rng):
    # one vMF, density C exp(kappa (<mu, x> - 1)): H = -log C - kappa (E<mu, x> - 1), E<mu, x> = coth kappa - 1/kappa
    for kappa in (0.5, 10.0, 60.0):
        h = -float(vmf.vmf_log_normaliser(kappa)) - kappa * (1 / math.tanh(kappa) - 1 / kappa - 1)
        assert abs(vmf.vmf_mixture_entropy([[0.0, 0.0, 1.0]], kappa) - h) < 1e-3
    # a mixture's entropy is what its own samples score on average
    means = vmf.uniform_sphere_points(4, seed=1)
    x = vmf.sample_vmf_mixture(means, 12.0, 40000, key=rng)
    nll = -float(jnp.mean(vmf.vmf_mixture_logpdf(x, means, 12.0)))
    assert abs(nll - vmf.vmf_mixture_entropy(means, 12.0)) < 0.02
    u = vmf.uniform_sphere_points(500, seed=2)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(u, vmf.uniform_sphere_points(500, seed=2))
    lat, lon = vmf.unit_to_latlon(u)
    np.testing.assert_allclose(vmf.latlon_to_unit(lat, lon), u, atol=1e-12)
    np.testing.assert_allclose(vmf.latlon_to_unit(90.0, 10.0), [0.0, 0.0, 1.0], atol=1e-12)
    # geodesic W2: zero on itself; a rotation by angle a about z moves every point of the
    # equator by a (optimal for a < pi / n_points)
    assert vmf.geodesic_w2(u, u) < 1e-12
    a = 0.05
    eq = vmf.latlon_to_unit(np.zeros(16), np.linspace(0, 360, 16, endpoint=False))
    rot = vmf.latlon_to_unit(np.zeros(16), np.linspace(0, 360, 16, endpoint=False) + np.degrees(a))
    assert abs(vmf.geodesic_w2(eq, rot) - a**2) < 1e-10
    with pytest.raises(ValueError):
        vmf.geodesic_w2(u[:, :2], u)


@pytest.mark.slow
def test_ssw_earth_tiny(tmp_path):
    from dynajax.experiments import reproduce
    from dynajax.experiments.results import STATUSES

    m = reproduce("ssw-earth", seeds=1, out=tmp_path, overrides=[
        "n_train=300", "n_val=100", "n_test=300", "n_layers=2", "n_components=4", "steps=40", "chunks=2",
        "lr=2e-2", "ssw_steps=20", "ssw_lr=1e-2", "n_proj=20", "batch=100", "grid=3000", "kde_kappas=(10.0, 30.0)"])
    rows = {r["method"]: r["metrics"] for r in m["rows"]}
    true = rows["true mixture density (floor)"]["test_nll"]["mean"]
    flow = rows["exp-map flow (MLE)"]["test_nll"]["mean"]
    # 40 MLE steps already learn something: below the uniform law's NLL log(4 pi)
    assert true < flow < math.log(4 * math.pi)
    assert len(m["checks"]) == 4 and [c["kind"] for c in m["checks"]].count("band") == 1
    assert m["status"] in STATUSES
    # the band reference is the data law's entropy, which its own test samples estimate
    band = next(c for c in m["checks"] if c["kind"] == "band")
    assert abs(band["reference"] - true) < 0.2
    assert (tmp_path / "ssw-earth" / "ssw_earth_density.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="kde_kappas"):
        dataclasses.replace(ssw_earth.QUICK, kde_kappas=())
