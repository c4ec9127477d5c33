"""Least-action library: penalty definitions, Euler flow and its reversed inverse, schedules,
translation lands on the Monge map, TRGL module losses."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynajax.nn.initializers import orthogonal
from dynajax.train import init_state, make_step
from dynajax.transport.diagnostics import monge_map_distance
from dynajax.transport.least_action import (
    ResidualFlow,
    VelocityMLP,
    histogram_cost,
    lap_uzawa,
    linear_decay,
    mmd_discrepancy,
    transport_penalty,
    udt_loss,
)
from dynajax.transport.ot import gaussian_monge_map
from dynajax.transport.trgl import ModuleWiseResNet, trgl_taus


def _flow(k=3, dt=0.5, width=8, gain=1.0):
    return ResidualFlow(VelocityMLP((width,), "tanh", orthogonal(gain)), n_blocks=k, dt=dt)


def test_penalty_reductions_match_definitions(rng):
    r = np.asarray(jax.random.normal(rng, (4, 7, 3)))
    brute = sum(float(np.dot(r[k, i], r[k, i])) for k in range(4) for i in range(7))
    np.testing.assert_allclose(transport_penalty(jnp.asarray(r), "sum"), brute, rtol=1e-5)
    np.testing.assert_allclose(transport_penalty(jnp.asarray(r), "batch_mean"), brute / 7, rtol=1e-5)
    # released LAP code: sum over blocks of torch.mean(r**2) over batch x features
    code = sum(float(np.mean(r[k] ** 2)) for k in range(4))
    np.testing.assert_allclose(transport_penalty(jnp.asarray(r), "mean"), code, rtol=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        transport_penalty(jnp.asarray(r), "max")
    with pytest.raises(ValueError, match="K, n, d"):
        transport_penalty(jnp.asarray(r[0]), "sum")


def test_histogram_cost_hook_sees_values_not_positions(rng):
    x = jax.random.normal(rng, (2, 5, 6))
    cost = histogram_cost(jnp.linspace(-3, 3, 13), 0.5)
    # permuting the coordinates of a point leaves its histogram unchanged: zero cost
    y = x[..., ::-1]
    states = jnp.stack([x[0], y[0]])
    res = states[1:] - states[:-1]
    pen = jax.jit(lambda s: transport_penalty(s[1:] - s[:-1], "sum", cost=cost, states=s))
    np.testing.assert_allclose(pen(states), 0.0, atol=1e-6)
    assert float(pen(jnp.stack([x[0], x[0] + 1.0]))) > 1e-3
    with pytest.raises(ValueError, match="two-point"):
        transport_penalty(res, states=states)


def test_flow_matches_manual_euler_loop(rng):
    flow = _flow()
    x = jax.random.normal(rng, (5, 2))
    params = flow.init(jax.random.key(0), x)

    @jax.jit
    def both(p, x):
        z, manual = x, [x]
        for k in range(3):
            z = z + 0.5 * flow.velocity(p, k, z)
            manual.append(z)
        return flow.residuals(p, x), jnp.stack(manual)

    (tx, res, states), manual = both(params, x)
    np.testing.assert_allclose(states, manual, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tx, manual[-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res, states[1:] - states[:-1], atol=1e-6)
    with pytest.raises(ValueError, match="n_blocks"):
        ResidualFlow(VelocityMLP(), n_blocks=0)
    with pytest.raises(ValueError, match="dt"):
        ResidualFlow(VelocityMLP(), dt=-1.0)


def test_reversed_euler_inverse_error_is_second_order_per_step(rng):
    x = jax.random.normal(rng, (64, 2))
    errs = []
    for dt in (0.2, 0.1, 0.05):
        flow = _flow(k=1, dt=dt)
        params = flow.init(jax.random.key(3), x)
        sx = jax.jit(lambda p, z: flow.inverse(p, flow(p, z)))(params, x)
        errs.append(float(jnp.sqrt(jnp.mean(jnp.sum((sx - x) ** 2, -1)))))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    np.testing.assert_allclose(orders, 2.0, atol=0.25)
    # a block-wise constant field is inverted exactly
    const = ResidualFlow(nn.Dense(2, kernel_init=nn.initializers.zeros,
                                  bias_init=nn.initializers.ones), n_blocks=4, dt=0.3)
    p = const.init(jax.random.key(0), x)
    np.testing.assert_allclose(const.inverse(p, const(p, x)), x, atol=1e-5)


def test_schedules():
    np.testing.assert_allclose(linear_decay(0, 10, 1.0, 0.01), 1.0)
    np.testing.assert_allclose(linear_decay(5, 10, 1.0, 0.01), 0.505, rtol=1e-6)
    np.testing.assert_allclose(linear_decay(50, 10, 1.0, 0.01), 0.01, rtol=1e-6)
    uz = lap_uzawa(5.0, 1.0, 5)
    # objective weighting: L + C / lambda
    np.testing.assert_allclose(uz.total(jnp.asarray(5.0), 10.0, 2.0), 2.0 + 10.0 / 5.0)
    np.testing.assert_allclose(uz.update(jnp.asarray(5.0), 0.3, jnp.asarray(5)), 5.3, rtol=1e-6)
    np.testing.assert_allclose(uz.update(jnp.asarray(5.0), 0.3, jnp.asarray(4)), 5.0)
    with pytest.raises(ValueError):
        linear_decay(0, 0)
    np.testing.assert_allclose(trgl_taus(2.0, 5), [1.0, 1.0, 2.0, 2.0, 2.0])
    with pytest.raises(ValueError):
        trgl_taus(0.0, 4)


@pytest.mark.slow
def test_penalised_translation_lands_near_gaussian_monge_map():
    """N(0, I) -> N(m, S): MMD + kinetic energy finds the closed-form Monge map."""
    m, s = jnp.array([2.0, 0.0]), jnp.array([[1.5, 0.3], [0.3, 0.6]])
    chol = jnp.linalg.cholesky(s)
    flow = ResidualFlow(VelocityMLP((16,), "tanh", orthogonal(1.0)), n_blocks=4, dt=0.25)
    opt = optax.adam(1e-2)
    disc = mmd_discrepancy((0.5, 1.0, 2.0))

    def loss_fn(params, batch, key):
        x, y, lam = batch
        return udt_loss(flow, params, x, y, lam, disc)

    step = make_step(loss_fn, opt)
    n_steps = 400
    state = init_state(flow.init(jax.random.key(0), jnp.zeros((2, 2))), opt, key=jax.random.key(1))

    def body(st, _):
        kx, ky = jax.random.split(jax.random.fold_in(st.key, st.step))
        lam = linear_decay(st.step, int(0.6 * n_steps), 1.0, 1e-3)
        xy = (jax.random.normal(kx, (256, 2)), m + jax.random.normal(ky, (256, 2)) @ chol.T, lam)
        return step(st, xy)

    state, _ = jax.jit(lambda s: jax.lax.scan(body, s, None, length=n_steps))(state)
    x = jax.random.normal(jax.random.key(9), (2000, 2))
    ref = gaussian_monge_map(jnp.zeros(2), jnp.eye(2), m, s)(x)
    dist = float(monge_map_distance(flow(state.params, x), ref))
    start = float(monge_map_distance(x, ref))
    assert dist < 0.2, (dist, start)


@pytest.mark.slow
def test_trgl_module_losses_give_per_module_gradients(rng):
    kx, ky = jax.random.split(rng)
    x = jax.random.normal(kx, (16, 6))
    y = jax.random.randint(ky, (16,), 0, 3)
    flow = ResidualFlow(VelocityMLP((8,), "relu", orthogonal(1.0)), n_blocks=2, dt=1.0)
    model = ModuleWiseResNet(nn.Dense(4), flow, nn.Dense(3), n_modules=3)
    params = model.init(jax.random.key(0), x)
    taus = jnp.asarray(trgl_taus(1.0, 3))

    @jax.jit
    def everything(params):
        losses, aux = model.module_losses(params, x, y, taus)
        z = nn.Dense(4).apply({"params": params["enc"]}, x)
        pens = []
        for k in range(3):
            pk = jax.tree_util.tree_map(lambda a: a[k], params["flows"])
            z, res, _ = flow.residuals(pk, z)
            pens.append(transport_penalty(res, "batch_mean"))
        g_sum = jax.grad(lambda p: model.loss(p, x, y, taus)[0])(params)
        g_2 = jax.grad(lambda p: model.module_losses(p, x, y, taus)[0][2])(params)
        g_act = jax.grad(lambda p: model.loss(p, x, y, taus, active=2)[0])(params)
        return losses, aux, jnp.stack(pens), g_sum, g_2, g_act

    losses, aux, pens, g_sum, g_2, g_act = everything(params)
    # loss_k = CE_k + penalty_k / (2 tau_k); the penalty recomputed from the module's own flow
    np.testing.assert_allclose(aux["transport"], pens, rtol=1e-5)
    np.testing.assert_allclose(losses[1:], aux["ce"][1:] + pens / (2 * taus), rtol=1e-5)
    # parallel: d(sum)/d(module k) == d(loss_k)/d(module k) (inputs detached)
    leaf = lambda g: g["flows"]["Dense_0"]["kernel"][1]
    np.testing.assert_allclose(leaf(g_sum), leaf(g_2), rtol=1e-5, atol=1e-7)
    # sequential: only the active module (and its head) receives gradients
    kern = g_act["flows"]["Dense_0"]["kernel"]
    assert float(jnp.abs(kern[1]).max()) > 0
    assert float(jnp.abs(kern[0]).max()) == 0 and float(jnp.abs(kern[2]).max()) == 0
    assert float(jnp.abs(g_act["enc"]["kernel"]).max()) == 0
    # tau = inf is the greedy baseline: no penalty
    l_inf, aux_inf = jax.jit(lambda p: model.module_losses(p, x, y, jnp.full(3, math.inf)))(params)
    np.testing.assert_allclose(l_inf, aux_inf["ce"], rtol=1e-6)
    acc = jax.jit(model.accuracies)(params, x, y)
    assert acc.shape == (4,) and bool(jnp.all((acc >= 0) & (acc <= 1)))
