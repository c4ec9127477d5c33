"""Tiny end-to-end runs of the hyperbolic, barycenter and quantisation experiments, and the
hyperbolic sliced descent they use."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.experiments import barycenter_gaussians, barycenter_shapes, hsw_flows, hsw_runtime, lloyd_quantisation
from dynajax.experiments.results import CHECK_KINDS, STATUSES, status
from dynajax.transport.hyperbolic import hyperbolic_wasserstein, wrapped_normal_sample
from dynajax.transport.hyperbolic_sliced import hyperbolic_sliced_descent


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["geodesic", "sw-lorentz"])
def test_hyperbolic_sliced_descent_moves_particles_to_the_target(loss):
    mu, cov = jnp.array([0.0, 0.6]), 0.05 * jnp.eye(2)
    sampler = lambda k: wrapped_normal_sample(mu, cov, 64, key=k, model="poincare")  # noqa: E731
    x0 = wrapped_normal_sample(jnp.zeros(2), cov, 64, key=jax.random.key(1), model="poincare")
    x, snaps = hyperbolic_sliced_descent(x0, sampler, loss=loss, n_steps=60, n_proj=32, lr=0.02,
                                         key=jax.random.key(0), snapshot_every=20)
    assert snaps.shape == (4, 64, 2)
    np.testing.assert_array_equal(snaps[-1], x)
    held = sampler(jax.random.key(2))
    w0 = float(hyperbolic_wasserstein(x0, held, model="poincare"))
    w1 = float(hyperbolic_wasserstein(x, held, model="poincare"))
    assert w1 < 0.2 * w0, (w0, w1)
    with pytest.raises(ValueError, match="must divide"):
        hyperbolic_sliced_descent(x0, sampler, loss=loss, n_steps=10, n_proj=4, lr=0.1, key=jax.random.key(0),
                                  snapshot_every=3)


CASES = [
    (hsw_flows, dict(n=32, n_steps=20, eval_every=10, n_proj=16, lrs=(0.02,))),
    (hsw_runtime, dict(sizes=(50, 200), exact_max_n=200, n_proj=16, repeats=1)),
    (lloyd_quantisation, dict(sizes=(8, 16), fine=20, n_iter_laguerre=3, n_iter_kmeans=5, n_eval=500)),
    (barycenter_gaussians, dict(n_gauss=2, sizes=(20, 40), n_iter=3, sw_steps=10, sw_proj=8)),
    (barycenter_shapes, dict(grid=12, n=40, n_interp=2, n_iter=3, epsilon=1e-2)),
]


@pytest.mark.slow
@pytest.mark.parametrize("module,sizes", CASES, ids=[c[0].__name__.split(".")[-1] for c in CASES])
def test_experiment_end_to_end_tiny(module, sizes, tmp_path):
    cfg = dataclasses.replace(module.QUICK, seeds=1, **sizes)
    res = module.run(cfg, (0,), tmp_path)
    assert res.rows and res.checks and all(c.kind in CHECK_KINDS for c in res.checks)
    assert status(res.checks) in STATUSES
    assert all((tmp_path / f).exists() for f in res.figures)
