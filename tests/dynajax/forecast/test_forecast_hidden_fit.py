"""Training partially observed models: windows, the horizon curriculum, keep-best through
``train.fit``, PKnI's training and rollout, the restructuring regressor."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.forecast import hidden as hd
from dynajax.forecast.hidden_baselines import PKnI, fit_pkni, fit_restructuring, pkni_forecast


class PixelLinear(nn.Module):
    """``dX/dt = A X`` at every pixel (channels-first)."""

    @nn.compact
    def __call__(self, x):
        a = self.param("A", nn.initializers.zeros, (x.shape[-3], x.shape[-3]))
        return jnp.einsum("cd,...dhw->...chw", a, x)


def test_windows_line_up_with_the_sequences():
    states = np.arange(2 * 7 * 3 * 2 * 2, dtype=np.float32).reshape(2, 7, 3, 2, 2)
    w = hd.windows(states, [0, 2], 4, 2)
    assert w["obs"].shape == (2 * 4, 4, 2, 2, 2) and w["x0"].shape == (8, 3, 2, 2)
    i, s = 1, 3  # window 7: sequence 1, start 3
    np.testing.assert_array_equal(w["obs"][4 * i + s], states[i, s:s + 4][:, [0, 2]])
    np.testing.assert_array_equal(w["x0"][4 * i + s], states[i, s + 1])  # the last context frame
    one = hd.windows(states, [1], 5, 4, starts=(2,))
    np.testing.assert_array_equal(one["obs"][:, :, 0], states[:, 2:7, 1])
    with pytest.raises(ValueError, match="windows inside"):
        hd.windows(states, [0], 5, 4, starts=(3,))


def test_curriculum_stages_cover_the_steps_and_end_at_the_full_horizon():
    stages = hd.curriculum_stages(8, 401, ((0.25, 0.3), (0.5, 0.3), (1.0, 0.4)))
    assert [h for h, _ in stages] == [2, 4, 8]
    assert sum(n for _, n in stages) == 401 and stages[0][1] == round(0.3 * 401)
    assert hd.curriculum_stages(6, 10) == [(6, 10)]  # default: the full horizon throughout
    for bad in (((0.5, 1.0),), ((1.0, 0.5),), ((0.5, 0.0), (1.0, 1.0)), ((2.0, 0.5), (1.0, 0.5))):
        with pytest.raises(ValueError, match="curriculum"):
            hd.curriculum_stages(8, 100, bad)


def _linear_windows(key, n, T, A, dt=0.2):
    x0 = jax.random.normal(key, (n, 2, 3, 3))
    flow = jax.scipy.linalg.expm(dt * A)
    xs = [x0]
    for _ in range(T):
        xs.append(jnp.einsum("cd,bdhw->bchw", flow, xs[-1]))
    states = np.asarray(jnp.stack(xs, axis=1))  # [n, T + 1, 2, 3, 3]
    return hd.windows(states, [0], T + 1, 1)  # context K = 1, observe channel 0 only


@pytest.mark.slow
def test_fit_keeps_the_best_validation_across_curriculum_stages(rng):
    A = jnp.array([[-0.3, 1.0], [-1.0, -0.1]])
    k1, k2, k3 = jax.random.split(rng, 3)
    train_w, val_w = _linear_windows(k1, 32, 4, A), _linear_windows(k2, 8, 4, A)
    model = hd.HiddenModel(PixelLinear(), hd.ChannelProjection([0], 2), setting="canonical", n_context=1,
                           interval=0.2, substeps=2)
    res = hd.fit(model, train_w, val_w, key=k3, steps=60, lr=0.05, batch_size=8, val_every=10,
                 curriculum=((0.5, 0.5), (1.0, 0.5)))
    val = res.history["val_loss"]
    assert int(res.state.step) == 60 and len(res.history["loss"]) == 60
    assert res.history["val_step"].tolist() == [10, 20, 30, 40, 50, 60]
    assert float(res.best_val) == val.min() and val.min() < 0.2 * val[0]  # it learns the hidden rotation
    # the kept parameters are those of the best validation (the fit term on the full horizon)
    again = hd.make_loss(model)(res.best_params, jax.tree_util.tree_map(jnp.asarray, val_w), rng)[1]["fit"]
    np.testing.assert_allclose(float(again), float(res.best_val), rtol=1e-5)
    with pytest.raises(ValueError, match="same length"):
        hd.fit(model, train_w, {k: v[:, :3] if k == "obs" else v for k, v in val_w.items()}, key=k3, steps=2, lr=0.1,
               batch_size=2, val_every=1)


@pytest.mark.slow
def test_pkni_trains_and_rolls_out(rng):
    frames = jax.random.uniform(rng, (4, 6, 1, 8, 8))
    train_w = {"obs": np.asarray(frames), "x0": np.zeros((4, 1, 8, 8), np.float32)}
    net = PKnI(width=4, depth=1)
    res = fit_pkni(net, train_w, train_w, key=rng, n_context=3, steps=4, lr=1e-3, batch_size=2, val_every=2)
    assert np.isfinite(res.best_val) and res.history["val_step"].tolist() == [2, 4]
    pred, w = pkni_forecast(net, res.best_params, frames[:, :3, 0], 5)
    assert pred.shape == (6, 4, 1, 8, 8) and w.shape == (6, 4, 2, 8, 8)
    np.testing.assert_array_equal(pred[0, :, 0], frames[:, 2, 0])  # index 0: the last context frame
    assert not w[0].any() and np.isfinite(pred).all()
    with pytest.raises(ValueError, match="single-channel"):
        fit_pkni(net, train_w, train_w, key=rng, n_context=6, steps=1, lr=1e-3, batch_size=2, val_every=1)


@pytest.mark.slow
def test_restructuring_regressor_learns_a_pixelwise_map(rng):
    x = jax.random.normal(rng, (64, 3, 8, 8))
    y = jnp.stack([x[:, 0] - x[:, 2], 0.5 * x[:, 1]], axis=1)  # a per-pixel linear map of the channels
    reg = fit_restructuring(x, y, key=rng, width=8, n_steps=300, lr=1e-2, batch_size=16)
    assert reg(x).shape == y.shape
    assert float(jnp.mean((reg(x) - y) ** 2)) < 0.05 * float(jnp.mean(y**2))
