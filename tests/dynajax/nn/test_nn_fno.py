import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.nn import FNO2d, SpectralConv2d, as_complex


@pytest.mark.parametrize("batch", [(), (2,)])
def test_fno_shapes(rng, batch):
    x = jnp.ones((*batch, 8, 12, 3))
    model = FNO2d(modes=(3, 4), width=6, out_channels=2, depth=2, fc_width=16)
    params = jax.eval_shape(model.init, rng, x)
    assert jax.eval_shape(model.apply, params, x).shape == (*batch, 8, 12, 2)
    p = params["params"]
    assert p["SpectralConv2d_0"]["weights1"].shape == (2, 3, 4, 6, 6)
    # complex weights are stored real (optax-safe)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(params))


def test_fno_append_grid_shapes(rng):
    x = jnp.ones((2, 8, 8, 1))
    model = FNO2d(modes=2, width=4, out_channels=1, depth=1, fc_width=8, append_grid=True)
    params = jax.eval_shape(model.init, rng, x)
    assert params["params"]["lift"]["kernel"].shape == (3, 4)
    assert jax.eval_shape(model.apply, params, x).shape == (2, 8, 8, 1)


@pytest.mark.parametrize("modes", [(2, 3), (4, 7)])  # (4, 7): 2*modes1 = H and the Nyquist column
def test_spectral_conv_roll_equivariant(rng, modes, randn):
    x = randn((2, 8, 12, 3))
    layer = SpectralConv2d(5, *modes)
    params = jax.jit(layer.init)(rng, x)
    shifts = [(1, 0), (0, 5), (-3, 7)]
    xs = jnp.stack([x] + [jnp.roll(x, s, axis=(1, 2)) for s in shifts])
    ys = jax.jit(layer.apply)(params, xs)  # extra leading axes are batch axes
    assert ys.shape == (4, 2, 8, 12, 5)
    for y_rolled_in, shift in zip(ys[1:], shifts):
        np.testing.assert_allclose(y_rolled_in, jnp.roll(ys[0], shift, axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_fno_roll_equivariant(rng, randn):
    x = randn((1, 8, 8, 2))
    model = FNO2d(modes=3, width=4, out_channels=1, depth=2, fc_width=8, activation="swish")
    params = jax.jit(model.init)(rng, x)
    y, y_rolled_in = jax.jit(model.apply)(params, jnp.stack([x, jnp.roll(x, (2, -3), axis=(1, 2))]))
    np.testing.assert_allclose(y_rolled_in, jnp.roll(y, (2, -3), axis=(1, 2)), atol=1e-5)


def test_spectral_conv_unit_weights_is_low_pass(randn):
    """With weights 1 + 0j and one channel, the layer is the projection onto the kept modes."""
    h, w, m1, m2 = 8, 10, 2, 3
    x = randn((h, w, 1))
    ones = jnp.stack([jnp.ones((m1, m2, 1, 1)), jnp.zeros((m1, m2, 1, 1))])
    y = jax.jit(SpectralConv2d(1, m1, m2).apply)({"params": {"weights1": ones, "weights2": ones}}, x)
    # Li et al. keep rows [:m1] and [-m1:] of the first axis, i.e. k1 in [-m1, m1 - 1]
    # (asymmetric), and columns k2 in [0, m2) of the half spectrum. On the full spectrum the
    # columns k2 < 0 are the mirror images (k1 -> -k1); the real part symmetrises k2 = 0.
    k1 = np.fft.fftfreq(h, 1 / h)[:, None]
    k2 = np.fft.fftfreq(w, 1 / w)[None, :]
    rows = (k1 >= -m1) & (k1 < m1)
    mirrored = (-k1 >= -m1) & (-k1 < m1)
    mask = (rows & (k2 >= 0) & (k2 < m2)) | (mirrored & (k2 < 0) & (-k2 < m2))
    ref = np.real(np.fft.ifft2(mask * np.fft.fft2(np.asarray(x[..., 0]))))
    np.testing.assert_allclose(y[..., 0], ref, atol=1e-5)


def test_as_complex():
    w = jnp.stack([jnp.full((2, 3), 1.5), jnp.full((2, 3), -2.0)])
    c = as_complex(w)
    assert c.dtype == jnp.complex64 and c.shape == (2, 3)
    np.testing.assert_array_equal(c, 1.5 - 2.0j)


@pytest.mark.parametrize("modes", [(5, 2), (2, 7)])
def test_modes_too_large_raise(rng, modes):
    with pytest.raises(ValueError, match="do not fit a 8x10 grid"):
        jax.eval_shape(SpectralConv2d(2, *modes).init, rng, jnp.ones((8, 10, 1)))
    with pytest.raises(ValueError, match="do not fit"):
        jax.eval_shape(FNO2d(modes=modes, width=2, out_channels=1, depth=1).init, rng, jnp.ones((1, 8, 10, 1)))


@pytest.mark.parametrize("modes", [0, (1, 2, 3), (2, 0), "6"])
def test_fno_bad_modes(modes):
    with pytest.raises(ValueError, match="modes"):
        FNO2d(modes=modes, width=4, out_channels=1)


def test_fno_bad_sizes():
    with pytest.raises(ValueError, match="width"):
        FNO2d(modes=2, width=0, out_channels=1)
    with pytest.raises(ValueError, match="out_channels"):
        SpectralConv2d(0, 2, 2)
