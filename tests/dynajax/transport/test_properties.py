"""Property tests of the transport API: invariants on random inputs, clear refusals of bad ones.

Every distance is checked to be finite, symmetric, non-negative and zero on identical inputs,
with finite gradients where the clouds coincide (and, for the spherical distance, at a point
orthogonal to a slicing plane). Bad inputs (NaN/inf, empty, wrong rank or dimension, negative
weights, ``p < 1``, ``n_proj < 1``, ``epsilon <= 0``, indefinite covariances) must raise a
``ValueError``/``TypeError`` that names the argument, eagerly; under ``jit`` the checks of
traced values raise at run time with the same text. Example counts come from the hypothesis
profile in ``tests/conftest.py``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dynajax.transport import (
    energy_distance,
    exact_w2,
    gaussian_monge_map,
    gaussian_w2,
    max_sliced_wasserstein,
    max_sliced_wasserstein_distance,
    mmd2,
    sinkhorn,
    sinkhorn_divergence,
    sliced_wasserstein,
    sliced_wasserstein_distance,
    spherical_sliced_wasserstein,
    spherical_sliced_wasserstein_distance,
    wasserstein1_circle,
    wasserstein_1d,
    wasserstein_circle,
)
from dynajax.transport.diagnostics import inverse_error, kinetic_energy, monge_map_distance
from dynajax.transport.sliced import random_directions, random_stiefel

KEY = jax.random.PRNGKey(0)
# Compilation, not the properties, is what costs here (about a second per function and
# shape on 2 cores), so the drawn inputs vary in value, not in shape: clouds of N points in
# R^D, and unequal sizes N and M only where that takes another code path.
N, M, D = 4, 3, 2
COORD = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def clouds(draw, n=N, m=N, d=D):
    """Two clouds ``x [n, d]``, ``y [m, d]`` (float32), degenerate now and then."""
    x = draw(hnp.arrays(np.float32, (n, d), elements=COORD))
    y = draw(hnp.arrays(np.float32, (m, d), elements=COORD))
    kind = draw(st.sampled_from(["random", "one repeated point", "y shifted x"]))
    if kind == "one repeated point":
        x = np.repeat(x[:1], n, axis=0)
    elif kind == "y shifted x" and n == m:
        y = x + y[:1]
    return x, y


@st.composite
def weights(draw, n):
    w = draw(hnp.arrays(np.float64, (n,), elements=st.floats(0.0, 1.0)))
    assume(w.sum() > 1e-3)
    return (w / w.sum()).astype(np.float32)


def _projections(d, k=4):
    return random_directions(k, d, key=jax.random.PRNGKey(d))


def _scale(x, y):
    return 1.0 + float(np.max(np.abs(x))) ** 2 + float(np.max(np.abs(y))) ** 2


def _finite(tree):
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(tree))


# ------------------------------------------------------------------------------------- invariants
EUCLIDEAN = {
    "sliced_wasserstein": lambda x, y: sliced_wasserstein(x, y, projections=_projections(x.shape[1])),
    "sliced_wasserstein_distance": lambda x, y: sliced_wasserstein_distance(
        x, y, p=1.5, projections=_projections(x.shape[1])
    ),
    "max_sliced_wasserstein_distance": lambda x, y: max_sliced_wasserstein_distance(
        x, y, projections=_projections(x.shape[1]), n_steps=3
    ),
    "energy_distance": energy_distance,
    "mmd2": lambda x, y: mmd2(x, y, bandwidths=[0.5, 2.0]),
    "exact_w2": exact_w2,
}


# gradients in x, compiled once (a closure over each drawn cloud would compile every time)
_GRADS = {name: jax.jit(jax.grad(fn)) for name, fn in EUCLIDEAN.items()}


@pytest.mark.parametrize("name", sorted(EUCLIDEAN))
@given(xy=clouds(), y_small=hnp.arrays(np.float32, (M, D), elements=COORD))
def test_distances_are_symmetric_non_negative_and_zero_on_identical_clouds(name, xy, y_small):
    x, y = xy
    dist = EUCLIDEAN[name]
    pairs = ((x, y), (y, x), (x, x), (x, y_small))
    if name == "max_sliced_wasserstein_distance":  # its ascent is long to compile: one shape
        pairs = pairs[:3] + ((x, x[::-1]),)
    dxy, dyx, dxx, d_unequal = (float(dist(a, b)) for a, b in pairs)
    tol = 1e-5 * _scale(x, y)
    assert all(math.isfinite(v) for v in (dxy, dyx, dxx, d_unequal))
    assert dxy >= -tol and d_unequal >= -tol
    assert abs(dxy - dyx) <= tol + 1e-4 * abs(dxy)
    assert abs(dxx) <= tol


@pytest.mark.parametrize(
    "name", ["sliced_wasserstein_distance", "max_sliced_wasserstein_distance", "energy_distance", "mmd2", "exact_w2"]
)
@given(xy=clouds())
def test_gradients_are_finite_where_the_clouds_coincide(name, xy):
    x, _ = xy
    g = _GRADS[name](x, x)
    assert _finite(g)
    if name.endswith("_distance"):  # the rooted forms: subgradient 0 at a zero distance
        np.testing.assert_array_equal(np.asarray(g), 0.0)


@given(xy=clouds(d=1), data=st.data(), p=st.sampled_from([1.0, 1.5, 2.0, 3.0]))
def test_weighted_one_d_costs(xy, data, p):
    x, y = xy
    u, v = x[:, 0], y[:, 0]
    a, b = data.draw(weights(N)), data.draw(weights(N))
    for fn, kw in ((wasserstein_1d, {"p": p}), (wasserstein_circle, {"p": p}), (wasserstein1_circle, {})):
        uu, vv = (u % 1, v % 1) if fn is not wasserstein_1d else (u, v)
        cxy = float(fn(uu, vv, a, b, **kw))
        cyx = float(fn(vv, uu, b, a, **kw))
        cxx = float(fn(uu, uu, a, a, **kw))
        tol = 1e-5 * _scale(x, y) ** (p / 2)
        assert math.isfinite(cxy) and cxy >= -tol, fn.__name__
        assert abs(cxy - cyx) <= tol + 1e-4 * abs(cxy), fn.__name__
        assert abs(cxx) <= tol, fn.__name__


@st.composite
def sphere_clouds(draw):
    x, y = draw(clouds(d=3))
    x = x + np.float32(0.5)  # no zero vectors
    y = y - np.float32(0.5)
    assume(np.all(np.linalg.norm(x, axis=1) > 0.1) and np.all(np.linalg.norm(y, axis=1) > 0.1))
    unit = lambda z: (z / np.linalg.norm(z.astype(np.float64), axis=1, keepdims=True)).astype(np.float32)
    return unit(x), unit(y)


_SSW_GRAD, _SSW_DISTANCE_GRAD = (
    jax.jit(jax.grad(lambda x, y, planes, p: fn(x, y, p=p, projections=planes)), static_argnums=3)
    for fn in (spherical_sliced_wasserstein, spherical_sliced_wasserstein_distance)
)


@pytest.mark.parametrize("p", [1.0, 2.0])
@given(xy=sphere_clouds())
def test_spherical_sliced_invariants_and_gradients(p, xy):
    x, y = xy
    planes = random_stiefel(3, x.shape[1], key=jax.random.PRNGKey(x.shape[1]))
    ssw = lambda a, b: spherical_sliced_wasserstein(a, b, p=p, projections=planes)
    dxy, dyx, dxx = (float(ssw(a, b)) for a, b in ((x, y), (y, x), (x, x)))
    assert all(math.isfinite(v) for v in (dxy, dyx, dxx))
    assert dxy >= -1e-6 and abs(dxy - dyx) <= 1e-5 and abs(dxx) <= 1e-6
    g = _SSW_DISTANCE_GRAD(x, x, planes, p)
    np.testing.assert_array_equal(np.asarray(g), 0.0)
    # a point orthogonal to the first slicing plane: its projection is undefined
    if x.shape[1] >= 3:
        u = np.asarray(planes[0], np.float64)
        z = x[0].astype(np.float64) - u @ (u.T @ x[0])
        assume(np.linalg.norm(z) > 1e-3)
        x = x.copy()
        x[0] = (z / np.linalg.norm(z)).astype(np.float32)
        assert _finite(_SSW_GRAD(x, y, planes, p))
        assert _finite(_SSW_DISTANCE_GRAD(x, y, planes, p))


def test_the_documented_subgradients_at_degenerate_points():
    x = np.asarray(jax.random.normal(KEY, (N, D)))
    for name in ("sliced_wasserstein_distance", "max_sliced_wasserstein_distance"):
        np.testing.assert_array_equal(np.asarray(_GRADS[name](x, x)), 0.0)
    # e3 is orthogonal to the plane (e1, e2): it contributes a zero gradient through it
    planes = jnp.tile(jnp.eye(3)[None, :, :2], (3, 1, 1))
    s = np.eye(3, dtype=np.float32)[[0, 1, 0, 1]]
    pts = np.eye(3, dtype=np.float32)[[2, 0, 1, 1]]
    for grad in (_SSW_GRAD, _SSW_DISTANCE_GRAD):
        g = grad(pts, s, planes, 2.0)
        assert _finite(g)
        np.testing.assert_array_equal(np.asarray(g[0]), 0.0)
    np.testing.assert_array_equal(np.asarray(_SSW_DISTANCE_GRAD(pts, pts, planes, 2.0)), 0.0)


# ------------------------------------------------------------------------------------- Gaussians
@st.composite
def gaussians(draw, rank_deficient=False):
    d = 3  # one shape: one compilation (see N, M, D above)
    r = draw(st.integers(0, d - 1)) if rank_deficient else d
    elems = st.floats(-2.0, 2.0, allow_nan=False, width=32)
    covs = []
    for _ in range(2):
        a = draw(hnp.arrays(np.float64, (d, r), elements=elems))
        s = a @ a.T + (0.0 if rank_deficient else 0.1) * np.eye(d)
        covs.append(s.astype(np.float32))
    m1, m2 = (draw(hnp.arrays(np.float32, (d,), elements=elems)) for _ in range(2))
    return m1, covs[0], m2, covs[1]


_W2_GRAD = jax.jit(jax.grad(gaussian_w2, argnums=(0, 1, 2, 3)))
_MAP_GRAD = jax.jit(jax.grad(lambda *g: jnp.sum(gaussian_monge_map(*g).matrix), argnums=(1, 3)))


@given(g=gaussians())
def test_gaussian_w2_and_monge_map(g):
    m1, s1, m2, s2 = g
    w12, w21, w11 = float(gaussian_w2(m1, s1, m2, s2)), float(gaussian_w2(m2, s2, m1, s1)), float(gaussian_w2(m1, s1, m1, s1))
    scale = 1.0 + float(np.trace(s1) + np.trace(s2))
    assert w12 >= 0 and abs(w12 - w21) <= 1e-4 * scale and abs(w11) <= 1e-4 * scale
    t = gaussian_monge_map(m1, s1, m2, s2)
    a = np.asarray(t.matrix, np.float64)
    np.testing.assert_allclose(a, a.T, atol=1e-5)
    assert np.linalg.eigvalsh(a)[0] >= -1e-4 * np.abs(a).max()
    np.testing.assert_allclose(a @ s1 @ a, s2, atol=2e-3 * scale)  # T pushes N(m1, S1) to N(m2, S2)
    np.testing.assert_allclose(np.asarray(t(m1)), m2, atol=1e-4 * scale)
    assert _finite(_W2_GRAD(m1, s1, m2, s2))


@given(g=gaussians(rank_deficient=True))
def test_singular_covariances(g):
    m1, s1, m2, s2 = g
    # W2 accepts positive semi-definite covariances, with finite values and gradients
    w = float(gaussian_w2(m1, s1, m2, s2))
    scale = 1.0 + float(np.trace(s1) + np.trace(s2))
    assert math.isfinite(w) and w >= 0
    assert abs(float(gaussian_w2(m1, s1, m1, s1))) <= 1e-4 * scale
    assert _finite(_W2_GRAD(m1, s1, m2, s2))
    # the Monge map needs a non-degenerate source, and takes a degenerate target
    with pytest.raises(ValueError, match="covariance s1 must be positive definite"):
        gaussian_monge_map(m1, s1, m2, s2)
    s_pd = s1 + np.eye(len(m1), dtype=np.float32)
    t = gaussian_monge_map(m1, s_pd, m2, s2)
    assert _finite(t) and _finite(_MAP_GRAD(m1, s_pd, m2, s2))


def test_gaussian_w2_refuses_indefinite_and_asymmetric_covariances():
    m = jnp.zeros(2)
    with pytest.raises(ValueError, match="covariance s1 must be positive semi-definite"):
        gaussian_w2(m, -jnp.eye(2), m, jnp.eye(2))  # used to return -6.0
    with pytest.raises(ValueError, match="covariance s2 must be symmetric"):
        gaussian_w2(m, jnp.eye(2), m, jnp.array([[1.0, 0.5], [0.0, 1.0]]))
    # under jit: test_traced_bad_values_raise_the_same_message


# ------------------------------------------------------------------------------------- Sinkhorn
X4 = np.asarray(jax.random.normal(KEY, (N, D)))


@given(
    shift=st.floats(-3.0, 3.0, width=32),
    epsilon=st.floats(0.05, 5.0),
    max_iterations=st.just(7),  # each cap is one compilation; 7 is not a multiple of ott's 10
)
def test_sinkhorn_honours_max_iterations(shift, epsilon, max_iterations):
    y = X4 + np.float32(shift)
    out = sinkhorn(X4, y, epsilon=epsilon, max_iterations=max_iterations)
    assert int(out.n_iters) <= max_iterations
    assert _finite(out.cost) and _finite(out.plan)
    np.testing.assert_allclose(np.asarray(out.plan).sum(), 1.0, rtol=1e-4)


# ------------------------------------------------------------------------------------- refusals
def _nan_cloud(x):
    x = np.array(x, np.float32)
    x.flat[0] = np.nan
    return x


def _inf_cloud(x):
    x = np.array(x, np.float32)
    x.flat[-1] = -np.inf
    return x


X = np.asarray(jax.random.normal(KEY, (N, D)), np.float32)
Y = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (M, D)), np.float32)
S = X / np.linalg.norm(X, axis=1, keepdims=True)
BAD_P = st.one_of(st.floats(-5.0, 0.999), st.just(float("nan")), st.just(float("inf")))
BAD_COUNT = st.one_of(st.integers(-5, 0), st.floats(0.5, 3.5), st.just("3"), st.just(True))
BAD_POSITIVE = st.one_of(st.floats(-5.0, 0.0), st.just(float("nan")), st.just(float("inf")))
BAD_POINTS = st.sampled_from(
    [_nan_cloud(X), _inf_cloud(X), np.zeros((0, 2), np.float32), np.zeros((5, 0), np.float32), X[0], X[None], X[:, :1], "x"]
)
BAD_WEIGHTS = st.sampled_from(
    [-np.ones(N) / N, np.zeros(N), np.full(N, np.nan), np.ones(N - 1) / (N - 1), np.ones((N, 1)) / N, "a"]
)

# (argument name, strategy of bad values, call with that value)
CASES = {
    "sw_x": ("x", BAD_POINTS, lambda v: sliced_wasserstein(v, Y, key=KEY)),
    "sw_y": ("y", BAD_POINTS, lambda v: sliced_wasserstein(X, v, key=KEY)),
    "sw_p": ("p", BAD_P, lambda v: sliced_wasserstein(X, Y, p=v, key=KEY)),
    "sw_n_proj": ("n_proj", BAD_COUNT, lambda v: sliced_wasserstein(X, Y, key=KEY, n_proj=v)),
    "sw_a": ("weights a", BAD_WEIGHTS, lambda v: sliced_wasserstein(X, Y, a=v, key=KEY)),
    "swd_p": ("p", BAD_P, lambda v: sliced_wasserstein_distance(X, Y, p=v, key=KEY)),
    "msw_p": ("p", BAD_P, lambda v: max_sliced_wasserstein(X, Y, p=v, key=KEY)),
    "msw_n_steps": ("n_steps", st.one_of(st.integers(-5, -1), st.floats(0.5, 2.5)), lambda v: max_sliced_wasserstein(X, Y, key=KEY, n_steps=v)),
    "msw_step_size": ("step_size", BAD_POSITIVE, lambda v: max_sliced_wasserstein(X, Y, key=KEY, step_size=v)),
    "ssw_p": ("p", BAD_P, lambda v: spherical_sliced_wasserstein(S, S, p=v, key=KEY)),
    "ssw_n_iter": ("n_iter", BAD_COUNT, lambda v: spherical_sliced_wasserstein(S, S[:M], key=KEY, n_iter=v)),
    "ssw_x": ("x", BAD_POINTS, lambda v: spherical_sliced_wasserstein(v, S, key=KEY)),
    "random_directions": ("n_proj", BAD_COUNT, lambda v: random_directions(v, 3, key=KEY)),
    "w1d_p": ("p", BAD_P, lambda v: wasserstein_1d(X[:, 0], Y[:, 0], p=v)),
    "w1d_u_weights": ("u_weights", BAD_WEIGHTS, lambda v: wasserstein_1d(X[:, 0], Y[:, 0], v)),
    "wcircle_n_iter": ("n_iter", BAD_COUNT, lambda v: wasserstein_circle(X[:, 0] % 1, Y[:, 0] % 1, n_iter=v)),
    "sinkhorn_epsilon": ("epsilon", BAD_POSITIVE, lambda v: sinkhorn(X, Y, epsilon=v)),
    "sinkhorn_max_iterations": ("max_iterations", BAD_COUNT, lambda v: sinkhorn(X, Y, max_iterations=v)),
    "sinkhorn_threshold": ("threshold", st.one_of(st.floats(-5.0, -1e-6), st.just(float("nan"))), lambda v: sinkhorn(X, Y, threshold=v)),
    "sdiv_epsilon": ("epsilon", BAD_POSITIVE, lambda v: sinkhorn_divergence(X, Y, epsilon=v)),
    "sinkhorn_a": ("weights a", BAD_WEIGHTS, lambda v: sinkhorn(X, Y, a=v)),
    "exact_w2_y": ("y", BAD_POINTS, lambda v: exact_w2(X, v)),
    "energy_x": ("x", BAD_POINTS, lambda v: energy_distance(v, Y)),
    "mmd2_bandwidths": ("bandwidths", BAD_POSITIVE, lambda v: mmd2(X, Y, bandwidths=v)),
    "kinetic_energy_dt": ("dt", BAD_POSITIVE, lambda v: kinetic_energy(residuals=X[None], dt=v)),
    "inverse_error_n_blocks": ("n_blocks", BAD_COUNT, lambda v: inverse_error(lambda k, z: z, X, n_blocks=v)),
    "monge_map_distance": ("tx", BAD_POINTS, lambda v: monge_map_distance(v, X)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@given(data=st.data())
def test_bad_inputs_are_refused_naming_the_argument(case, data):
    name, values, call = CASES[case]
    value = data.draw(values)
    with pytest.raises((ValueError, TypeError)) as err:
        call(value)
    assert name in str(err.value)


COVS = {
    "negative definite": -np.eye(2, dtype=np.float32),
    "indefinite": np.diag([1.0, -0.5]).astype(np.float32),
    "asymmetric": np.array([[1.0, 0.9], [0.0, 1.0]], np.float32),
    "nan": np.full((2, 2), np.nan, np.float32),
    "wrong shape": np.eye(3, dtype=np.float32),
}


@pytest.mark.parametrize("kind", sorted(COVS))
@pytest.mark.parametrize("which", ["s1", "s2"])
@pytest.mark.parametrize("fn", [gaussian_w2, gaussian_monge_map])
def test_bad_covariances_are_refused(kind, which, fn):
    m, good = np.zeros(2, np.float32), np.eye(2, dtype=np.float32)
    args = (m, COVS[kind], m, good) if which == "s1" else (m, good, m, COVS[kind])
    with pytest.raises(ValueError, match=f"covariance {which}"):
        fn(*args)


TRACED = {
    "epsilon must be positive": (jax.vmap, lambda v: sinkhorn(X, Y, epsilon=v).cost),
    "p must be a finite number >= 1": (jax.vmap, lambda v: sliced_wasserstein(X, Y, p=v, key=KEY)),
    "bandwidths must be positive": (jax.jit, lambda v: mmd2(X, Y, bandwidths=v)),
    "weights a must be non-negative": (jax.jit, lambda v: energy_distance(X, Y, a=jnp.full(N, 1.0 / N).at[0].set(v))),
    "covariance s2 must be positive semi-definite": (
        jax.jit, lambda v: gaussian_w2(jnp.zeros(2), jnp.eye(2), jnp.zeros(2), v * jnp.eye(2))
    ),
}


@pytest.mark.parametrize("message", sorted(TRACED))
def test_traced_bad_values_raise_the_same_message(message):
    # equinox.error_if: eagerly under vmap, when the compiled program runs under jit
    transform, fn = TRACED[message]
    arg = jnp.array([-1.0]) if transform is jax.vmap else jnp.asarray(-1.0)
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(transform(fn)(arg))
