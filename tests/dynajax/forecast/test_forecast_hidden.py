"""Partially observed models: recovery of a known field, scheduled sampling, metrics, unroll rule."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynajax import train
from dynajax.forecast import hidden as hd
from dynajax.forecast.hidden_baselines import ResNet, UNet


class PixelLinear(nn.Module):
    """``dX/dt = A X`` at every pixel (channels-first); ``A`` is ``[out, C]``."""

    out: int | None = None

    @nn.compact
    def __call__(self, x):
        a = self.param("A", nn.initializers.zeros, (self.out or x.shape[-3], x.shape[-3]))
        return jnp.einsum("cd,...dhw->...chw", a, x)


@pytest.mark.slow
def test_identity_observation_recovers_a_linear_field(rng):
    A = jnp.array([[-0.5, 1.0], [-1.0, -0.2]])
    k1, k2 = jax.random.split(rng)
    x0 = jax.random.normal(k1, (16, 2, 4, 4))
    dt, T = 0.2, 3
    flow = jax.scipy.linalg.expm(dt * A)
    xs = [x0]
    for _ in range(T):
        xs.append(jnp.einsum("cd,bdhw->bchw", flow, xs[-1]))
    obs = jnp.stack(xs, axis=1)  # context K = 1 (Y_0 = X_0), then Y_1..Y_T
    model = hd.HiddenModel(PixelLinear(), hd.ChannelProjection([0, 1], 2), setting="canonical",
                           n_context=1, interval=dt, substeps=2, method="rk4")
    params = model.init(k2, obs[0, :1])
    opt = optax.adam(0.05)
    state = train.init_state(params, opt, key=k2)
    step = jax.jit(hd.make_train_step(model, opt))
    batch = {"obs": obs, "x0": x0}
    for _ in range(150):
        state, _ = step(state, batch)
    np.testing.assert_allclose(state.params["field"]["params"]["A"], A, atol=5e-3)


@pytest.mark.slow
def test_scheduled_sampling_and_initial_states(rng):
    H = hd.ChannelProjection([0], 3)
    model = hd.HiddenModel(PixelLinear(), H, estimator=PixelLinear(3), setting="joint", n_context=1,
                           substeps=1)
    x0 = jax.random.normal(rng, (2, 3, 4, 4))
    params = {"field": {"params": {"A": jnp.eye(3) * 0.3 + 0.1}}, "estimator": {"params": {"A": jnp.ones((3, 1))}}}
    obs = jax.random.normal(jax.random.fold_in(rng, 1), (3, 2, 1, 4, 4))
    roll = jax.jit(lambda p, o, key, prob: hd.rollout(model, p, x0, 3, obs=o, teacher_prob=prob, key=key))
    free = hd.rollout(model, params, x0, 3)
    forced = roll(params, obs, rng, 1.0)
    never = roll(params, obs, rng, 0.0)
    np.testing.assert_allclose(never, free, rtol=1e-6)
    # with p = 1, X_2 is advanced from (Y_1, hidden part of X_1): one Euler step by hand
    x1c = jnp.concatenate([obs[0], free[1][:, 1:]], axis=1)
    expect = x1c + jnp.einsum("cd,bdhw->bchw", params["field"]["params"]["A"], x1c)
    np.testing.assert_allclose(forced[2], expect, rtol=1e-5)
    # setting 1: the observed channel of X0 is Y0, the hidden ones come from g (here Y0 copied)
    ctx = obs[:1].swapaxes(0, 1)  # [B, K=1, 1, H, W]
    x0_joint = model.initial_state(params, ctx)
    np.testing.assert_allclose(x0_joint, jnp.repeat(ctx[:, 0], 3, axis=1), rtol=1e-6)


def test_pointwise_linear_correct_is_least_norm():
    H = hd.PointwiseLinear(((1.0, 1.0, 0.0),))
    x = jnp.arange(3.0).reshape(3, 1, 1) * jnp.ones((3, 2, 2))
    y = jnp.full((1, 2, 2), 5.0)
    xc = H.correct(x, y)
    np.testing.assert_allclose(H(xc), y, rtol=1e-6)
    np.testing.assert_allclose(xc[:, 0, 0], [2.0, 3.0, 2.0], rtol=1e-6)  # moved along M^T only
    with pytest.raises(ValueError, match="full row rank"):
        hd.PointwiseLinear(((1.0, 0.0), (2.0, 0.0)))


def test_cosine_and_relative_error_against_brute_force(rng):
    u = jax.random.normal(rng, (3, 2, 5, 5))
    v = jax.random.normal(jax.random.fold_in(rng, 1), (3, 2, 5, 5))
    np.testing.assert_allclose(hd.velocity_cosine(u, u), 1.0, rtol=1e-6)
    np.testing.assert_allclose(hd.velocity_cosine(u, -u), -1.0, rtol=1e-6)
    un, vn = np.asarray(u), np.asarray(v)
    brute = [np.mean([un[b, :, i, j] @ vn[b, :, i, j] / np.linalg.norm(un[b, :, i, j]) / np.linalg.norm(vn[b, :, i, j])
                      for i in range(5) for j in range(5)]) for b in range(3)]
    np.testing.assert_allclose(hd.velocity_cosine(u, v), brute, rtol=1e-5)
    np.testing.assert_allclose(hd.relative_error(u, v), [np.sum((un[b] - vn[b]) ** 2) / np.sum(vn[b] ** 2) for b in range(3)], rtol=1e-5)
    pw = [np.mean(np.linalg.norm(un[b] - vn[b], axis=0) / (np.linalg.norm(vn[b], axis=0) + 1e-6)) for b in range(3)]
    np.testing.assert_allclose(hd.relative_error(u, v, form="pointwise"), pw, rtol=1e-5)
    per_step = np.arange(12.0).reshape(2, 6)
    assert hd.horizon_means(per_step, (1, 5)) == {1: 4.0, 5: np.mean(per_step[:, 1:6])}
    pen = hd.masked_zero_penalty()(jnp.ones((4, 2, 3, 2, 2)), {"mask": jnp.array([[[1, 0], [0, 0]]] * 2)})
    assert float(pen) == pytest.approx(3.0)


def test_unroll_rule_follows_convolutions(rng):
    x = jnp.zeros((3, 8, 8))
    for net, convolves in ((ResNet(3, width=2, n_down=1, n_blocks=1), True), (PixelLinear(), False)):
        p = jax.jit(net.init)(rng, x)
        # the convolution sits inside a jitted sub-program: the rule must look into sub-jaxprs
        fn = jax.jit(net.apply)
        assert hd.should_unroll(fn, p, x, backend="cpu") is convolves
        assert hd.should_unroll(fn, p, x, backend="gpu") is False
    assert jax.eval_shape(UNet(2, width=2, depth=1).init_with_output, rng, x)[0].shape == (2, 8, 8)


@pytest.mark.slow
def test_resnet_activation_option(rng):
    x = jax.random.normal(rng, (3, 8, 8))
    relu, gelu = ResNet(3, width=4, n_down=1, n_blocks=1), ResNet(3, width=4, n_down=1, n_blocks=1, activation="gelu")
    p = jax.jit(relu.init)(rng, x)  # same parameter tree: only the nonlinearity differs
    a, b = jax.jit(relu.apply)(p, x), jax.jit(gelu.apply)(p, x)
    assert a.shape == b.shape == x.shape and not np.allclose(a, b)
    with pytest.raises(ValueError, match="activation"):
        jax.eval_shape(ResNet(3, width=4, n_down=1, activation="no-such-activation").init, rng, x)
