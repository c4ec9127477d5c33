"""LEADS networks: channels-first grid fields, the Gray-Scott output scale, field shapes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.forecast.leads_nets import GridField, conv_field, fno_field, linear_field, mlp_field
from dynajax.nn import ConvNet


@pytest.mark.slow
def test_grid_field_is_the_inner_net_on_channels_last(rng):
    inner = ConvNet((3, 2), padding="circular", activation="swish")
    x = jax.random.normal(rng, (4, 5, 2, 8, 8))  # [env, traj, C, H, W]
    field = GridField(inner, scale=0.5)
    params = field.init(rng, x)
    out = field.apply(params, x)
    ref = inner.apply({"params": params["params"]["inner"]}, jnp.moveaxis(x, 2, -1).reshape(20, 8, 8, 2))
    np.testing.assert_allclose(out, 0.5 * jnp.moveaxis(ref.reshape(4, 5, 8, 8, 2), -1, 2), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_conv_field_scale_and_periodicity(rng):
    x = jax.random.normal(rng, (3, 2, 8, 8))
    small, unit = conv_field(2, width=4), conv_field(2, width=4, scale=1.0)
    params = small.init(rng, x)
    np.testing.assert_allclose(small.apply(params, x), 1e-3 * unit.apply(params, x), rtol=1e-5)
    # circular padding: shifting the grid shifts the field
    shifted = small.apply(params, jnp.roll(x, 3, axis=-1))
    np.testing.assert_allclose(shifted, jnp.roll(small.apply(params, x), 3, axis=-1), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("make, shape", [
    (lambda: mlp_field(2), (5, 2)),
    (lambda: linear_field(8), (5, 8)),
    (lambda: fno_field(1, width=4), (2, 1, 16, 16)),
])
@pytest.mark.slow
def test_fields_keep_the_state_shape(rng, make, shape):
    net = make()
    x = jax.random.normal(rng, shape)
    assert net.apply(net.init(rng, x), x).shape == shape


def test_linear_field_has_no_bias(rng):
    params = linear_field(8).init(rng, jnp.ones(8))["params"]
    assert set(params) == {"kernel"} and isinstance(linear_field(8), nn.Dense)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="width"):
        conv_field(2, width=0)
    with pytest.raises(ValueError, match="depth"):
        mlp_field(2, depth=0)
