"""Sliced distances: exact oracles, POT with identical projections, invariances, gradients."""

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from dynajax.transport import sliced as S

sw = jax.jit(S.sliced_wasserstein, static_argnames=("p", "n_proj"))
ssw = jax.jit(S.spherical_sliced_wasserstein, static_argnames=("p", "n_proj", "n_iter"))
ssw_unif = jax.jit(S.spherical_sliced_wasserstein_unif, static_argnames=("n_proj",))
sgw = jax.jit(S.sliced_gromov_wasserstein, static_argnames=("n_proj",))


def _clouds(seed, n=12, m=9, d=3):
    r = np.random.default_rng(seed)
    x, y = r.normal(size=(n, d)), r.normal(size=(m, d)) + 0.5
    a, b = r.random(n) + 0.1, r.random(m) + 0.1
    return x, y, a / a.sum(), b / b.sum()


def _sphere(seed, n, d=3):
    z = np.random.default_rng(seed).normal(size=(n, d))
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _proj(seed, k=16, d=3):
    return np.asarray(S.random_directions(k, d, key=jax.random.key(seed)))


def _planes(seed, k=16, d=3):
    return np.asarray(S.random_stiefel(k, d, key=jax.random.key(seed)))


# --------------------------------------------------------------------------------------------
def test_random_projection_laws():
    th = S.random_directions(64, 5, key=jax.random.key(0))
    np.testing.assert_allclose(jnp.linalg.norm(th, axis=1), 1.0, rtol=1e-5)
    U = S.random_stiefel(64, 5, key=jax.random.key(1))
    np.testing.assert_allclose(
        jnp.einsum("kdi,kdj->kij", U, U),
        np.broadcast_to(np.eye(2), (64, 2, 2)),
        atol=1e-5,
    )


def test_sw_in_1d_is_exact_wasserstein():
    x, y, a, b = _clouds(0, d=1)
    th = np.array([[1.0], [-1.0]])
    for p in (1.0, 2.0):
        exact = ot.wasserstein_1d(x[:, 0], y[:, 0], a, b, p=p)
        np.testing.assert_allclose(
            sw(x, y, a, b, p=p, projections=th), exact, rtol=1e-5
        )


def test_sw_of_translate_is_projected_norm():
    x, _, _, _ = _clouds(1, d=4)
    t = np.array([0.3, -1.0, 0.5, 2.0])
    th = _proj(2, 32, 4)
    for p in (1.0, 2.0):
        expected = np.mean(np.abs(th @ t) ** p)
        np.testing.assert_allclose(
            sw(x, x + t, p=p, projections=th), expected, rtol=1e-4
        )
    # and in expectation over the sphere: E <theta, t>^2 = |t|^2 / d
    big = S.sliced_wasserstein(x, x + t, p=2.0, key=jax.random.key(3), n_proj=20000)
    np.testing.assert_allclose(big, t @ t / 4, rtol=0.05)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_sw_matches_pot_with_same_projections(p):
    x, y, a, b = _clouds(3)
    th = _proj(4)
    ref = ot.sliced_wasserstein_distance(
        x, y, a, b, p=p, projections=th.T.astype(np.float64)
    )
    np.testing.assert_allclose(sw(x, y, a, b, p=p, projections=th), ref**p, rtol=1e-4)
    # uniform weights, equal sizes (sort fast path)
    x2, y2 = x[:9], y
    ref2 = ot.sliced_wasserstein_distance(
        x2, y2, p=p, projections=th.T.astype(np.float64)
    )
    np.testing.assert_allclose(sw(x2, y2, p=p, projections=th), ref2**p, rtol=1e-4)


