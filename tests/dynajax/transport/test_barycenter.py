"""Barycenters against POT (free support, entropic fixed support, Bures-Wasserstein) and closed
forms (commuting Gaussians, translates)."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from dynajax.transport import barycenter as B
from dynajax.transport.ot import exact_w2


def _clouds(seed, K=3, m=20, d=2):
    r = np.random.default_rng(seed)
    return [r.normal(size=(m + 3 * k, d)) * (0.5 + 0.3 * k) + 2.0 * k for k in range(K)]


def test_free_support_matches_pot(x64):
    ys = _clouds(0)
    bs = [np.random.default_rng(k).random(len(y)) + 0.2 for k, y in enumerate(ys)]
    bs = [b / b.sum() for b in bs]
    lam = np.array([0.5, 0.3, 0.2])
    x0 = np.random.default_rng(9).normal(size=(15, 2))
    ref = ot.lp.free_support_barycenter(ys, bs, x0, weights=lam, numItermax=50, stopThr=1e-9)
    got = B.free_support_barycenter(ys, x0, bs, lam, n_iter=50, tol=1e-9)
    np.testing.assert_allclose(got.x, ref, atol=1e-8)
    cost = sum(l * exact_w2(got.x, y, None, b) for y, b, l in zip(ys, bs, lam))
    np.testing.assert_allclose(got.cost, cost, rtol=1e-10)


@pytest.mark.slow
def test_free_support_sinkhorn_approaches_exact():
    ys = _clouds(1, K=2, m=24)
    x0 = np.random.default_rng(3).normal(size=(12, 2)) + 1.0
    ex = B.free_support_barycenter(ys, x0, n_iter=30)
    sk = B.free_support_barycenter(ys, x0, solver="sinkhorn", n_iter=30, epsilon=1e-3)
    # both are local minima of a non-convex objective: compare their exact objective values
    obj = sum(0.5 * float(exact_w2(sk.x, y)) for y in ys)
    assert abs(obj - float(ex.cost)) < 0.05 * float(ex.cost), (obj, float(ex.cost))


@pytest.mark.slow
def test_fixed_support_matches_pot_bregman_barycenter(x64):
    grid = np.linspace(0, 1, 40)[:, None]
    h1 = np.exp(-((grid[:, 0] - 0.25) ** 2) / 0.005)
    h2 = np.exp(-((grid[:, 0] - 0.7) ** 2) / 0.01)
    H = np.stack([h1 / h1.sum(), h2 / h2.sum()])
    M = ot.dist(grid, grid)
    ref = ot.bregman.barycenter(H.T, M, 2e-3, weights=np.array([0.3, 0.7]), method="sinkhorn_log", numItermax=20000, stopThr=1e-12)
    got = B.fixed_support_barycenter(H, grid, np.array([0.3, 0.7]), epsilon=2e-3, threshold=1e-10)
    np.testing.assert_allclose(got, ref, atol=1e-9)
    # the mass sits between the inputs at the barycentric mean 0.3 * 0.25 + 0.7 * 0.7
    np.testing.assert_allclose(np.sum(got * grid[:, 0]), 0.565, atol=1e-2)


def test_gaussian_barycenter_closed_forms(x64):
    r = np.random.default_rng(4)
    K, d = 4, 3
    means = r.normal(size=(K, d))
    A = r.normal(size=(K, d, d))
    covs = A @ np.transpose(A, (0, 2, 1)) + 0.3 * np.eye(d)
    lam = np.array([0.1, 0.2, 0.3, 0.4])
    m, S = B.gaussian_barycenter(means, covs, lam, n_iter=60)
    m_ref, S_ref = ot.gaussian.bures_wasserstein_barycenter(means, covs, weights=lam, num_iter=1000, eps=1e-14)
    np.testing.assert_allclose(m, m_ref, atol=1e-12)
    np.testing.assert_allclose(S, S_ref, atol=1e-8)
    # the fixed-point equation itself
    root = lambda s: (lambda w, v: (v * np.sqrt(np.clip(w, 0, None))) @ v.T)(*np.linalg.eigh(s))
    Sr = root(np.asarray(S))
    rhs = sum(l * root(Sr @ c @ Sr) for l, c in zip(lam, covs))
    np.testing.assert_allclose(S, rhs, atol=1e-10)
    # commuting (diagonal) covariances: S^{1/2} = sum lam_k S_k^{1/2}
    D = r.random((K, d)) + 0.1
    _, Sd = B.gaussian_barycenter(means, jax.vmap(jnp.diag)(D), lam, n_iter=60)
    np.testing.assert_allclose(Sd, np.diag((lam @ np.sqrt(D)) ** 2), atol=1e-10)


@pytest.mark.slow
def test_free_support_barycenter_of_gaussian_samples_approaches_the_closed_form(x64):
    r = np.random.default_rng(5)
    means = np.array([[0.0, 0.0], [3.0, 1.0]])
    covs = np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.5, -0.2], [-0.2, 2.0]]])
    ys = [r.multivariate_normal(mu, c, size=600) for mu, c in zip(means, covs)]
    bar = B.free_support_barycenter(ys, r.normal(size=(600, 2)), n_iter=30).x
    m, S = B.gaussian_barycenter(means, covs, n_iter=50)
    np.testing.assert_allclose(np.mean(bar, 0), m, atol=0.1)
    np.testing.assert_allclose(np.cov(bar.T), S, atol=0.15)


@pytest.mark.slow
def test_sliced_barycenter_of_translates_is_the_mean_translate():
    # the SW_2 (and W_2) barycenter of translates y + c_k is y + sum lam_k c_k
    r = np.random.default_rng(6)
    y = r.normal(size=(64, 2))
    cs = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    lam = np.array([0.2, 0.3, 0.5])
    x0 = r.normal(size=(64, 2)) * 0.3
    x = B.sliced_wasserstein_barycenter([y + c for c in cs], x0, lam, key=jax.random.key(0), n_steps=300, n_proj=32)
    target = y + lam @ cs
    w = float(exact_w2(x, target))
    assert w < 5e-3 * float(exact_w2(x0, target)), w


def test_barycenter_validation():
    with pytest.raises(ValueError, match="unknown solver"):
        B.free_support_barycenter(_clouds(0), np.zeros((3, 2)), solver="lp")
    with pytest.raises(ValueError, match="share the dimension"):
        B.free_support_barycenter([np.zeros((3, 2)), np.zeros((3, 3))], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="lam"):
        B.gaussian_barycenter(np.zeros((2, 2)), np.stack([np.eye(2)] * 2), np.array([0.5, 0.6]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        B.gaussian_barycenter(np.zeros((1, 2)), -np.eye(2)[None])
