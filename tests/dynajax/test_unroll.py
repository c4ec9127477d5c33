"""Tests for the automatic unroll rule and its use by integrate and fit."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynajax import _fixed_step, _unroll, integrate
from dynajax.train import fit, init_state, make_step

KERNEL = 0.1 * jax.random.normal(jax.random.key(0), (1, 1, 3, 3))


def conv_field(t, y, w):
    """Diffusion-like field by a 3x3 convolution, ``y: [1, 1, 8, 8]``."""
    return jax.lax.conv_general_dilated(y, w, (1, 1), "SAME") - 0.1 * y


def dense_field(t, y, w):
    return -w * y


Y0 = jax.random.normal(jax.random.key(1), (1, 1, 8, 8))


def test_rule_detects_convolutions_on_cpu_only():
    assert _unroll.should_unroll(lambda y: conv_field(0.0, y, KERNEL), Y0, backend="cpu") is True
    assert _unroll.should_unroll(lambda y: conv_field(0.0, y, KERNEL), Y0, backend="gpu") is False
    assert _unroll.should_unroll(lambda y: dense_field(0.0, y, 0.5), Y0, backend="cpu") is False
    # A convolution nested in a sub-jaxpr (scan body) is found too.
    nested = lambda y: jax.lax.scan(lambda c, _: (conv_field(0.0, c, KERNEL), None), y, None, 2)[0]
    assert _unroll.should_unroll(nested, Y0, backend="cpu") is True


def test_resolve_auto_and_validation():
    on_cpu = jax.default_backend() == "cpu"
    assert _unroll.resolve("auto", conv_field, 0.0, Y0, KERNEL) == (True if on_cpu else 1)
    assert _unroll.resolve("auto", dense_field, 0.0, Y0, 0.5) == 1
    assert _unroll.resolve(4, conv_field, 0.0, Y0, KERNEL) == 4
    for bad in ("yes", 0, -2, 1.5):
        with pytest.raises(ValueError, match="unroll must be"):
            _unroll.resolve(bad, dense_field, 0.0, Y0, 0.5)
    with pytest.raises(ValueError, match="unroll must be"):
        integrate(dense_field, Y0, np.linspace(0, 1, 3), solver="rk4", dt0=0.25, args=0.5, unroll="x")


def test_auto_rollout_equals_rolled_rollout():
    tab = _fixed_step.tableau_of(__import__("diffrax").Tsit5())
    auto = _fixed_step.rollout(conv_field, tab, Y0, 0.0, 0.5, 3, 2, KERNEL, unroll="auto")
    rolled = _fixed_step.rollout(conv_field, tab, Y0, 0.0, 0.5, 3, 2, KERNEL, unroll=1)
    np.testing.assert_allclose(np.asarray(auto), np.asarray(rolled), rtol=1e-6, atol=1e-7)


@pytest.mark.slow
def test_integrate_warns_when_traced_ts_forces_diffrax():
    @jax.jit
    def solve(y0):
        ts = jnp.linspace(0.0, 1.0, 5)  # traced under jit
        return integrate(dense_field, y0, ts, solver="rk4", dt0=0.25, args=0.5)

    with pytest.warns(UserWarning, match="falls back to diffrax"):
        ys = solve(jnp.ones(3))
    np.testing.assert_allclose(np.asarray(ys[-1]), np.exp(-0.5), rtol=1e-5)
    with warnings.catch_warnings():  # concrete ts: the scan backend, no warning
        warnings.simplefilter("error")
        jax.jit(lambda y0: integrate(dense_field, y0, np.linspace(0, 1, 5), solver="rk4",
                                     dt0=0.25, args=0.5))(jnp.ones(3))


@pytest.mark.parametrize("seeds", [False, True])
def test_fit_loop_mode_matches_scan(seeds, monkeypatch):
    """A convolving step runs as a loop of compiled steps on CPU, with the scan's results."""
    decisions = []
    rule = _unroll.should_unroll
    monkeypatch.setattr(_unroll, "should_unroll", lambda *a, **k: decisions.append(rule(*a, **k)) or decisions[-1])
    x = jax.random.normal(jax.random.key(2), (16, 1, 8, 8))
    y = jax.vmap(lambda xi: conv_field(0.0, xi[None], KERNEL)[0])(x)

    def loss(w, batch, key):
        xb, yb = batch
        pred = jax.lax.conv_general_dilated(xb, w, (1, 1), "SAME") - 0.1 * xb
        return jnp.mean((pred - yb) ** 2), {}

    opt = optax.adam(1e-2)
    step = make_step(loss, opt)
    init = lambda k: init_state(jnp.zeros((1, 1, 3, 3)), opt, key=k)  # noqa: E731
    state = jax.vmap(init)(jax.random.split(jax.random.key(3), 2)) if seeds else init(jax.random.key(3))
    kw = dict(n_steps=7, chunk_size=3, batch_size=8, seeds=seeds, progress=False)
    auto = fit(step, state, (x, y), unroll="auto", **kw)
    assert decisions == [jax.default_backend() == "cpu"]  # the loop mode was taken
    rolled = fit(step, state, (x, y), unroll=1, **kw)
    np.testing.assert_allclose(np.asarray(auto.state.params), np.asarray(rolled.state.params),
                               rtol=1e-5, atol=1e-7)
    assert auto.history["loss"].shape == rolled.history["loss"].shape
    np.testing.assert_allclose(auto.history["loss"], rolled.history["loss"], rtol=1e-5)
    assert float(np.mean(auto.history["loss"][-1])) < float(np.mean(auto.history["loss"][0]))
