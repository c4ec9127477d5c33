"""Tiny end-to-end runs of the sliced-flow experiments, plus their library ingredients
(OU solution and SymKL scores, Bayesian logistic regression, the sliced flow on the sphere)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.experiments import get_experiment, reproduce, ssw_sphere, swgf_blr
from dynajax.experiments import swgf_fokker_planck as fp
from dynajax.experiments.results import CHECK_KINDS, STATUSES
from dynajax.transport import bayes_logreg as blr
from dynajax.transport import fokker_planck as fpl
from dynajax.transport.flows import sphere_sliced_descent
from dynajax.transport.sphere_vmf import sample_vmf_mixture, uniform_sphere_points, vmf_mixture_logpdf


def _assert_record(m, n_checks):
    assert len(m["checks"]) == n_checks
    assert all(c["kind"] in CHECK_KINDS for c in m["checks"])
    assert m["status"] in STATUSES


def test_ou_solution_solves_the_moment_odes():
    # Fokker-Planck with V = (x-b)^T A (x-b)/2: m' = -A (m - b), S' = -A S - S A + 2 I
    A, b = fpl.ou_problem(3, seed=0)
    t, eps = 0.3, 1e-5
    m, S = fpl.ou_solution(A, b, t)
    mp, Sp = fpl.ou_solution(A, b, t + eps)
    mm, Sm = fpl.ou_solution(A, b, t - eps)
    np.testing.assert_allclose((mp - mm) / (2 * eps), -A @ (m - b), atol=1e-6)
    np.testing.assert_allclose((Sp - Sm) / (2 * eps), -A @ S - S @ A + 2 * np.eye(3), atol=1e-6)
    m_inf, S_inf = fpl.ou_solution(A, b, 50.0)
    np.testing.assert_allclose(S_inf, np.linalg.inv(A), atol=1e-8)
    np.testing.assert_allclose(m_inf, b, atol=1e-8)
    assert abs(fpl.gaussian_kl(m, S, m, S)) < 1e-12
    # 1-D KL closed form
    assert math.isclose(fpl.gaussian_kl(np.zeros(1), np.eye(1) * 4, np.ones(1), np.eye(1)),
                        0.5 * (4 + 1 - 1 - math.log(4)), rel_tol=1e-12)
    lam = np.linalg.eigvalsh(A)
    assert lam.min() >= 0.5 and lam.max() <= 2.0
    with pytest.raises(ValueError):
        fpl.ou_solution(-np.eye(2), np.zeros(2), 0.1)


def test_symmetric_kl_estimators():
    rng = np.random.default_rng(0)
    m, S = np.array([1.0, -0.5]), np.array([[1.0, 0.3], [0.3, 0.5]])
    # Gaussian fit: a pure mean shift delta gives delta^T S^-1 delta (both directions); the
    # floor for n exact samples is about d (d + 3) / (2 n)
    x = rng.multivariate_normal(m, S, size=20000)
    floor = fpl.symmetric_kl_to_fit(x, m, S)
    assert 0 < floor < 5 * 2 * (2 + 3) / (2 * 20000)
    shift = np.array([0.2, 0.1])
    expected = shift @ np.linalg.solve(S, shift)  # 1/2 dm^T S^-1 dm from each direction
    assert abs(fpl.symmetric_kl_to_fit(x + shift, m, S) - expected) < 0.02
    # exact density: the flow estimator of p against itself is zero up to Monte Carlo noise
    from scipy.stats import multivariate_normal

    logq = multivariate_normal(m, S).logpdf
    y = rng.multivariate_normal(m, S, size=5000)
    assert abs(fpl.symmetric_kl_flow(y, logq(y), logq, m, S, 5000, seed=1)) < 1e-6  # float32 queries
    wide = multivariate_normal(m, 2 * S).logpdf  # q = N(m, 2 S): symmetric KL = d / 4
    yw = rng.multivariate_normal(m, 2 * S, size=20000)
    assert abs(fpl.symmetric_kl_flow(yw, wide(yw), wide, m, S, 20000, seed=2) - 0.5) < 0.05
    # KDE of exact samples: small, positive smoothing bias
    kde = fpl.symmetric_kl_kde(x[:2000], m, S, 3000, seed=3)
    assert 0 < kde < 0.1
    with pytest.raises(ValueError):
        fpl.symmetric_kl_to_fit(x[:2], m, S)


@pytest.mark.slow
def test_swgf_fokker_planck_tiny(tmp_path):
    m = reproduce("swgf-fokker-planck", seeds=1, out=tmp_path, overrides=[
        "dims=(2,)", "n=256", "batch=128", "n_inner=5", "n_proj=8", "hidden=8", "n_layers=2",
        "t_eval=(0.1,)", "n_symkl=500"])
    rows = {r["method"]: r for r in m["rows"]}
    em = rows["Euler-Maruyama (dt=1e-3), d=2"]["metrics"]["symkl_t0.1"]["mean"]
    assert 0 <= em < 0.2  # 256 particles: the Gaussian-fit floor is about 0.02
    nf = rows["SWGF + RealNVP, d=2"]["metrics"]
    assert np.isfinite(nf["symkl_t0.1"]["mean"]) and "kl_density_t0.1" in nf
    assert np.isfinite(nf["symkl_paper_t0.1"]["mean"]) and nf["symkl_paper_t0.1"]["mean"] > -0.05
    _assert_record(m, 3)
    assert [c["kind"] for c in m["checks"]] == ["trend", "trend", "band"]
    assert (tmp_path / "swgf-fokker-planck" / "fokker_planck_symkl.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="t_eval"):
        dataclasses.replace(fp.QUICK, t_eval=(0.12,))
    with pytest.raises(ValueError, match="dims"):
        dataclasses.replace(fp.QUICK, dims=())


@pytest.mark.slow
def test_sphere_sliced_descent_moves_to_the_target(rng):
    means = uniform_sphere_points(2, seed=3)
    z = jax.random.normal(rng, (64, 3))
    x0 = z / jnp.linalg.norm(z, axis=1, keepdims=True)

    def nll(p):
        return float(-jnp.mean(vmf_mixture_logpdf(p, means, 20.0)))

    for spherical in (True, False):
        x = sphere_sliced_descent(x0, lambda k: sample_vmf_mixture(means, 20.0, 64, key=k), spherical=spherical,
                                  n_steps=30, n_proj=20, lr=0.1, key=rng)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(x), axis=1), 1.0, atol=1e-5)
        assert nll(x) < nll(x0) - 1.0
    with pytest.raises(ValueError, match="unit sphere"):
        sphere_sliced_descent(2 * x0, lambda k: x0, spherical=True, n_steps=1, n_proj=1, lr=0.1, key=rng)
    with pytest.raises(ValueError):
        sphere_sliced_descent(x0, lambda k: x0, spherical=True, n_steps=0, n_proj=1, lr=0.1, key=rng)


@pytest.mark.slow
def test_ssw_sphere_tiny(tmp_path):
    cfg = dataclasses.replace(ssw_sphere.QUICK, n=48, n_target=48, n_steps=20, n_proj=16, n_eval=48)
    res = ssw_sphere.run(cfg, (0,), tmp_path)
    rows = {r.method: r.values for r in res.rows}
    # even 20 steps pull the uniform cloud towards the mixture
    assert rows["SSW_2 flow"]["nll"][0] < rows["initial uniform particles"]["nll"][0] - 0.5
    assert res.checks[0].kind == "band" and res.checks[0].reference > 0
    assert all(c.kind in CHECK_KINDS for c in res.checks) and len(res.checks) == 3
    assert (tmp_path / "ssw_sphere_particles.png").stat().st_size > 5_000
    assert "demo" in get_experiment("ssw-sphere").configs
    with pytest.raises(ValueError):
        dataclasses.replace(ssw_sphere.QUICK, n_proj=0)


def test_blr_posterior_and_datasets():
    xtr, ytr, xte, _ = blr.load_dataset("twonorm", seed=0)
    assert xtr.shape == (400, 21) and xte.shape == (7000, 21) and set(np.unique(ytr)) == {-1.0, 1.0}
    np.testing.assert_allclose(xtr[:, :-1].mean(0), 0.0, atol=1e-5)
    logp = blr.log_posterior(xtr[:50], ytr[:50])
    theta = np.random.default_rng(0).normal(size=22).astype(np.float32) * 0.3
    w, la = theta[:-1].astype(np.float64), float(theta[-1])
    z = ytr[:50] * (xtr[:50] @ w)
    ref = (-np.sum(np.log1p(np.exp(-z))) + 0.5 * 21 * la - 0.5 * math.exp(la) * w @ w
           - 0.01 * math.exp(la) + la)
    np.testing.assert_allclose(float(logp(jnp.asarray(theta))), ref, rtol=1e-5)
    xw, yw, _, _ = blr.load_dataset("waveform", seed=0)
    assert xw.shape[1] == 22 and 0.2 < np.mean(yw > 0) < 0.5  # class 0 vs rest: about 1/3
    # the predictive classifier of a point mass at w is the sign of w^T x
    theta = np.concatenate([np.ones(21), [0.0]])[None].astype(np.float32)
    acc = blr.predictive_accuracy(theta, xte, np.sign(xte @ theta[0, :-1]))
    assert acc == 1.0
    with pytest.raises(ValueError, match="unknown dataset"):
        blr.load_dataset("covtype", seed=0)


def test_ringnorm_is_the_delve_benchmark():
    """DELVE's ringnorm (the Ratsch split's source): Bayes error 1.3%, and a linear classifier
    sees the classes only along the mean direction (N(0, 4) vs N(|a 1| = 2, 1)): about 77%."""
    x, y = blr.breiman_dataset("ringnorm", 40_000, rng=np.random.default_rng(0))
    a, d = 2 / np.sqrt(20), 20
    log_ratio = -0.5 * np.sum((x - a) ** 2, 1) + 0.5 * np.sum(x**2, 1) / 4 + d * np.log(2)  # class 0 vs class 1
    assert abs(np.mean((log_ratio > 0) != (y == 0)) - 0.013) < 0.003
    t = x.sum(1) / np.sqrt(d)
    best = max(np.mean((t > c) == (y == 0)) for c in np.linspace(-2, 2, 81))
    assert abs(best - 0.77) < 0.01 and abs(np.mean(y) - 0.5) < 0.01


@pytest.mark.slow
def test_swgf_blr_tiny(tmp_path):
    m = reproduce("swgf-blr", seeds=1, out=tmp_path, overrides=[
        "datasets=('breast_cancer', 'twonorm')", "n=64", "batch=32", "n_outer=1", "n_inner=3", "n_proj=8",
        "hidden=8", "n_layers=2"])
    row = m["rows"][0]
    assert row["method"] == "SWGF + RealNVP, breast_cancer"
    assert 0.0 <= row["metrics"]["accuracy"]["mean"] <= 1.0
    assert row["metrics"]["sklearn_logreg_accuracy"]["mean"] > 0.9
    assert m["rows"][1]["reference"]["accuracy"] == 0.981
    _assert_record(m, 3)  # the twonorm band, one logistic-regression trend check per dataset
    assert [c["kind"] for c in m["checks"]] == ["band", "trend", "trend"]
    assert m["checks"][0]["reference"] == 0.981
    assert (tmp_path / "swgf-blr" / "blr_accuracy.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="datasets"):
        dataclasses.replace(swgf_blr.QUICK, datasets=("covtype",))


def test_banana_prtools_follows_gendatb():
    rng = np.random.default_rng(0)
    x, y = blr.banana_prtools(40000, s=0.0, rng=rng)  # noise-free: points on the two arcs
    a, b = x[y == 0], x[y == 1] + 3.75
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 5.0, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 5.0, rtol=1e-12)
    ang_a = np.mod(np.arctan2(a[:, 0], a[:, 1]), 2 * np.pi)  # angle t of (sin t, cos t)
    assert ang_a.min() >= 0.125 * np.pi - 1e-9 and ang_a.max() <= 1.375 * np.pi + 1e-9
    # uniform along the arc: the mean angle is the midpoint 0.75 pi
    assert abs(ang_a.mean() - 0.75 * np.pi) < 0.02
    assert abs(np.mean(y) - 0.5) < 0.01
    x1, _ = blr.banana_prtools(40000, s=1.0, rng=np.random.default_rng(0))
    np.testing.assert_allclose(np.std(x1 - x, axis=0), 1.0, atol=0.02)  # same draws + N(0, 1)
    xtr, _, xte, _ = blr.load_dataset("banana_prtools", seed=0)
    assert xtr.shape == (400, 3) and xte.shape == (4900, 3)