def test_max_sw():
    x, _, _, _ = _clouds(5, d=3)
    t = np.array([1.0, -2.0, 0.5])
    th = _proj(6, 8)
    # no ascent: max over the candidates, as POT
    ref = ot.max_sliced_wasserstein_distance(
        x, x + t, p=2, projections=th.T.astype(np.float64)
    )
    m0 = S.max_sliced_wasserstein_distance(x, x + t, p=2.0, projections=th, n_steps=0)
    np.testing.assert_allclose(m0, ref, rtol=1e-4)
    # ascent reaches the translation's norm (the optimum, at theta = t / |t|)
    m = S.max_sliced_wasserstein(x, x + t, p=2.0, projections=th, n_steps=200)
    assert float(m) >= float(m0) ** 2 - 1e-6
    np.testing.assert_allclose(m, t @ t, rtol=1e-3)
    # envelope-theorem gradient: d/dt max_theta (theta.t)^2 = 2 t
    g = jax.grad(
        lambda s: S.max_sliced_wasserstein(x, x + s, p=2.0, projections=th, n_steps=200)
    )(jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(g, 2 * t, rtol=2e-2, atol=2e-2)


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1.0, 2.0])
def test_ssw_matches_pot_with_same_projections(p):
    x, y = _sphere(0, 10), _sphere(1, 8)
    r = np.random.default_rng(2)
    a, b = r.random(10) + 0.1, r.random(8) + 0.1
    a, b = a / a.sum(), b / b.sum()
    U = _planes(3).astype(np.float64)
    ref = ot.sliced_wasserstein_sphere(
        x, y, a, b, p=p, projections=U, n_projections=len(U)
    )
    np.testing.assert_allclose(
        ssw(x, y, a, b, p=p, projections=U) ** (1 / p), ref, rtol=1e-4
    )


def test_ssw_rotation_invariance():
    x, y = _sphere(4, 6), _sphere(5, 6)
    Q, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(3, 3)))
    U = _planes(7, 8)
    # rotate the slices with the points: identical per slice
    RU = np.einsum("ij,kjl->kil", Q, U)
    for p in (1.0, 2.0):
        np.testing.assert_allclose(
            ssw(x @ Q.T, y @ Q.T, p=p, projections=RU),
            ssw(x, y, p=p, projections=U),
            rtol=1e-4,
        )
    # in law: with many random slices the estimates agree
    big = {"p": 1.0, "key": jax.random.key(8), "n_proj": 2000}
    np.testing.assert_allclose(
        ssw(x @ Q.T, y @ Q.T, **big), ssw(x, y, **big), rtol=0.05
    )


def test_ssw_unif_closed_form():
    x = _sphere(9, 20)
    U = _planes(10).astype(np.float64)
    ref = ot.sliced_wasserstein_sphere_unif(x, projections=U, n_projections=len(U))
    np.testing.assert_allclose(ssw_unif(x, projections=U), ref**2, rtol=1e-4)


def _fd_check(f, h=1e-3, rtol=2e-2, atol=1e-3):
    vg = jax.jit(jax.value_and_grad(f))
    _, g = vg(0.0)
    fd = (vg(h)[0] - vg(-h)[0]) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=rtol, atol=atol)


def test_ssw_gradient_finite_differences():
    x, y = _sphere(12, 6), _sphere(13, 6)
    U = _planes(14, 8)
    r = np.random.default_rng(15)
    # tangent perturbation, renormalised: f(s) = SSW(normalise(x + s dx), y)
    dx = r.normal(size=x.shape)
    dx -= np.sum(dx * x, 1, keepdims=True) * x

    def f(s, p):
        z = x + s * dx
        return S.spherical_sliced_wasserstein(
            z / jnp.linalg.norm(z, axis=1, keepdims=True), y, p=p, projections=U
        )

    for p in (1.0, 2.0):
        _fd_check(partial(f, p=p))


def test_sw_gradient_finite_differences():
    x, y, a, b = _clouds(16)
    th = _proj(17)
    dx = np.random.default_rng(18).normal(size=x.shape)
    _fd_check(
        lambda s: S.sliced_wasserstein(x + s * dx, y, a, b, p=2.0, projections=th),
        rtol=1e-2,
        atol=1e-4,
    )


def test_jit_and_vmap_over_batches():
    xs = np.stack([_clouds(s, n=10, m=10)[0] for s in range(4)])
    ys = np.stack([_clouds(s, n=10, m=10)[1] for s in range(4)])
    th = _proj(19)
    batched = jax.jit(
        jax.vmap(lambda x, y: S.sliced_wasserstein(x, y, p=2.0, projections=th))
    )(xs, ys)
    loop = [sw(xs[i], ys[i], p=2.0, projections=th) for i in range(4)]
    np.testing.assert_allclose(batched, loop, rtol=1e-5)
    sx = np.stack([_sphere(s, 6) for s in range(3)])
    sy = np.stack([_sphere(10 + s, 6) for s in range(3)])
    U = _planes(20, 8)
    bs = jax.vmap(
        lambda x, y: S.spherical_sliced_wasserstein(x, y, p=2.0, projections=U)
    )(sx, sy)
    np.testing.assert_allclose(
        bs, [ssw(sx[i], sy[i], p=2.0, projections=U) for i in range(3)], rtol=1e-5
    )
    # random projections from a key under jit
    assert np.isfinite(
        float(
            jax.jit(lambda k: S.sliced_wasserstein(xs[0], ys[0], key=k, n_proj=8))(
                jax.random.key(0)
            )
        )
    )


