"""Mitchell-Schaeffer with scars: travelling-wave speed, fixed point, gate bounds, scar blocking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.systems import mitchell_schaeffer as ms
from dynajax.systems.stencils import laplacian


def _front_speed(sigma: float, dx: float, length: float = 30.0, n_frames: int = 18) -> float:
    """Speed of a planar front (v = 0.5 crossing) on a 2-row strip, from a linear fit."""
    n = round(length / dx)
    dt = 1.0 / np.ceil(5.0 * sigma / dx**2)  # <= dx^2 / (4 sigma), divides the 1 ms frames
    stim = jnp.zeros((2, n)).at[:, : round(2 / dx)].set(1.0)
    v = np.asarray(ms.simulate(jnp.ones((2, n)), stim, sigma, n_frames=n_frames, dt=dt, dx=dx))[:, 0, 0]
    x = (np.arange(n) + 0.5) * dx
    pos = []
    for f in v:
        above = np.nonzero(f > 0.5)[0]
        if len(above) == 0 or above[-1] == n - 1:  # no front yet, or it reached the wall
            pos.append(np.nan)
            continue
        i = above[-1]  # last excited cell, then linear interpolation
        pos.append(x[i] + dx * (f[i] - 0.5) / (f[i] - f[i + 1]))
    pos, t = np.array(pos), np.arange(len(pos))
    fit = ~np.isnan(pos) & (pos > 8) & (pos < length - 6)  # away from the stimulus and the far wall
    assert fit.sum() >= 5
    return float(np.polyfit(t[fit], pos[fit], 1)[0])


def test_planar_front_converges_to_the_travelling_wave_speed():
    sigma = 1.0
    speeds = [_front_speed(sigma, dx) for dx in (1.0, 0.5, 0.25)]
    exact = ms.travelling_wave_speed(sigma)
    errors = [abs(s - exact) for s in speeds]
    assert errors[2] < errors[1] < errors[0]  # converges under refinement
    assert errors[2] / exact < 0.02  # to the 1-D Nagumo front speed of the fast subsystem
    assert abs(speeds[2] - speeds[1]) < 0.6 * abs(speeds[1] - speeds[0])


@pytest.mark.slow
def test_diffusion_is_the_neumann_laplacian_and_conserves_mass(rng):
    k1, k2 = jax.random.split(rng)
    v = jax.random.uniform(k1, (3, 12, 10))
    # uniform conductivity: the finite-volume operator is sigma times the Neumann 5-point Laplacian
    np.testing.assert_allclose(ms.diffusion(v, 2.5 * jnp.ones_like(v), 0.5),
                               2.5 * laplacian(v, 0.5, boundary="neumann"), rtol=1e-5, atol=1e-4)
    # heterogeneous conductivity with a scar: no flux leaves the domain nor enters the scar
    scars = ms.sample_scars(16, 24, key=k2)[:3, 6:18, 7:17]  # the (n, size) of the other tests: one compile
    c = jax.random.uniform(k2, v.shape, minval=0.5, maxval=3.0) * (1 - scars)
    d = ms.diffusion(v, c)
    np.testing.assert_allclose(jnp.sum(d, axis=(-2, -1)), 0.0, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(d)[np.asarray(c) == 0], 0.0)


def test_resting_state_is_a_fixed_point(rng):
    tissue = 1.0 - ms.sample_scars(16, 24, "complex", key=rng)[0, 4:20, 4:20]
    assert tissue.min() == 0  # a scar is there
    y0 = ms.resting_state(tissue)
    np.testing.assert_array_equal(ms.field(0.0, y0, tissue=tissue), 0.0)
    ys = ms.simulate(tissue, jnp.zeros_like(tissue), 3.0, n_frames=20, dt=0.04)
    np.testing.assert_array_equal(ys, jnp.broadcast_to(y0, ys.shape))


def test_scar_wall_blocks_propagation_and_gate_stays_in_unit_interval():
    n = 16
    tissue = jnp.ones((n, n)).at[:, 7:10].set(0.0)  # a full-height scar wall
    stim = jnp.zeros((n, n)).at[6:9, 1:4].set(1.0)
    ys = np.asarray(ms.simulate(tissue, stim, 5.0, n_frames=20, dt=0.04))
    v, h = ys[:, 0], ys[:, 1]
    assert v[-1, :, :7].min() > 0.5  # the left half is excited ...
    np.testing.assert_array_equal(v[:, :, 7:], 0.0)  # ... nothing crosses, the scar stays at 0
    assert 0.0 <= h.min() and h.max() <= 1.0
    assert h[-1, :, :7].max() < 1.0  # the gate closed where the tissue fired


def test_scars_and_stimuli(rng):
    k1, k2 = jax.random.split(rng)
    areas = {}
    for shape in ms.SHAPES:
        scars = np.asarray(ms.sample_scars(16, 24, shape, key=k1))
        assert set(np.unique(scars)) <= {0.0, 1.0}
        areas[shape] = scars.sum(axis=(1, 2))
        assert areas[shape].min() >= 9  # thick enough (the thesis fails under 2 px)
    assert areas["complex"].mean() > areas["rectangle"].mean()
    tissue = 1.0 - ms.sample_scars(16, 24, "rectangle", key=k1)
    stim = np.asarray(ms.sample_stimulus(tissue, key=k2, n_onsets=1))
    assert (stim.sum(axis=(1, 2)) == 9).all()  # one 3 x 3 block ...
    assert (stim * (1 - np.asarray(tissue))).sum() == 0  # ... on tissue
    with pytest.raises(ValueError, match="scar shape"):
        ms.sample_scars(1, 24, "star", key=k1)
    with pytest.raises(ValueError, match="unstable"):
        ms.simulate(tissue[0], stim[0], 6.0, dt=0.05)


@pytest.mark.slow
def test_generate_and_registry():
    from dynajax.systems import get_system

    assert get_system("mitchell_schaeffer") is ms.SYSTEM
    d = ms.generate("val", n_traj=2, shape="circle", sigma=2.0)
    assert d.states.shape == (2, 31, 2, 24, 24) and d.split == "val"
    np.testing.assert_array_equal(d.params["sigma"], 2.0)
    scar = d.states[:, 0, 1] == 0  # h = 0 exactly on the scar, 1 on resting tissue
    assert scar.any() and (d.states[:, 0, 1][~scar] == 1).all()
    assert (d.states[:, -1, 0][~scar] > 0.5).mean() > 0.5  # the wave went around the disk
