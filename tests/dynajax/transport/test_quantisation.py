"""Quantisation: the 1-D optimum in closed form, Fejes Toth's hexagon bound on the square,
monotone energies, POT's exact OT cost."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from dynajax.transport import quantisation as Q


def test_lloyd_in_1d_reaches_the_uniform_optimum():
    # uniform on [0, 1]: the optimal N-quantiser is {(2j - 1) / 2N} with energy 1 / (12 N^2)
    # (Lloyd converges to it for a log-concave density: Kieffer 1982)
    N, M = 8, 800
    x = ((np.arange(M) + 0.5) / M)[:, None]
    y0 = np.random.default_rng(0).random((N, 1))
    opt = ((2 * np.arange(N) + 1) / (2 * N))[:, None]
    # k-means on a grid sample stops at a nearby fixed point (cell boundaries can move by
    # grid steps without moving the cell means): looser tolerances than the OT cells'
    for res, tol in ((Q.kmeans_lloyd(x, y0, n_iter=400), 2e-2), (Q.laguerre_lloyd(x, y0, n_iter=60), 1e-3)):
        np.testing.assert_allclose(np.sort(res.points, axis=0), opt, atol=tol)
        np.testing.assert_allclose(res.energy[-1], 1 / (12 * N**2), rtol=tol)
        np.testing.assert_allclose(res.weights, 1 / N, atol=tol)


def test_energies_are_monotone_and_exact():
    r = np.random.default_rng(1)
    x = np.concatenate([r.normal(size=(600, 2)), r.normal(size=(600, 2)) * 0.5 + 3.0]).astype(np.float32)
    y0 = x[r.choice(len(x), 12, replace=False)]
    km = Q.kmeans_lloyd(x, y0, n_iter=30)
    lg = Q.laguerre_lloyd(x, y0, n_iter=15)
    for e in (km.energy, lg.energy):
        assert np.all(np.diff(np.asarray(e)) <= 1e-6 * float(e[0])), np.diff(np.asarray(e)).max()
    np.testing.assert_allclose(km.energy[-1], Q.quantisation_error(x, km.points), rtol=1e-6)
    np.testing.assert_allclose(np.sum(km.weights), 1.0, rtol=1e-6)
    x64, y64 = np.asarray(x, np.float64), np.asarray(lg.points, np.float64)
    ref = ot.emd2(np.full(len(x), 1 / len(x)), np.full(12, 1 / 12), ot.dist(x64, y64))
    np.testing.assert_allclose(lg.energy[-1], ref, rtol=1e-4)
    np.testing.assert_allclose(Q.quantisation_error(x, lg.points, lg.weights), ref, rtol=1e-4)
    # free weights can only do better than uniform ones at the same points
    assert float(Q.quantisation_error(x, lg.points)) <= float(lg.energy[-1])


def test_kmeans_on_the_square_meets_the_hexagon_constant():
    # Fejes Toth: N E >= 2 G = 5 / (18 sqrt 3) for every N on a square of area 1, with
    # equality in the limit; k-means at N = 32 lands within a boundary layer of it
    N = 32
    r = np.random.default_rng(2)
    x = r.random((8000, 2)).astype(np.float32)
    km = Q.kmeans_lloyd(x, x[:N], n_iter=100)
    held = r.random((100000, 2)).astype(np.float32)
    ne = N * float(Q.quantisation_error(held, km.points))
    assert Q.HEXAGON_2G * 0.99 <= ne <= Q.HEXAGON_2G * 1.10, ne
    np.testing.assert_allclose(Q.HEXAGON_2G, 0.16038, atol=1e-5)


@pytest.mark.slow
def test_weighted_sample_is_repeated_points_and_grid_on_box():
    r = np.random.default_rng(3)
    x = r.random((40, 2)).astype(np.float32)
    k = np.arange(1, 41) % 3 + 1  # integer weights: the same as repeating the points
    xr = np.repeat(x, k, axis=0)
    y0 = x[:5]
    for f, it in ((Q.kmeans_lloyd, 10), (Q.laguerre_lloyd, 4)):
        a, b = f(x, y0, k.astype(np.float32), n_iter=it), f(xr, y0, n_iter=it)
        np.testing.assert_allclose(a.points, b.points, atol=1e-5)
        np.testing.assert_allclose(a.energy, b.energy, rtol=1e-4)
    np.testing.assert_allclose(Q.quantisation_error(x, y0, sample_weights=k), Q.quantisation_error(xr, y0), rtol=1e-5)
    # a density on a box: the grid's weighted mean and variance are the density's
    pts, w = Q.grid_on_box(lambda p: jnp.exp(-jnp.sum(p**2, -1) / 2), np.array([-6.0, -6.0]), np.array([6.0, 6.0]), 60)
    np.testing.assert_allclose(np.sum(w), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.sum(w[:, None] * pts**2, 0), 1.0, rtol=1e-2)


def test_quantisation_validation():
    with pytest.raises(ValueError, match="more quantisation points"):
        Q.kmeans_lloyd(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="dimension mismatch"):
        Q.laguerre_lloyd(np.zeros((5, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_iter"):
        Q.kmeans_lloyd(np.zeros((5, 2)), np.zeros((2, 2)), n_iter=-1)