# --------------------------------------------------------------------------------------------
def _gw_brute(u, v):
    du = (u[:, None] - u[None, :]) ** 2
    dv = (v[:, None] - v[None, :]) ** 2
    return np.mean((du - dv) ** 2)


def test_sgw_matches_brute_force_definition():
    r = np.random.default_rng(21)
    x, y = r.normal(size=(6, 2)), r.normal(size=(6, 3)) * 1.5
    th = _proj(22, 10, 3)
    xp = np.pad(x, ((0, 0), (0, 1))) @ th.T
    yp = y @ th.T
    per = []
    for k in range(th.shape[0]):
        u, v = np.sort(xp[:, k]), np.sort(yp[:, k])
        per.append(min(_gw_brute(u, v), _gw_brute(u, v[::-1])))
        # the sorted / anti-sorted matchings bound the exact 1-D assignment problem from above
        exact = min(_gw_brute(u, v[list(s)]) for s in itertools.permutations(range(6)))
        assert exact <= per[-1] + 1e-9
    np.testing.assert_allclose(sgw(x, y, projections=th), np.mean(per), rtol=1e-4)


def test_sgw_invariances():
    r = np.random.default_rng(23)
    x = r.normal(size=(8, 3))
    th = _proj(24, 16)
    # a reflected, translated copy: the anti-sorted matching is exact on every slice
    np.testing.assert_allclose(sgw(x, -x + 3.0, projections=th), 0.0, atol=1e-5)
    assert float(sgw(x, 2.0 * x, projections=th)) > 1e-2


# --------------------------------------------------------------------------------------------
def test_invalid_measures_raise():
    x, y, a, b = _clouds(25)
    th = _proj(26)
    with pytest.raises(ValueError, match="negative"):
        S.sliced_wasserstein(x, y, -a, b, projections=th)
    with pytest.raises(ValueError, match="zero"):
        S.sliced_wasserstein(x, y, a * 0, b, projections=th)
    with pytest.raises(ValueError, match="dimension mismatch"):
        S.sliced_wasserstein(x, y[:, :2], projections=th)
    with pytest.raises(ValueError, match="NaN"):
        S.sliced_wasserstein(np.where(x > 1, np.nan, x), y, projections=th)
    with pytest.raises(ValueError, match="empty"):
        S.sliced_wasserstein(x[:0], y, projections=th)
    with pytest.raises(ValueError, match="projections"):
        S.sliced_wasserstein(x, y, projections=th[:, :2])
    with pytest.raises(ValueError, match="key"):
        S.sliced_wasserstein(x, y)
    with pytest.raises(ValueError, match="weights of shape"):
        S.sliced_wasserstein(x, y, a[:3], b, projections=th)
    with pytest.raises(ValueError, match="sphere"):
        S.spherical_sliced_wasserstein(x, _sphere(0, 5), projections=_planes(0))
    with pytest.raises(ValueError, match="sphere"):
        S.spherical_sliced_wasserstein_unif(2 * _sphere(0, 5), projections=_planes(0))
    with pytest.raises(ValueError, match="equal sizes"):
        S.sliced_gromov_wasserstein(x, y, projections=th)


def test_root_by_name():
    x, y = _sphere(27, 6), _sphere(28, 6)
    th, U = _proj(29), _planes(30, 8)
    np.testing.assert_allclose(
        S.sliced_wasserstein_distance(x, y, p=2.0, projections=th),
        sw(x, y, p=2.0, projections=th) ** 0.5,
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        S.spherical_sliced_wasserstein_distance(x, y, p=1.0, projections=U),
        ssw(x, y, p=1.0, projections=U),
        rtol=1e-6,
    )


def test_jit_with_a_closed_over_concrete_cloud():
    """Validation must not break when a concrete cloud is closed over inside jit."""
    import jax
    import jax.numpy as jnp

    from dynajax.transport import sliced as S

    key = jax.random.key(3)
    y = jax.random.normal(key, (16, 3))
    y = y / jnp.linalg.norm(y, axis=-1, keepdims=True)
    f = jax.jit(lambda x: S.spherical_sliced_wasserstein(x, y, key=key, n_proj=8))
    g = jax.jit(lambda x: S.sliced_wasserstein(x, y, key=key, n_proj=8))
    assert float(f(y)) < 1e-6 and float(g(y)) < 1e-6
