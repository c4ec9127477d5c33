"""Finite-difference Laplacians: exact symbols, convergence orders, the papers' borders."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.systems import stencils

SEPARABLE_BORDERS = ["periodic", "neumann", "valid", "axis_valid"]
CASES = [(s, b) for s in stencils.STENCILS for b in stencils.BOUNDARIES if not (s == "9pt" and b == "axis_valid")]


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("stencil,boundary", CASES)
def test_constants_are_annihilated(stencil, boundary):
    u = jnp.full((3, 9, 11), 2.7)
    # zero up to rounding of the weights' sum (exactly zero for the five-point stencil)
    out = np.abs(np.asarray(stencils.laplacian(u, 0.3, stencil=stencil, boundary=boundary)))
    assert out.max() <= (0.0 if stencil == "5pt" else 1e-13)


@pytest.mark.parametrize("stencil", stencils.STENCILS)
@pytest.mark.parametrize("mx,my", [(1, 0), (3, 2), (5, 7)])
def test_periodic_fourier_modes_match_the_symbol(stencil, mx, my):
    nx, ny, dx = 16, 20, 0.3
    x = dx * np.arange(nx)[:, None]
    y = dx * np.arange(ny)[None, :]
    kx, ky = 2 * np.pi * mx / (nx * dx), 2 * np.pi * my / (ny * dx)
    for u in (np.sin(kx * x + ky * y), np.cos(kx * x) * np.sin(ky * y)):
        lap = np.asarray(stencils.laplacian(jnp.asarray(u), dx, stencil=stencil))
        np.testing.assert_allclose(lap, stencils.symbol(stencil, kx, ky, dx) * u, atol=1e-10)


def test_symbols_in_closed_form():
    k, dx = np.linspace(0.1, 3.0, 7), 0.25
    a = k * dx
    np.testing.assert_allclose(stencils.symbol("5pt", k, 0.0, dx), -(2 / dx**2) * (1 - np.cos(a)), atol=1e-12)
    np.testing.assert_allclose(
        stencils.symbol("4th", k, 0.0, dx),
        -(1 / dx**2) * (5 / 2 - 8 / 3 * np.cos(a) + 1 / 6 * np.cos(2 * a)), atol=1e-12,
    )
    np.testing.assert_allclose(
        stencils.symbol("9pt", k, k[::-1], dx),
        (-3 + np.cos(a) + np.cos(a[::-1]) + np.cos(a) * np.cos(a[::-1])) / dx**2, atol=1e-12,
    )
    # the nine-point stencil equals the five-point one on axis-aligned modes
    np.testing.assert_allclose(stencils.symbol("9pt", k, 0.0, dx), stencils.symbol("5pt", k, 0.0, dx), atol=1e-12)


@pytest.mark.parametrize("stencil", stencils.STENCILS)
def test_symbol_converges_to_minus_k_squared_at_the_stencil_order(stencil):
    kx, ky = 1.3, 0.7
    dxs = 0.2 / 2.0 ** np.arange(4)
    err = np.array([abs(stencils.symbol(stencil, kx, ky, dx) + kx**2 + ky**2) for dx in dxs])
    slopes = np.log2(err[:-1] / err[1:])
    np.testing.assert_allclose(slopes, stencils.stencil_order(stencil), atol=0.02)


@pytest.mark.parametrize("stencil", stencils.STENCILS)
def test_operator_converges_on_a_smooth_periodic_field(stencil):
    """Max error against the exact Laplacian of a non-trigonometric smooth field."""
    errs = []
    for n in (32, 64, 128):
        dx = 2 * np.pi / n
        x = dx * np.arange(n)[:, None]
        y = dx * np.arange(n)[None, :]
        u = np.exp(np.sin(x) + np.cos(y))
        exact = u * (np.cos(x) ** 2 - np.sin(x) + np.sin(y) ** 2 - np.cos(y))
        errs.append(np.max(np.abs(np.asarray(stencils.laplacian(jnp.asarray(u), dx, stencil=stencil)) - exact)))
    slopes = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(slopes - stencils.stencil_order(stencil)) < 0.15), slopes


@pytest.mark.parametrize("stencil", stencils.STENCILS)
@pytest.mark.parametrize("mx,my", [(1, 0), (5, 4)])
def test_neumann_cosine_modes_are_eigenvectors(stencil, mx, my):
    nx, ny, dx = 12, 10, 0.5
    x = np.arange(nx)[:, None] + 0.5
    y = np.arange(ny)[None, :] + 0.5
    u = np.cos(np.pi * mx * x / nx) * np.cos(np.pi * my * y / ny)
    kx, ky = np.pi * mx / (nx * dx), np.pi * my / (ny * dx)
    lap = np.asarray(stencils.laplacian(jnp.asarray(u), dx, stencil=stencil, boundary="neumann"))
    np.testing.assert_allclose(lap, stencils.symbol(stencil, kx, ky, dx) * u, atol=1e-10)


def _matrix(stencil, boundary, shape=(5, 6)):
    n = shape[0] * shape[1]
    basis = jnp.eye(n).reshape(n, *shape)
    return np.asarray(stencils.laplacian(basis, 1.0, stencil=stencil, boundary=boundary)).reshape(n, n).T


@pytest.mark.parametrize("stencil", stencils.STENCILS)
@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
def test_periodic_and_neumann_are_symmetric_negative_semidefinite(stencil, boundary):
    m = _matrix(stencil, boundary)
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    eig = np.linalg.eigvalsh(m)
    assert eig.max() < 1e-10 and abs(eig.max()) < 1e-10  # the constants: eigenvalue 0


@pytest.mark.parametrize("stencil", stencils.STENCILS)
def test_interior_of_valid_borders_matches_periodic(stencil, rng):
    u = jax.random.normal(rng, (2, 13, 14))
    per = stencils.laplacian(u, 0.7, stencil=stencil)
    r = stencils.stencil_radius(stencil)
    for b in ("valid", "neumann") + (() if stencil == "9pt" else ("axis_valid",)):
        out = stencils.laplacian(u, 0.7, stencil=stencil, boundary=b)
        np.testing.assert_allclose(out[..., r:-r, r:-r], per[..., r:-r, r:-r], atol=1e-12)


def test_axis_valid_is_the_aphynity_wave_data_code(rng):
    """``datasets/wave.py`` (``_f``, order 5), transcribed to numpy."""
    state = np.asarray(jax.random.normal(rng, (12, 9)))
    zz, xx = np.zeros_like(state), np.zeros_like(state)
    zz[:, 2:-2] = (-1 / 12 * state[:, 4:] + 4 / 3 * state[:, 3:-1] - 5 / 2 * state[:, 2:-2]
                   + 4 / 3 * state[:, 1:-3] - 1 / 12 * state[:, :-4])
    xx[2:-2, :] = (-1 / 12 * state[4:, :] + 4 / 3 * state[3:-1, :] - 5 / 2 * state[2:-2, :]
                   + 4 / 3 * state[1:-3, :] - 1 / 12 * state[:-4, :])
    out = stencils.laplacian(jnp.asarray(state), 1.0, stencil="4th", boundary="axis_valid")
    np.testing.assert_allclose(out, zz + xx, atol=1e-12)
    # its order-3 branch, for the three-point stencil
    zz, xx = np.zeros_like(state), np.zeros_like(state)
    zz[:, 1:-1] = state[:, 2:] - 2 * state[:, 1:-1] + state[:, :-2]
    xx[1:-1, :] = state[2:, :] - 2 * state[1:-1, :] + state[:-2, :]
    np.testing.assert_allclose(stencils.laplacian(state, 1.0, stencil="5pt", boundary="axis_valid"), zz + xx, atol=1e-12)


def test_valid_is_the_aphynity_wave_model_code(rng):
    """``networks.py`` ``DampedWaveParamPDE``: valid conv with [1,-2,1] kernels, zero pad."""
    w = np.asarray(jax.random.normal(rng, (10, 8)))
    ddx = w[1:-1, 2:] - 2 * w[1:-1, 1:-1] + w[1:-1, :-2]
    ddy = w[2:, 1:-1] - 2 * w[1:-1, 1:-1] + w[:-2, 1:-1]
    expected = np.pad(ddx + ddy, 1)
    np.testing.assert_allclose(stencils.laplacian(w, 1.0, stencil="5pt", boundary="valid"), expected, atol=1e-12)


def test_nine_point_is_the_leads_gray_scott_code(rng):
    """``datasets/gs.py`` ``_laplacian2D``, transcribed."""
    a = np.asarray(jax.random.normal(rng, (7, 9)))
    r = lambda s: np.roll(a, s, (0, 1))
    expected = (-3 * a + 0.5 * (r((1, 0)) + r((-1, 0)) + r((0, 1)) + r((0, -1)))
                + 0.25 * (r((1, 1)) + r((1, -1)) + r((-1, 1)) + r((-1, -1)))) / 2.0**2
    np.testing.assert_allclose(stencils.laplacian(a, 2.0, stencil="9pt"), expected, atol=1e-12)


def test_five_point_is_the_aphynity_rd_code(rng):
    a = np.asarray(jax.random.normal(rng, (8, 8)))
    dx = 2 / 8
    expected = (-4 * a + np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1)) / dx**2
    np.testing.assert_allclose(stencils.laplacian_5pt(a, dx), expected, atol=1e-10)


@pytest.mark.slow
def test_batch_axes_and_named_wrappers(rng):
    u = jax.random.normal(rng, (2, 2, 9, 9))
    for fn, s in ((stencils.laplacian_5pt, "5pt"), (stencils.laplacian_9pt, "9pt"), (stencils.laplacian_4th, "4th")):
        batched = fn(u, 0.5, boundary="neumann")
        for i, j in ((0, 0), (1, 1)):
            single = stencils.laplacian(u[i, j], 0.5, stencil=s, boundary="neumann")
            np.testing.assert_allclose(batched[i, j], single, atol=1e-12)
        assert batched.shape == u.shape


def test_float32_in_float32_out():
    u = jnp.ones((5, 5), jnp.float32)
    assert stencils.laplacian(u, 0.5).dtype == jnp.float32


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown stencil"):
        stencils.laplacian(jnp.ones((5, 5)), stencil="7pt")
    with pytest.raises(ValueError, match="unknown boundary"):
        stencils.laplacian(jnp.ones((5, 5)), boundary="dirichlet")
    with pytest.raises(ValueError, match="separable stencils only"):
        stencils.laplacian(jnp.ones((5, 5)), stencil="9pt", boundary="axis_valid")
    with pytest.raises(ValueError, match="too small for the '4th' stencil: each axis needs at least 5"):
        stencils.laplacian(jnp.ones((4, 8)), stencil="4th")
    with pytest.raises(ValueError, match="too small"):
        stencils.laplacian(jnp.ones((8, 2)), stencil="5pt", boundary="valid")
    with pytest.raises(ValueError, match="2-D field"):
        stencils.laplacian(jnp.ones((8,)))
    for s, n in itertools.product(stencils.STENCILS, (3, 5)):  # the smallest grids work
        if n >= 2 * stencils.stencil_radius(s) + 1:
            stencils.laplacian(jnp.ones((n, n)), stencil=s)
