"""Continuous-depth classifiers: both gradient routes against finite differences and each other."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.arch import ContinuousClassifier, interp_weights


@pytest.fixture(autouse=True)
def _fast_random():
    # threefry_partitionable=False compiles random draws ~8x faster on XLA:CPU; the tests
    # check properties that hold for any random stream.
    with jax.threefry_partitionable(False):
        yield


def _problem(rng, **kw):
    model = ContinuousClassifier(dim_in=2, width=4, n_classes=2, T=1.0, n_nodes=2, **kw)
    params = model.init(rng, jnp.float64)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 2)))
    y = (x[:, 0] * x[:, 1] > 0).astype(jnp.int32)
    return model, params, x, y


def _flat(tree):
    return jnp.concatenate([v.ravel() for v in jax.tree_util.tree_leaves(tree)])


def test_discretize_gradient_is_the_exact_gradient_of_the_resnet(rng):
    with jax.enable_x64(True):
        model, params, x, y = _problem(rng, n_steps=8, solver="euler")
        direction = jax.tree_util.tree_map(lambda p: jnp.cos(jnp.arange(p.size, dtype=p.dtype) + p.ndim).reshape(p.shape), params)

        @jax.jit
        def both(params, eps):
            shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * d, params, direction)
            fd = (model.loss(shift(eps), x, y) - model.loss(shift(-eps), x, y)) / (2 * eps)
            g = jax.grad(model.loss)(params, x, y)
            # the forward pass is exactly a ResNet: u <- u + h f(t_j, u)
            u0 = x @ params["embed"]["w"] + params["embed"]["b"]
            u = u0
            for j in range(8):
                u = u + model.dt * model.field(j * model.dt, u, params["field"])
            return fd, jnp.vdot(_flat(g), _flat(direction)), model.flow(params["field"], u0), u

        fd, ad, flow, resnet = both(params, 1e-6)
        np.testing.assert_allclose(ad, fd, rtol=1e-7)
        np.testing.assert_allclose(flow, resnet, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:integrate.backend=.auto.. falls back to diffrax")  # dt traced on purpose
def test_backsolve_converges_to_discretize_as_dt_shrinks(rng):
    with jax.enable_x64(True):
        model, params, x, y = _problem(rng, n_steps=1, solver="euler")
        back = dataclasses.replace(model, adjoint="backsolve")

        @jax.jit
        def mismatch(params, dt):  # dt traced: one program for every step size
            gd = _flat(jax.grad(model.loss)(params, x, y, dt))
            gb = _flat(jax.grad(back.loss)(params, x, y, dt))
            return jnp.linalg.norm(gb - gd) / jnp.linalg.norm(gd)

        errs = [float(mismatch(params, 1.0 / n)) for n in (4, 16, 64)]
        # Euler is first order: the two routes differ by O(h), about 4x less per 4x steps
        assert errs[0] > 2.5 * errs[1] > 6 * errs[2], errs
        assert errs[2] < 2e-2


def test_interp_weights_is_piecewise_linear():
    nodes = jnp.arange(3.0)[:, None] * jnp.ones((3, 2))
    np.testing.assert_allclose(interp_weights(nodes, jnp.asarray(0.25), 1.0), [0.5, 0.5])
    np.testing.assert_allclose(interp_weights(nodes, jnp.asarray(1.0), 1.0), [2.0, 2.0])


@pytest.mark.parametrize("kw", [{"adjoint": "nope"}, {"solver": "rk5"}, {"n_steps": 0}, {"T": -1.0}])
def test_invalid_configuration_raises(kw):
    with pytest.raises(ValueError):
        ContinuousClassifier(dim_in=2, **kw)
