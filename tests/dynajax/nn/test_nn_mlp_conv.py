import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.nn import (
    MLP,
    BatchStatNorm,
    ConvNet,
    ConvResidualBlock,
    MLPResidualBlock,
    Residual,
)

# ---------------------------------------------------------------- MLP


@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_mlp_shapes(rng, batch):
    model = MLP((16, 16, 5), activation="tanh")
    x = jnp.ones((*batch, 3))
    params = model.init(rng, x)
    assert model.apply(params, x).shape == (*batch, 5)


def test_mlp_matches_manual_forward(rng):
    model = MLP((7, 4), activation="tanh", final_activation="sigmoid")
    x = jax.random.normal(rng, (5, 3))
    p = model.init(rng, x)["params"]
    h = np.tanh(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    ref = 1 / (1 + np.exp(-(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"])))
    np.testing.assert_allclose(model.apply({"params": p}, x), ref, rtol=1e-5, atol=1e-6)


def test_mlp_no_bias(rng):
    p = MLP((4, 2), use_bias=False).init(rng, jnp.ones((3,)))["params"]
    assert set(p["Dense_0"]) == {"kernel"}


@pytest.mark.parametrize("features", [(), (0,), (4, -1), (2.5,)])
def test_mlp_bad_features(features):
    with pytest.raises(ValueError, match="features"):
        MLP(features)


# ---------------------------------------------------------------- ConvNet


def _circ_corr_oracle(x, kernel, bias):
    """Circular cross-correlation by rolls: y[i, j] = sum_ab x[i + a - 1, j + b - 1] K[a, b]."""
    kh, kw = kernel.shape[:2]
    y = 0.0
    for a in range(kh):
        for b in range(kw):
            shifted = jnp.roll(x, (-(a - (kh - 1) // 2), -(b - (kw - 1) // 2)), axis=(-3, -2))
            y = y + shifted @ kernel[a, b]
    return y + bias


def test_circular_conv_matches_roll_oracle(rng):
    x = jax.random.normal(rng, (2, 6, 7, 3))
    model = ConvNet((4,), kernel_size=3, padding="circular")
    p = model.init(rng, x)["params"]["Conv_0"]
    out = model.apply({"params": {"Conv_0": p}}, x)
    np.testing.assert_allclose(out, _circ_corr_oracle(x, p["kernel"], p["bias"]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [3, (5, 3)])
@pytest.mark.parametrize("norm", [None, "batch"])
def test_circular_convnet_commutes_with_rolls(rng, kernel_size, norm):
    x = jax.random.normal(rng, (2, 8, 9, 3))
    model = ConvNet((6, 6, 2), kernel_size=kernel_size, padding="circular", activation="swish", norm=norm)
    params = model.init(rng, x)
    y = model.apply(params, x)
    assert y.shape == (2, 8, 9, 2)
    for shift in [(1, 0), (0, -2), (3, 5)]:
        y_rolled_in = model.apply(params, jnp.roll(x, shift, axis=(1, 2)))
        np.testing.assert_allclose(y_rolled_in, jnp.roll(y, shift, axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_circular_convnet_1d_commutes_with_rolls(rng):
    x = jax.random.normal(rng, (3, 10, 2))
    model = ConvNet((5, 1), kernel_size=(3,), padding="circular")
    params = model.init(rng, x)
    y = model.apply(params, x)
    assert model.spatial_ndim == 1 and y.shape == (3, 10, 1)
    np.testing.assert_allclose(model.apply(params, jnp.roll(x, 4, axis=1)), jnp.roll(y, 4, axis=1), atol=1e-5)


def test_zero_padding_preserves_shape_but_not_roll_equivariance(rng):
    x = jax.random.normal(rng, (2, 8, 8, 3))
    model = ConvNet((6, 2), kernel_size=3, padding="zeros")
    params = model.init(rng, x)
    y = model.apply(params, x)
    assert y.shape == (2, 8, 8, 2)
    assert model.apply(params, x[0]).shape == (8, 8, 2)  # no batch axis
    rolled = model.apply(params, jnp.roll(x, 1, axis=1))
    assert not np.allclose(rolled, jnp.roll(y, 1, axis=1), atol=1e-3)
    # interior agrees: zero padding only changes the boundary rows
    np.testing.assert_allclose(rolled[:, 3:-2], jnp.roll(y, 1, axis=1)[:, 3:-2], atol=1e-5)


def test_reflect_padding_shape(rng):
    x = jnp.ones((1, 5, 6, 2))
    model = ConvNet((3,), kernel_size=3, padding="reflect")
    assert model.apply(model.init(rng, x), x).shape == (1, 5, 6, 3)


def test_batch_stat_norm_normalises(rng):
    x = 3.0 + 2.0 * jax.random.normal(rng, (4, 5, 5, 3))
    y = BatchStatNorm().apply(BatchStatNorm().init(rng, x), x)
    np.testing.assert_allclose(jnp.mean(y, axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(jnp.var(y, axis=(0, 1, 2)), 1.0, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"padding": "periodic"}, "allowed: zeros, circular, reflect"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"norm": "layer"}, "norm"),
        ({"activation": "swishy"}, "allowed"),
    ],
)
def test_convnet_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvNet((4,), **kwargs)


def test_convnet_input_too_small(rng):
    with pytest.raises(ValueError, match="at least 3 axes"):
        ConvNet((4,)).init(rng, jnp.ones((8, 8)))


# ---------------------------------------------------------------- residual blocks


def test_residual_wraps_module(rng):
    f = MLP((8, 3), activation="tanh")
    x = jax.random.normal(rng, (4, 3))
    block = Residual(f, dt=0.1)
    params = block.init(rng, x)
    expected = x + 0.1 * f.apply({"params": params["params"]["f"]}, x)
    np.testing.assert_allclose(block.apply(params, x), expected, rtol=1e-6)


def test_residual_shape_mismatch(rng):
    with pytest.raises(ValueError, match="preserve the shape"):
        Residual(MLP((2,))).init(rng, jnp.ones((3,)))


def test_mlp_residual_block(rng):
    x = jax.random.normal(rng, (5, 4))
    block = MLPResidualBlock(hidden=(16,), dt=0.5)
    params = block.init(rng, x)
    y = block.apply(params, x)
    branch = MLP((16, 4)).apply({"params": params["params"]["branch"]}, x)
    np.testing.assert_allclose(y, x + 0.5 * branch, rtol=1e-6)
    np.testing.assert_allclose(MLPResidualBlock(hidden=(16,), dt=0.0).apply(params, x), x)


def test_conv_residual_block_circular(rng):
    x = jax.random.normal(rng, (1, 6, 6, 2))
    block = ConvResidualBlock(hidden=(4,), padding="circular", dt=0.3)
    params = block.init(rng, x)
    y = block.apply(params, x)
    assert y.shape == x.shape
    np.testing.assert_allclose(block.apply(params, jnp.roll(x, 2, axis=2)), jnp.roll(y, 2, axis=2), atol=1e-5)


def test_residual_bad_config():
    with pytest.raises(ValueError, match="padding"):
        ConvResidualBlock(padding="wrap")
    with pytest.raises(ValueError, match="dt"):
        MLPResidualBlock(dt="1")
