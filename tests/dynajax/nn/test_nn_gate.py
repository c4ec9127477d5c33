"""ZeroGated: zero output at initialisation, a gradient on the gate, scale times the gate after."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.nn import MLP, ZeroGated


def test_zero_gated_starts_at_zero_and_scales_the_wrapped_network(rng):
    x = jax.random.normal(rng, (5, 3))
    inner = MLP((8, 3), activation="tanh")
    gated = ZeroGated(inner, scale=100.0)
    params = gated.init(rng, x)
    assert float(params["params"]["gate"]) == 0.0
    np.testing.assert_array_equal(gated.apply(params, x), np.zeros((5, 3)))
    grad = jax.grad(lambda p: jnp.sum(gated.apply(p, x) * x))(params)
    assert abs(float(grad["params"]["gate"])) > 0
    # with g = 0.01 the output is 100 * 0.01 = 1 times the wrapped network's
    params = {"params": {**params["params"], "gate": jnp.float32(0.01)}}
    want = inner.apply({"params": params["params"]["f"]}, x)
    np.testing.assert_allclose(gated.apply(params, x), want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("scale", [0.0, -1.0, True])
def test_zero_gated_rejects_a_non_positive_scale(scale):
    with pytest.raises(ValueError, match="scale must be a positive"):
        ZeroGated(MLP((2,)), scale=scale)
