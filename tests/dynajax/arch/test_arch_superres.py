"""Super-resolution baselines and metrics (dynajax.arch.superres) against analytic fields."""

import jax.numpy as jnp
import numpy as np
import pytest

from dynajax import arch


def _shear(n):
    """A smooth divergence-free periodic field: the velocity of psi = sin(2 pi x) sin(2 pi y) / (2 pi)."""
    X, Y = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    return np.stack([np.sin(2 * np.pi * X) * np.cos(2 * np.pi * Y), -np.cos(2 * np.pi * X) * np.sin(2 * np.pi * Y)])


def test_grid_points_order_matches_the_field_layout():
    n = 4
    g = arch.grid_points(n)
    u = _shear(n)
    assert g.shape == (n * n, 2)
    np.testing.assert_allclose(g[1 * n + 3], [1 / n, 3 / n])
    np.testing.assert_allclose(u.reshape(2, -1).T[1 * n + 3], u[:, 1, 3])
    with pytest.raises(ValueError):
        arch.grid_points(0)


def test_spectral_curl_and_divergence_of_an_analytic_field():
    n = 16
    u = _shear(n)
    X, Y = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    # curl = d u_y/dx - d u_x/dy = 4 pi sin(2 pi x) sin(2 pi y)
    np.testing.assert_allclose(arch.spectral_curl(jnp.asarray(u)), 4 * np.pi * np.sin(2 * np.pi * X) * np.sin(2 * np.pi * Y),
                               atol=1e-4)
    assert float(jnp.max(jnp.abs(arch.spectral_divergence(jnp.asarray(u))))) < 1e-4


def test_field_errors_of_exact_and_scaled_reconstructions():
    u = _shear(16)
    exact = arch.field_errors(u, u)
    assert exact["rel_l2"] == 0 and exact["spectrum_err"] == 0 and exact["log_spectrum_err"] == 0
    assert exact["div_norm"] < 1e-12
    twice = arch.field_errors(2 * u, u)  # energy x4 in every shell
    assert twice["rel_l2"] == pytest.approx(1.0)
    assert twice["spectrum_err"] == pytest.approx(3.0)
    assert twice["log_spectrum_err"] == pytest.approx(np.log10(4.0))
    with pytest.raises(ValueError):
        arch.field_errors(u[:, :8, :8], u)


@pytest.mark.parametrize("method", [arch.periodic_cubic, arch.periodic_gp])
def test_interpolants_recover_a_smooth_periodic_field(method):
    n = 32
    u = _shear(n)
    grid, flat = arch.grid_points(n), u.reshape(2, -1).T
    idx = np.random.default_rng(0).choice(n * n, 150, replace=False)
    pred = method(grid[idx], flat[idx], grid)
    assert pred.shape == (n * n, 2)
    np.testing.assert_allclose(pred[idx], flat[idx], atol=2e-3)  # the samples are (nearly) reproduced
    assert arch.field_errors(pred.T.reshape(2, n, n), u)["rel_l2"] < 0.05
