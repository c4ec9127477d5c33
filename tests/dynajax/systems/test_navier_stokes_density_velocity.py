"""``navier_stokes.density_velocity_states``: partially observed data (density, velocity)."""

import jax
import numpy as np
import pytest

from dynajax.systems import navier_stokes as ns


@pytest.mark.slow
def test_density_velocity_states_conserve_mass_and_are_divergence_free(rng):
    s = ns.density_velocity_states(3, 2, key=rng, size=16, chunk=2)  # two chunks: 2 + 1 simulations
    assert s.shape == (3, 3, 3, 16, 16) and s.dtype == np.float32
    rho, u = s[:, :, 0], s[:, :, 1:]
    # a passive density on the periodic square keeps its mass; the blob starts positive, peak ~1
    np.testing.assert_allclose(rho.mean(axis=(-2, -1)), rho[:, :1].mean(axis=(-2, -1)).repeat(3, 1), rtol=1e-4)
    assert rho[:, 0].min() >= 0 and abs(rho[:, 0].max() - 1) < 1e-2
    k = np.fft.fftfreq(16, 1 / 16)
    k[8] = 0.0
    kx, ky = np.meshgrid(k, k, indexing="ij")
    uh = np.fft.fft2(u.astype(np.float64))
    div = np.real(np.fft.ifft2(kx * uh[..., 0, :, :] + ky * uh[..., 1, :, :]))
    assert np.abs(div).max() < 1e-4 * np.abs(u).max()
    assert np.abs(u[:, 1] - u[:, 0]).max() > 1e-3  # the flow evolves
    np.testing.assert_allclose(ns.density_velocity_states(3, 2, key=rng, size=16), s, atol=1e-6)  # chunking: no effect
    assert not np.array_equal(ns.density_velocity_states(3, 2, key=jax.random.fold_in(rng, 1), size=16), s)
