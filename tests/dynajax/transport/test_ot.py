"""Tests of dynajax.transport.ot against closed forms and POT/scipy references."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import ot as pot
import pytest
import scipy.stats

from dynajax.transport import ot


def _cloud(seed, n, d, shift=0.0, scale=1.0):
    return scale * jax.random.normal(jax.random.PRNGKey(seed), (n, d)) + shift


def _spd(rng, d):
    m = rng.normal(size=(d, d))
    return m @ m.T / d + 0.5 * np.eye(d)


# ----------------------------------------------------------------------------- Gaussians
def test_gaussian_w2_1d_formula_exact():
    for m1, s1, m2, s2 in [
        (0.0, 1.0, 0.0, 1.0),
        (1.5, 0.3, -2.0, 2.5),
        (0.2, 4.0, 0.1, 0.01),
    ]:
        got = ot.gaussian_w2(
            jnp.array([m1]), jnp.array([[s1**2]]), jnp.array([m2]), jnp.array([[s2**2]])
        )
        np.testing.assert_allclose(
            got, (m1 - m2) ** 2 + (s1 - s2) ** 2, rtol=1e-5, atol=1e-5
        )


def test_gaussian_w2_commuting_and_symmetry():
    rng = np.random.default_rng(0)
    d1, d2 = rng.uniform(0.2, 3.0, 3), rng.uniform(0.2, 3.0, 3)
    m1, m2 = rng.normal(size=3), rng.normal(size=3)
    want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    got = ot.gaussian_w2(m1, np.diag(d1), m2, np.diag(d2))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    s1, s2 = _spd(rng, 4), _spd(rng, 4)
    a = ot.gaussian_w2(m1[:1].repeat(4), s1, m2[:1].repeat(4), s2)
    b = ot.gaussian_w2(m2[:1].repeat(4), s2, m1[:1].repeat(4), s1)
    np.testing.assert_allclose(a, b, rtol=1e-4)
    # identical Gaussians
    np.testing.assert_allclose(
        ot.gaussian_w2(m1, s1[:3, :3], m1, s1[:3, :3]), 0.0, atol=1e-5
    )


def _moment_matched(rng, m, s, n):
    """Gaussian draws transformed to have exactly mean m and (biased) covariance s."""
    z = rng.normal(size=(n, len(m)))
    z -= z.mean(0)
    c = np.cov(z.T, bias=True)

    def sqrt(a):
        w, v = np.linalg.eigh(a)
        return (v * np.sqrt(w)) @ v.T

    return m + z @ np.linalg.inv(sqrt(c)) @ sqrt(s)


def test_gaussian_w2_vs_exact_on_samples():
    # Gelbrich bound: for any measures with these moments W2^2 >= the Gaussian closed form,
    # and moment-matched Gaussian samples approach it as n grows.
    rng = np.random.default_rng(1)
    d, n = 2, 400
    s1, s2 = _spd(rng, d), _spd(rng, d)
    m1, m2 = np.array([0.0, 0.0]), np.array([1.0, -0.5])
    x = _moment_matched(rng, m1, s1, n)
    y = _moment_matched(rng, m2, s2, n)
    closed = float(ot.gaussian_w2(m1, s1, m2, s2))
    exact = float(ot.exact_w2(x, y))
    assert closed - 1e-4 <= exact <= closed + 0.15
    sk = float(ot.sinkhorn(x, y, epsilon=0.01).cost)
    assert exact - 1e-3 <= sk <= closed + 0.25


def test_gaussian_monge_map_pushforward_and_convexity():
    rng = np.random.default_rng(2)
    d = 3
    s1, s2 = _spd(rng, d), _spd(rng, d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    t = ot.gaussian_monge_map(m1, s1, m2, s2)
    a = np.asarray(t.matrix, dtype=np.float64)
    np.testing.assert_allclose(a, a.T, atol=1e-6)
    assert np.linalg.eigvalsh(a).min() > 0
    # exact push-forward of the moments: A S1 A = S2, T(m1) = m2
    np.testing.assert_allclose(a @ s1 @ a, s2, atol=2e-4)
    np.testing.assert_allclose(t(m1), m2, atol=1e-5)
    x = rng.multivariate_normal(m1, s1, size=20000)
    tx = np.asarray(t(x))
    np.testing.assert_allclose(tx.mean(0), m2, atol=0.05)
    np.testing.assert_allclose(np.cov(tx.T), s2, atol=0.08)
    # transport cost of the Monge map equals W2^2 (population)
    cost = np.mean(np.sum((tx - x) ** 2, axis=1))
    np.testing.assert_allclose(cost, ot.gaussian_w2(m1, s1, m2, s2), rtol=0.05)


def test_gaussian_w2_gradient_vs_finite_differences():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        s1, s2 = jnp.asarray(_spd(rng, 3)), jnp.asarray(_spd(rng, 3))
        m1, m2 = jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal(size=3))
        f = lambda s: ot.gaussian_w2(m1, s, m2, s2)
        g = jax.grad(f)(s1)
        dirn = jnp.asarray(_spd(rng, 3))
        h = 1e-5
        fd = (f(s1 + h * dirn) - f(s1 - h * dirn)) / (2 * h)
        np.testing.assert_allclose(jnp.sum(g * dirn), fd, rtol=1e-6)
        gm = jax.grad(lambda m: ot.gaussian_w2(m, s1, m2, s2))(m1)
        np.testing.assert_allclose(gm, 2 * (m1 - m2), rtol=1e-8)
        # repeated eigenvalues: gradient stays finite
        gi = jax.grad(lambda s: ot.gaussian_w2(m1, s, m2, 2 * jnp.eye(3)))(jnp.eye(3))
        np.testing.assert_allclose(gi, (1 - np.sqrt(2)) * np.eye(3), atol=1e-8)


def test_gaussian_vmap():
    m = jnp.zeros((4, 2))
    s = jnp.stack([jnp.eye(2) * (i + 1.0) for i in range(4)])
    got = jax.vmap(ot.gaussian_w2, in_axes=(0, 0, None, None))(
        m, s, jnp.zeros(2), jnp.eye(2)
    )
    np.testing.assert_allclose(
        got, 2 * (np.sqrt(np.arange(1, 5)) - 1) ** 2, rtol=1e-5, atol=1e-6
    )


# ----------------------------------------------------------------------------- exact OT
def test_exact_w2_1d_equals_sorted_matching():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(80, 1))
    y = rng.exponential(size=(80, 1))
    want = np.mean((np.sort(x[:, 0]) - np.sort(y[:, 0])) ** 2)
    np.testing.assert_allclose(ot.exact_w2(x, y), want, rtol=1e-5)
    # also through the LP path (explicit uniform weights)
    np.testing.assert_allclose(
        ot.exact_w2(x, y, np.full(80, 1 / 80), np.full(80, 1 / 80)), want, rtol=1e-5
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_exact_w2_vs_pot(weighted):
    rng = np.random.default_rng(5 + weighted)
    n, m = (30, 30) if not weighted else (25, 35)
    x, y = rng.normal(size=(n, 3)), rng.normal(size=(m, 3)) + 0.7
    a = b = None
    pa, pb = np.full(n, 1 / n), np.full(m, 1 / m)
    if weighted:
        pa, pb = rng.uniform(0.1, 1, n), rng.uniform(0.1, 1, m)
        pa, pb = pa / pa.sum(), pb / pb.sum()
        a, b = pa, pb
    want = pot.emd2(pa, pb, pot.dist(x, y))
    np.testing.assert_allclose(ot.exact_w2(x, y, a, b), want, rtol=1e-5)
    plan = np.asarray(ot.exact_ot_plan(x, y, a, b))
    np.testing.assert_allclose(plan.sum(1), pa, atol=1e-6)
    np.testing.assert_allclose(plan.sum(0), pb, atol=1e-6)


def test_exact_translation_invariance_and_symmetry():
    x, y = _cloud(0, 40, 2), _cloud(1, 40, 2, scale=2.0)
    bvec = jnp.array([3.0, -1.0])
    w = ot.exact_w2(x, y)
    np.testing.assert_allclose(ot.exact_w2(x + bvec, y + bvec), w, rtol=1e-5)
    np.testing.assert_allclose(ot.exact_w2(y, x), w, rtol=1e-5)
    np.testing.assert_allclose(ot.exact_w2(x, x + bvec), jnp.sum(bvec**2), rtol=1e-5)
    np.testing.assert_allclose(ot.exact_w2(x, x), 0.0, atol=1e-7)


def test_exact_w2_jit_vmap_grad():
    x, y = _cloud(2, 20, 2), _cloud(3, 20, 2, shift=1.0)
    w = ot.exact_w2(x, y)
    np.testing.assert_allclose(jax.jit(ot.exact_w2)(x, y), w, rtol=1e-6)
    batch = jax.vmap(ot.exact_w2)(jnp.stack([x, y]), jnp.stack([y, x]))
    np.testing.assert_allclose(batch, [w, w], rtol=1e-5)
    # envelope gradient: 2 (x_i - y_sigma(i)) / n
    plan = ot.exact_ot_plan(x, y)
    g = jax.grad(ot.exact_w2)(x, y)
    np.testing.assert_allclose(g, 2 * (x / 20 - plan @ y), atol=1e-6)


def test_barycentric_projection():
    x, y = _cloud(4, 15, 2), _cloud(5, 15, 2, shift=2.0)
    plan = ot.exact_ot_plan(x, y)
    ty = ot.barycentric_projection(plan, y)
    perm = np.argmax(np.asarray(plan), axis=1)
    np.testing.assert_allclose(ty, np.asarray(y)[perm], atol=1e-6)
    # entropic plan: rows are convex combinations
    sk = ot.sinkhorn(x, y, epsilon=0.5).plan
    tb = ot.barycentric_projection(sk, y)
    np.testing.assert_allclose(tb, (sk @ y) / sk.sum(1, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError):
        ot.barycentric_projection(plan[:, :3], y)
    with pytest.raises(ValueError):
        ot.barycentric_projection(-plan, y)


# ----------------------------------------------------------------------------- Sinkhorn
def test_sinkhorn_converges_to_exact_as_epsilon_decreases():
    x, y = _cloud(6, 60, 2), _cloud(7, 60, 2, shift=1.0)
    exact = float(ot.exact_w2(x, y))
    errs = []
    for eps in [1.0, 0.3, 0.1, 0.03, 0.01]:
        r = ot.sinkhorn(x, y, epsilon=eps, threshold=1e-4, max_iterations=5000)
        assert bool(r.converged)
        errs.append(abs(float(r.cost) - exact))
        np.testing.assert_allclose(r.plan.sum(1), 1 / 60, atol=1e-4)
    assert all(e2 <= e1 + 1e-3 for e1, e2 in itertools.pairwise(errs)), errs
    assert errs[-1] < 0.02 * exact + 0.01
    assert errs[0] > 10 * errs[-1]


def test_sinkhorn_symmetry_and_translation():
    x, y = _cloud(8, 40, 2), _cloud(9, 50, 2, shift=0.5)
    bvec = jnp.array([2.0, 1.0])
    c = ot.sinkhorn(x, y, epsilon=0.1, threshold=1e-5).cost
    np.testing.assert_allclose(
        ot.sinkhorn(y, x, epsilon=0.1, threshold=1e-5).cost, c, rtol=1e-3
    )
    np.testing.assert_allclose(
        ot.sinkhorn(x + bvec, y + bvec, epsilon=0.1, threshold=1e-5).cost, c, rtol=1e-3
    )


def test_sinkhorn_divergence_zero_for_identical_positive_otherwise():
    x, y = _cloud(10, 50, 2), _cloud(11, 50, 2, shift=1.0)
    assert abs(float(ot.sinkhorn_divergence(x, x, epsilon=0.1))) < 1e-4
    d = float(ot.sinkhorn_divergence(x, y, epsilon=0.1))
    assert d > 0.5
    # debiased divergence is below the biased entropic cost and near W2^2 for small eps
    assert d < float(ot.sinkhorn(x, y, epsilon=0.1).cost)
    np.testing.assert_allclose(
        ot.sinkhorn_divergence(x, y, epsilon=0.01), ot.exact_w2(x, y), rtol=0.05
    )


def test_sinkhorn_divergence_gradient_vs_finite_differences():
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(12).normal(size=(20, 2)))
        y = (
            x
            + jnp.array([1.0, 0.5])
            + 0.3 * jnp.asarray(np.random.default_rng(13).normal(size=(20, 2)))
        )
        f = lambda z: ot.sinkhorn_divergence(
            z, y, epsilon=0.5, threshold=1e-9, max_iterations=10000
        )
        g = jax.grad(f)(x)
        dirn = jnp.asarray(np.random.default_rng(14).normal(size=(20, 2)))
        h = 1e-5
        fd = (f(x + h * dirn) - f(x - h * dirn)) / (2 * h)
        np.testing.assert_allclose(jnp.sum(g * dirn), fd, rtol=1e-4)


# ----------------------------------------------------------------------------- kernels
def test_energy_distance_bruteforce_and_scipy():
    rng = np.random.default_rng(15)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(20, 3)) + 0.5
    dist = lambda u, v: np.linalg.norm(u[:, None] - v[None], axis=-1)
    want = 2 * dist(x, y).mean() - dist(x, x).mean() - dist(y, y).mean()
    np.testing.assert_allclose(ot.energy_distance(x, y), want, rtol=1e-5)
    u, v = rng.normal(size=(40, 1)), rng.gamma(2.0, size=(25, 1))
    wu, wv = rng.uniform(0.1, 1, 40), rng.uniform(0.1, 1, 25)
    ref = scipy.stats.energy_distance(u[:, 0], v[:, 0], wu, wv) ** 2
    got = ot.energy_distance(u, v, wu / wu.sum(), wv / wv.sum())
    np.testing.assert_allclose(got, ref, rtol=1e-4)
    np.testing.assert_allclose(ot.energy_distance(x, x), 0.0, atol=1e-5)
    g = jax.grad(lambda z: ot.energy_distance(z, y))(jnp.asarray(x, jnp.float32))
    assert np.all(np.isfinite(g))


def test_mmd2_biased_unbiased():
    rng = np.random.default_rng(16)
    x = rng.normal(size=(50, 2))
    np.testing.assert_allclose(ot.mmd2(x, x, [0.5, 1.0, 2.0]), 0.0, atol=1e-6)
    y = rng.normal(size=(50, 2)) + 1.0
    bws = [0.5, 1.0, 2.0]
    k = lambda u, v: sum(
        np.exp(-np.sum((u[:, None] - v[None]) ** 2, -1) / (2 * s**2)) for s in bws
    )
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    biased = kxx.mean() + kyy.mean() - 2 * kxy.mean()
    unb = (
        (kxx.sum() - np.trace(kxx)) / (50 * 49)
        + (kyy.sum() - np.trace(kyy)) / (50 * 49)
        - 2 * kxy.mean()
    )
    np.testing.assert_allclose(ot.mmd2(x, y, bws), biased, rtol=1e-5)
    np.testing.assert_allclose(ot.mmd2(x, y, bws, unbiased=True), unb, rtol=1e-5)
    # unbiased estimator is mean-zero under the null
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    draws = jax.vmap(
        lambda kk: ot.mmd2(
            jax.random.normal(jax.random.fold_in(kk, 0), (30, 2)),
            jax.random.normal(jax.random.fold_in(kk, 1), (30, 2)),
            1.0,
            unbiased=True,
        )
    )(keys)
    se = float(jnp.std(draws)) / np.sqrt(200)
    assert abs(float(jnp.mean(draws))) < 4 * se
    assert float(jnp.min(draws)) < 0  # it can be negative
    with pytest.raises(ValueError, match="bandwidths"):
        ot.mmd2(x, y, [1.0, -1.0])


# ----------------------------------------------------------------------------- bad inputs
def test_bad_inputs():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="empty"):
        ot.exact_w2(np.zeros((0, 2)), x)
    with pytest.raises(ValueError, match="rank"):
        ot.sinkhorn(np.zeros(5), x)
    with pytest.raises(ValueError, match="dimension"):
        ot.energy_distance(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        ot.mmd2(x, np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="non-negative"):
        ot.exact_w2(x, x, np.array([-0.2, 0.3, 0.3, 0.3, 0.3]))
    with pytest.raises(ValueError, match="sum to 1"):
        ot.sinkhorn_divergence(x, x, np.ones(5))
    with pytest.raises(ValueError, match="shape"):
        ot.exact_w2(x, x, np.ones(4) / 4)
    with pytest.raises(ValueError, match="covariance"):
        ot.gaussian_w2(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="dimension"):
        ot.gaussian_monge_map(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        ot.gaussian_w2(np.array([np.nan]), np.eye(1), np.zeros(1), np.eye(1))
