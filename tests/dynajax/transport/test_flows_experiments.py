"""Tiny end-to-end runs of the sliced-flow experiments, plus their closed-form ingredients."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.experiments import reproduce, ssw_sphere, swgf_blr
from dynajax.experiments import swgf_fokker_planck as fp


def test_ou_solution_solves_the_moment_odes():
    # Fokker-Planck with V = (x-b)^T A (x-b)/2: m' = -A (m - b), S' = -A S - S A + 2 I
    A, b = fp.ou_problem(3, 0)
    t, eps = 0.3, 1e-5
    m, S = fp.ou_solution(A, b, t)
    mp, Sp = fp.ou_solution(A, b, t + eps)
    mm, Sm = fp.ou_solution(A, b, t - eps)
    np.testing.assert_allclose((mp - mm) / (2 * eps), -A @ (m - b), atol=1e-6)
    np.testing.assert_allclose((Sp - Sm) / (2 * eps), -A @ S - S @ A + 2 * np.eye(3), atol=1e-6)
    m_inf, S_inf = fp.ou_solution(A, b, 50.0)
    np.testing.assert_allclose(S_inf, np.linalg.inv(A), atol=1e-8)
    np.testing.assert_allclose(m_inf, b, atol=1e-8)
    assert fp.gaussian_kl(m, S, m, S) == 0.0 or abs(fp.gaussian_kl(m, S, m, S)) < 1e-12
    # 1-D KL closed form
    assert math.isclose(fp.gaussian_kl(np.zeros(1), np.eye(1) * 4, np.ones(1), np.eye(1)),
                        0.5 * (4 + 1 - 1 - math.log(4)), rel_tol=1e-12)


@pytest.mark.slow
def test_swgf_fokker_planck_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(fp.SIZES, "quick", {"dims": (2,), "n": 256, "batch": 128, "n_inner": 5,
                                            "lr": 1e-2, "n_proj": 8, "hidden": 8, "n_layers": 2,
                                            "max_log_scale": 0.5})
    monkeypatch.setattr(fp, "T_EVAL", (0.1,))
    monkeypatch.setattr(fp, "N_SYMKL", 500)
    m = reproduce("swgf-fokker-planck", scale="quick", seeds=1, out=tmp_path)
    rows = {r["method"]: r for r in m["rows"]}
    em = rows["Euler-Maruyama (dt=1e-3), d=2"]["metrics"]["symkl_t0.1"]["mean"]
    assert 0 <= em < 0.2  # 256 particles: the Gaussian-fit floor is about 0.02
    nf = rows["SWGF + RealNVP, d=2"]["metrics"]
    assert np.isfinite(nf["symkl_t0.1"]["mean"]) and "kl_density_t0.1" in nf
    assert np.isfinite(nf["symkl_paper_t0.1"]["mean"]) and nf["symkl_paper_t0.1"]["mean"] > -0.05
    assert len(m["checks"]) == 3
    assert (tmp_path / "swgf-fokker-planck" / "fokker_planck_symkl.png").stat().st_size > 5_000


@pytest.mark.slow
def test_ssw_sphere_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(ssw_sphere.SIZES, "quick", {"n": 48, "n_target": 48, "n_steps": 20,
                                                    "n_proj": 16, "lr": 0.1, "n_eval": 48})
    m = reproduce("ssw-sphere", scale="quick", seeds=1, out=tmp_path)
    rows = {r["method"]: r["metrics"] for r in m["rows"]}
    # even 20 steps pull the uniform cloud towards the mixture
    assert rows["SSW_2 flow"]["nll"]["mean"] < rows["initial uniform particles"]["nll"]["mean"] - 0.5
    assert (tmp_path / "ssw-sphere" / "ssw_sphere_particles.png").stat().st_size > 5_000


def test_blr_posterior_and_datasets():
    xtr, ytr, xte, _ = swgf_blr.load_dataset("twonorm", 0)
    assert xtr.shape == (400, 21) and xte.shape == (7000, 21) and set(np.unique(ytr)) == {-1.0, 1.0}
    np.testing.assert_allclose(xtr[:, :-1].mean(0), 0.0, atol=1e-5)
    logp = swgf_blr.log_posterior(xtr[:50], ytr[:50])
    theta = np.random.default_rng(0).normal(size=22).astype(np.float32) * 0.3
    w, la = theta[:-1].astype(np.float64), float(theta[-1])
    z = ytr[:50] * (xtr[:50] @ w)
    ref = (-np.sum(np.log1p(np.exp(-z))) + 0.5 * 21 * la - 0.5 * math.exp(la) * w @ w
           - swgf_blr.B0 * math.exp(la) + la)
    np.testing.assert_allclose(float(logp(jnp.asarray(theta))), ref, rtol=1e-5)
    xw, yw, _, _ = swgf_blr.load_dataset("waveform", 0)
    assert xw.shape[1] == 22 and 0.2 < np.mean(yw > 0) < 0.5  # class 0 vs rest: about 1/3


@pytest.mark.slow
def test_swgf_blr_tiny(tmp_path, monkeypatch):
    cfg = dict(swgf_blr.SIZES["quick"], datasets=("breast_cancer",), n=64, batch=32, n_outer=1,
               n_inner=3, n_proj=8, hidden=8, n_layers=2)
    monkeypatch.setitem(swgf_blr.SIZES, "quick", cfg)
    m = reproduce("swgf-blr", scale="quick", seeds=1, out=tmp_path)
    row = m["rows"][0]
    assert row["method"] == "SWGF + RealNVP, breast_cancer"
    assert 0.0 <= row["metrics"]["accuracy"]["mean"] <= 1.0
    assert row["metrics"]["sklearn_logreg_accuracy"]["mean"] > 0.9
    assert (tmp_path / "swgf-blr" / "blr_accuracy.png").stat().st_size > 5_000


def test_banana_prtools_follows_gendatb():
    rng = np.random.default_rng(0)
    x, y = swgf_blr.banana_prtools(40000, rng, s=0.0)  # noise-free: points on the two arcs
    a, b = x[y == 0], x[y == 1] + 3.75
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 5.0, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 5.0, rtol=1e-12)
    ang_a = np.mod(np.arctan2(a[:, 0], a[:, 1]), 2 * np.pi)  # angle t of (sin t, cos t)
    assert ang_a.min() >= 0.125 * np.pi - 1e-9 and ang_a.max() <= 1.375 * np.pi + 1e-9
    # uniform along the arc: the mean angle is the midpoint 0.75 pi
    assert abs(ang_a.mean() - 0.75 * np.pi) < 0.02
    assert abs(np.mean(y) - 0.5) < 0.01
    x1, _ = swgf_blr.banana_prtools(40000, np.random.default_rng(0), s=1.0)
    np.testing.assert_allclose(np.std(x1 - x, axis=0), 1.0, atol=0.02)  # same draws + N(0, 1)
    xtr, _, xte, _ = swgf_blr.load_dataset("banana_prtools", 0)
    assert xtr.shape == (400, 3) and xte.shape == (4900, 3)
