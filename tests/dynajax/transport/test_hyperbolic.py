"""Hyperbolic geometry and hyperbolic sliced-Wasserstein: closed forms, the isometry between
the models, exact OT in dimension one, POT, finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from dynajax.transport import hyperbolic as H
from dynajax.transport import hyperbolic_sliced as HS
from dynajax.transport.sliced import random_directions, sliced_wasserstein


def _ball(seed, n, d=2, scale=0.6, shift=0.0):
    z = np.random.default_rng(seed).normal(size=(n, d)) * scale + shift
    return z / (1.0 + np.linalg.norm(z, axis=1, keepdims=True))  # inside the unit ball


def _dirs(seed, k=16, d=2):
    th = np.random.default_rng(seed).normal(size=(k, d))
    return th / np.linalg.norm(th, axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------------------------
def test_isometry_and_distances_match_the_arccosh_forms(x64):
    z, w = _ball(0, 20, 3), _ball(1, 15, 3)
    zl, wl = H.poincare_to_lorentz(z), H.poincare_to_lorentz(w)
    np.testing.assert_allclose(H.minkowski_inner(zl, zl), -1.0, rtol=1e-12)
    np.testing.assert_allclose(H.lorentz_to_poincare(zl), z, atol=1e-14)
    dl = H.hyperbolic_pairwise_distance(zl, wl)
    dp = H.hyperbolic_pairwise_distance(z, w, model="poincare")
    ref = np.arccosh(-np.asarray(H.minkowski_inner(zl[:, None], wl[None])))
    num = 2 * ((z[:, None] - w[None]) ** 2).sum(-1)
    den = (1 - (z**2).sum(-1))[:, None] * (1 - (w**2).sum(-1))[None]
    np.testing.assert_allclose(dl, ref, rtol=1e-10)
    np.testing.assert_allclose(dp, np.arccosh(1 + num / den), rtol=1e-10)


def test_exp_log_inverse_and_models_agree(x64):
    x, y = _ball(2, 10, 3), _ball(3, 10, 3, shift=0.4)
    xl, yl = H.poincare_to_lorentz(x), H.poincare_to_lorentz(y)
    # log then exp is the identity; |log_x y| is the distance (both models)
    np.testing.assert_allclose(H.lorentz_exp(xl, H.lorentz_log(xl, yl)), yl, atol=1e-10)
    np.testing.assert_allclose(H.poincare_exp(x, H.poincare_log(x, y)), y, atol=1e-12)
    v = H.lorentz_log(xl, yl)
    np.testing.assert_allclose(H.minkowski_inner(xl, v), 0.0, atol=1e-10)  # tangent
    np.testing.assert_allclose(np.sqrt(H.minkowski_inner(v, v)), H.lorentz_distance(xl, yl), rtol=1e-10)
    # Poincare exp == Lorentz exp through the isometry (tangents pushed by its differential)
    u = H.poincare_log(x, y) * 0.7
    _, ul = jax.jvp(H.poincare_to_lorentz, (x,), (u,))
    np.testing.assert_allclose(
        H.lorentz_to_poincare(H.lorentz_exp(xl, ul)), H.poincare_exp(x, u), atol=1e-11
    )
    # parallel transport keeps vectors tangent and preserves their norm
    t = H.lorentz_transport(xl, yl, v)
    np.testing.assert_allclose(H.minkowski_inner(yl, t), 0.0, atol=1e-10)
    np.testing.assert_allclose(H.minkowski_inner(t, t), H.minkowski_inner(v, v), rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lorentz", "poincare"])
def test_riemannian_step_moves_along_the_geodesic(model, x64):
    # f(x) = d(x, y)^2 / 2 has Riemannian gradient -log_x(y): a step of size lr lands on the
    # geodesic from x to y, at distance (1 - lr) d(x, y) from y.
    x, y = _ball(4, 6, 2), _ball(5, 6, 2, shift=0.3)
    if model == "lorentz":
        x, y = H.poincare_to_lorentz(x), H.poincare_to_lorentz(y)
    dist = H.lorentz_distance if model == "lorentz" else H.poincare_distance
    g = jax.grad(lambda u: 0.5 * jnp.sum(dist(u, y) ** 2))(x)
    x1 = H.riemannian_gradient_step(x, g, 0.3, model=model)
    d0 = dist(x, y)
    np.testing.assert_allclose(dist(x1, y), 0.7 * d0, rtol=1e-8)
    np.testing.assert_allclose(dist(x, x1), 0.3 * d0, rtol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("mu", [[0.0, 0.0], [0.5, -0.3]])
def test_wrapped_normal_density_integrates_to_one_and_matches_samples(mu, x64):
    # quadrature of the density against the Riemannian volume lambda^2 dx dy on the disk,
    # and the mean distance to the origin: quadrature vs the sampler
    mu = np.asarray(mu)
    cov = np.array([[0.3, 0.1], [0.1, 0.2]])
    r = (np.arange(300) + 0.5) / 300 * (1 - 1e-9)
    phi = (np.arange(128) + 0.5) / 128 * 2 * np.pi
    R, P = np.meshgrid(r, phi, indexing="ij")
    pts = np.stack([R * np.cos(P), R * np.sin(P)], -1).reshape(-1, 2)
    dens = np.exp(H.wrapped_normal_log_density(pts, mu, cov, model="poincare"))
    vol = (2 / (1 - (pts**2).sum(-1))) ** 2 * R.reshape(-1) * (r[1] - r[0]) * (phi[1] - phi[0])
    np.testing.assert_allclose(np.sum(dens * vol), 1.0, atol=2e-3)
    dist0 = np.asarray(H.poincare_distance(pts, np.zeros(2)))
    mean_q = np.sum(dens * vol * dist0)
    s = H.wrapped_normal_sample(mu, cov, 20000, key=jax.random.key(0), model="poincare")
    mean_s = float(jnp.mean(H.poincare_distance(s, jnp.zeros(2))))
    assert abs(mean_s - mean_q) < 0.02  # 3 standard errors, (mean_s, mean_q)
    # the two models draw the same points
    sl = H.wrapped_normal_sample(H.poincare_to_lorentz(mu), cov, 50, key=jax.random.key(1))
    sp = H.wrapped_normal_sample(mu, cov, 50, key=jax.random.key(1), model="poincare")
    np.testing.assert_allclose(H.lorentz_to_poincare(sl), sp, atol=1e-10)


def test_hyperbolic_wasserstein_is_pot_emd2_with_the_geodesic_cost(x64):
    x, y = _ball(6, 30), _ball(7, 25, shift=0.3)
    a = np.random.default_rng(0).random(30) + 0.1
    a /= a.sum()
    C = np.asarray(H.hyperbolic_pairwise_distance(x, y, model="poincare"))
    ref = ot.emd2(a, np.full(25, 1 / 25), C**2)
    got = H.hyperbolic_wasserstein(H.poincare_to_lorentz(x), H.poincare_to_lorentz(y), a)
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_geometry_validation():
    with pytest.raises(ValueError, match="open unit ball"):
        H.hyperbolic_pairwise_distance(np.array([[1.0, 0.0]]), np.zeros((1, 2)), model="poincare")
    with pytest.raises(ValueError, match="hyperboloid"):
        H.hyperbolic_pairwise_distance(np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="unknown model"):
        H.hyperbolic_pairwise_distance(np.zeros((1, 2)), np.zeros((1, 2)), model="klein")
    with pytest.raises(ValueError, match="positive definite"):
        H.wrapped_normal_sample(np.zeros(2), -np.eye(2), 3, key=jax.random.key(0), model="poincare")


# --------------------------------------------------------------------------------------------
# hyperbolic sliced-Wasserstein
# --------------------------------------------------------------------------------------------
KINDS = ["geodesic", "horospherical"]


@pytest.mark.parametrize("kind", KINDS)
def test_projections_are_exact_on_the_slicing_geodesic(kind, x64):
    th = _dirs(0, 3, 3)
    t = np.linspace(-12, 12, 25)
    gl = np.concatenate([np.cosh(t)[:, None], np.sinh(t)[:, None] * th[0]], 1)
    np.testing.assert_allclose(HS.hyperbolic_projection(gl, th[:1], projection=kind)[0], t, atol=1e-9)
    t = np.linspace(-6, 6, 25)  # the ball's float64 resolution at tanh(t / 2) near 1
    gp = np.tanh(t / 2)[:, None] * th[0]
    np.testing.assert_allclose(
        HS.hyperbolic_projection(gp, th[:1], projection=kind, model="poincare")[0], t, atol=1e-9
    )


@pytest.mark.parametrize("kind", ["geodesic", pytest.param("horospherical", marks=pytest.mark.slow)])
def test_hsw_lorentz_equals_poincare_and_vanishes_on_identical_clouds(kind):
    for p in (1.0, 2.0, 3.0):
        _lorentz_equals_poincare(kind, p)


def _lorentz_equals_poincare(kind, p):
    x, y, th = _ball(8, 40, 3), _ball(9, 30, 3, shift=0.5), _dirs(1, 20, 3)
    b = np.random.default_rng(2).random(30) + 0.1
    xl, yl = H.poincare_to_lorentz(x), H.poincare_to_lorentz(y)
    kw = dict(p=p, projection=kind, projections=th)
    vp = HS.hyperbolic_sliced_wasserstein(x, y, None, b, model="poincare", **kw)
    vl = HS.hyperbolic_sliced_wasserstein(xl, yl, None, b, **kw)
    np.testing.assert_allclose(vp, vl, rtol=1e-5)
    assert vp > 0.01
    assert float(HS.hyperbolic_sliced_wasserstein(x, x, model="poincare", **kw)) == 0.0
    np.testing.assert_allclose(
        HS.hyperbolic_sliced_wasserstein_distance(xl, yl, None, b, **kw), vl ** (1 / p), rtol=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_hsw_near_the_origin_is_euclidean_sw_of_the_tangent_coordinates(kind):
    # at scale eps the space is flat to O(eps^2): HSW(x, y) ~ SW(log_o x, log_o y) = SW(2x, 2y)
    x, y, th = _ball(10, 50, 2, 1e-2), _ball(11, 40, 2, 1e-2, shift=5e-3), _dirs(2, 30)
    hsw = HS.hyperbolic_sliced_wasserstein(x, y, model="poincare", projection=kind, projections=th)
    sw = sliced_wasserstein(2 * x, 2 * y, projections=th)
    np.testing.assert_allclose(hsw, sw, rtol=2e-2)


@pytest.mark.slow
def test_ghsw_in_dimension_one_is_the_exact_hyperbolic_wasserstein(x64):
    # H^1 is a line and the geodesic coordinate is arc length: both slices (v = +-1) are exact
    x, y = _ball(12, 17, 1, 2.0), _ball(13, 11, 1, 2.0, shift=1.0)
    a = np.random.default_rng(3).random(17) + 0.1
    a /= a.sum()
    for kind in KINDS:
        got = HS.hyperbolic_sliced_wasserstein(
            x, y, a, p=1.5, model="poincare", projection=kind, projections=np.array([[1.0], [-1.0]])
        )
        ref = H.hyperbolic_wasserstein(x, y, a, p=1.5, model="poincare")
        np.testing.assert_allclose(got, ref, rtol=1e-9)


@pytest.mark.slow
def test_weights_are_repeated_points_and_keys_draw_random_directions():
    x, y = _ball(14, 6, 2), _ball(15, 5, 2, shift=0.4)
    a = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 2.0])
    xr = np.repeat(x, a.astype(int), axis=0)
    th = _dirs(3, 12)
    for kind in ["horospherical"]:  # the weights act on the 1-D costs, the same for both kinds
        kw = dict(projection=kind, model="poincare", p=2.0)
        np.testing.assert_allclose(
            HS.hyperbolic_sliced_wasserstein(x, y, a, projections=th, **kw),
            HS.hyperbolic_sliced_wasserstein(xr, y, projections=th, **kw), rtol=1e-5,
        )
        key = jax.random.key(4)
        np.testing.assert_allclose(
            HS.hyperbolic_sliced_wasserstein(x, y, key=key, n_proj=7, **kw),
            HS.hyperbolic_sliced_wasserstein(x, y, projections=random_directions(7, 2, key=key), **kw),
            rtol=1e-6,
        )


@pytest.mark.parametrize(
    "kind,model",
    [("geodesic", "poincare"), pytest.param("horospherical", "lorentz", marks=pytest.mark.slow),
     pytest.param("geodesic", "lorentz", marks=pytest.mark.slow),
     pytest.param("horospherical", "poincare", marks=pytest.mark.slow)],
)
def test_hsw_gradient_matches_finite_differences_and_is_finite_at_coinciding_points(kind, model, x64):
    x, y, th = _ball(16, 8, 2), _ball(17, 8, 2, shift=0.3), _dirs(4, 10)
    if model == "lorentz":
        x, y = H.poincare_to_lorentz(x), H.poincare_to_lorentz(y)
    kw = dict(projection=kind, model=model, projections=th)
    # Poincare: free coordinates; Lorentz: the x_{1:} coordinates, x_0 lifted
    lift = (lambda u: u) if model == "poincare" else H.project_lorentz
    f = jax.jit(lambda u: HS.hyperbolic_sliced_wasserstein(lift(u), y, **kw))
    g = jax.grad(f)(x)
    rng = np.random.default_rng(5)
    for _ in range(3):
        dx = rng.normal(size=x.shape)
        if model == "lorentz":
            dx[:, 0] = 0.0
        h = 1e-6
        fd = (f(x + h * dx) - f(x - h * dx)) / (2 * h)
        np.testing.assert_allclose(np.sum(g * dx), fd, rtol=1e-5)
    g0 = jax.grad(lambda u: HS.hyperbolic_sliced_wasserstein_distance(u, x, **kw))(x)
    assert np.all(np.isfinite(g0)) and np.all(g0 == 0.0)
    g1 = jax.grad(lambda u: HS.hyperbolic_sliced_wasserstein(u, x, **kw))(x)
    assert np.all(np.isfinite(g1))


def test_hsw_validation_and_jit_vmap():
    x, y = _ball(18, 5), _ball(19, 5)
    with pytest.raises(ValueError, match="unknown projection"):
        HS.hyperbolic_sliced_wasserstein(x, y, model="poincare", projection="radial", key=jax.random.key(0))
    with pytest.raises(ValueError, match="p must be"):
        HS.hyperbolic_sliced_wasserstein(x, y, model="poincare", p=0.5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="projections must have shape"):
        HS.hyperbolic_sliced_wasserstein(x, y, model="poincare", projections=np.ones((4, 3)))
    with pytest.raises(ValueError, match="pass either projections"):
        HS.hyperbolic_sliced_wasserstein(x, y, model="poincare")
    with pytest.raises(ValueError, match="weights a must be non-negative"):
        HS.hyperbolic_sliced_wasserstein(x, y, -np.ones(5), model="poincare", key=jax.random.key(0))
    th = _dirs(5, 8)
    batch = np.stack([x, y, 0.5 * x])
    f = jax.jit(jax.vmap(lambda u: HS.hyperbolic_sliced_wasserstein(u, y, model="poincare", projections=th)))
    np.testing.assert_allclose(
        f(batch)[0], HS.hyperbolic_sliced_wasserstein(x, y, model="poincare", projections=th), rtol=1e-6
    )
