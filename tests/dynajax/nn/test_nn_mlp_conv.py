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

# Models are run under jax.jit (one compilation per test) rather than op by op.

# ---------------------------------------------------------------- MLP


@pytest.mark.parametrize("batch", [(), (3,), (2, 4)])
def test_mlp_shapes(rng, batch):
    model = MLP((16, 16, 5), activation="tanh")
    x = jnp.ones((*batch, 3))
    params = jax.eval_shape(model.init, rng, x)
    assert params["params"]["Dense_0"]["kernel"].shape == (3, 16)
    assert jax.eval_shape(model.apply, params, x).shape == (*batch, 5)


def test_mlp_matches_manual_forward(rng, randn):
    model = MLP((7, 4), activation="tanh", final_activation="sigmoid")
    x = randn((5, 3))
    p = jax.jit(model.init)(rng, x)["params"]
    h = np.tanh(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    ref = 1 / (1 + np.exp(-(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"])))
    np.testing.assert_allclose(jax.jit(model.apply)({"params": p}, x), ref, rtol=1e-5, atol=1e-6)


def test_mlp_no_bias(rng):
    p = jax.eval_shape(MLP((4, 2), use_bias=False).init, rng, jnp.ones((3,)))["params"]
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


def test_circular_conv_matches_roll_oracle(rng, randn):
    x = randn((2, 6, 7, 3))
    model = ConvNet((4,), kernel_size=3, padding="circular")
    p = jax.jit(model.init)(rng, x)["params"]["Conv_0"]
    out = jax.jit(model.apply)({"params": {"Conv_0": p}}, x)
    ref = jax.jit(_circ_corr_oracle)(x, p["kernel"], p["bias"])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def _outputs_on_rolls(model, params, x, shifts, axes):
    """The model on x and on each rolled x, in one compiled call (leading axes are batch)."""
    xs = jnp.stack([x] + [jnp.roll(x, s, axis=axes) for s in shifts])
    ys = jax.jit(model.apply)(params, xs)
    return ys[0], ys[1:]


@pytest.mark.parametrize(
    "kernel_size, norm", [(3, None), ((5, 3), "batch")]
)
@pytest.mark.slow
def test_circular_convnet_commutes_with_rolls(rng, kernel_size, norm, randn):
    x = randn((2, 8, 9, 3))
    model = ConvNet((6, 6, 2), kernel_size=kernel_size, padding="circular", activation="swish", norm=norm)
    params = jax.jit(model.init)(rng, x)
    shifts = [(1, 0), (0, -2), (3, 5)]
    if norm == "batch":  # batch statistics couple the stacked inputs: apply one by one
        apply = jax.jit(model.apply)
        y, ys = apply(params, x), [apply(params, jnp.roll(x, s, axis=(1, 2))) for s in shifts]
    else:
        y, ys = _outputs_on_rolls(model, params, x, shifts, (-3, -2))
    assert y.shape == (2, 8, 9, 2)
    for y_rolled_in, shift in zip(ys, shifts):
        np.testing.assert_allclose(y_rolled_in, jnp.roll(y, shift, axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_circular_convnet_1d_commutes_with_rolls(rng, randn):
    x = randn((3, 10, 2))
    model = ConvNet((5, 1), kernel_size=(3,), padding="circular")
    params = jax.jit(model.init)(rng, x)
    y, (y_rolled_in,) = _outputs_on_rolls(model, params, x, [4], -2)
    assert model.spatial_ndim == 1 and y.shape == (3, 10, 1)
    np.testing.assert_allclose(y_rolled_in, jnp.roll(y, 4, axis=1), atol=1e-5)


def test_zero_padding_preserves_shape_but_not_roll_equivariance(rng, randn):
    x = randn((2, 8, 8, 3))
    model = ConvNet((6, 2), kernel_size=3, padding="zeros")
    params = jax.jit(model.init)(rng, x)
    y, (rolled,) = _outputs_on_rolls(model, params, x, [1], -3)
    assert y.shape == (2, 8, 8, 2)
    assert jax.eval_shape(model.apply, params, x[0]).shape == (8, 8, 2)  # no batch axis
    assert not np.allclose(rolled, jnp.roll(y, 1, axis=1), atol=1e-3)
    # the interior agrees: zero padding only changes rows near the boundary
    np.testing.assert_allclose(rolled[:, 3:-2], jnp.roll(y, 1, axis=1)[:, 3:-2], atol=1e-5)


def test_reflect_padding_shape(rng):
    x = jnp.ones((1, 5, 6, 2))
    model = ConvNet((3,), kernel_size=3, padding="reflect")
    variables = jax.eval_shape(model.init, rng, x)
    assert jax.eval_shape(model.apply, variables, x).shape == (1, 5, 6, 3)


def test_batch_stat_norm_normalises(randn):
    x = 3.0 + 2.0 * randn((4, 5, 5, 3))
    norm = BatchStatNorm()
    y = jax.jit(norm.apply)({"params": {"scale": jnp.ones(3), "bias": jnp.zeros(3)}}, x)
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
        jax.eval_shape(ConvNet((4,)).init, rng, jnp.ones((8, 8)))


# ---------------------------------------------------------------- residual blocks


def test_residual_wraps_module(rng, randn):
    f = MLP((8, 3), activation="tanh")
    x = randn((4, 3))
    block = Residual(f, dt=0.1)
    params = jax.jit(block.init)(rng, x)

    @jax.jit
    def both(params, x):
        return block.apply(params, x), x + 0.1 * f.apply({"params": params["params"]["f"]}, x)

    y, expected = both(params, x)
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_residual_shape_mismatch(rng):
    with pytest.raises(ValueError, match="preserve the shape"):
        jax.eval_shape(Residual(MLP((2,))).init, rng, jnp.ones((3,)))


def test_mlp_residual_block(rng, randn):
    x = randn((5, 4))
    block = MLPResidualBlock(hidden=(16,), dt=0.5)
    params = jax.jit(block.init)(rng, x)

    @jax.jit
    def outputs(params, x):
        branch = MLP((16, 4)).apply({"params": params["params"]["branch"]}, x)
        still = MLPResidualBlock(hidden=(16,), dt=0.0).apply(params, x)
        return block.apply(params, x), branch, still

    y, branch, still = outputs(params, x)
    np.testing.assert_allclose(y, x + 0.5 * branch, rtol=1e-6)
    np.testing.assert_allclose(still, x)


def test_conv_residual_block_circular(rng, randn):
    x = randn((1, 6, 6, 2))
    block = ConvResidualBlock(hidden=(4,), padding="circular", dt=0.3)
    params = jax.jit(block.init)(rng, x)
    y, (y_rolled_in,) = _outputs_on_rolls(block, params, x, [2], -2)
    assert y.shape == x.shape
    np.testing.assert_allclose(y_rolled_in, jnp.roll(y, 2, axis=2), atol=1e-5)


def test_residual_bad_config():
    with pytest.raises(ValueError, match="padding"):
        ConvResidualBlock(padding="wrap")
    with pytest.raises(ValueError, match="dt"):
        MLPResidualBlock(dt="1")
