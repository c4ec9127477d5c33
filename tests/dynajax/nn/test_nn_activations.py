import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.nn import ACTIVATIONS, MLP, Swish, get_activation, swish_beta

XS = np.array([-3.0, -1.0, -0.25, 0.0, 0.5, 2.0], dtype=np.float32)


def _swish_ref(x, beta):
    softplus = math.log1p(math.exp(beta))
    return x / (1.0 + np.exp(-x * softplus)) / 1.1


def test_swish_init_matches_leads_formula(rng):
    module = Swish()
    params = module.init(rng, jnp.asarray(XS))
    beta = params["params"]["beta"]
    assert beta.shape == ()
    assert float(beta) == 0.5
    out = module.apply(params, jnp.asarray(XS))
    np.testing.assert_allclose(out, _swish_ref(XS, 0.5), rtol=1e-6, atol=1e-7)
    # known point by hand: softplus(0.5) = 0.974077, f(2) = 2 * sigmoid(1.948154) / 1.1
    np.testing.assert_allclose(out[-1], 2.0 / (1 + math.exp(-1.948154)) / 1.1, rtol=1e-5)


@pytest.mark.parametrize("beta", [-2.0, 0.0, 3.0])
def test_swish_other_beta(beta):
    params = {"params": {"beta": jnp.asarray(beta, jnp.float32)}}
    out = Swish().apply(params, jnp.asarray(XS))
    np.testing.assert_allclose(out, _swish_ref(XS, beta), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(swish_beta(jnp.asarray(XS), beta), out, rtol=1e-6)


def test_swish_beta_is_learnable(rng):
    params = Swish().init(rng, jnp.asarray(XS))
    g = jax.grad(lambda p: jnp.sum(Swish().apply(p, jnp.asarray(XS))))(params)
    assert abs(float(g["params"]["beta"])) > 1e-3


def test_mlp_swish_has_one_beta_per_hidden_layer(rng):
    params = jax.eval_shape(MLP((4, 4, 4, 1), activation="swish").init, rng, jnp.ones((2,)))["params"]
    betas = sorted(k for k in params if k.startswith("Swish"))
    assert betas == ["Swish_0", "Swish_1", "Swish_2"]


def test_named_activations_values():
    x = jnp.asarray(XS)
    expected = {
        "relu": np.maximum(XS, 0),
        "tanh": np.tanh(XS),
        "softplus": np.log1p(np.exp(XS)),
        "gelu": np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in XS]),
        "elu": np.where(XS > 0, XS, np.expm1(XS)),
        "sigmoid": 1 / (1 + np.exp(-XS)),
        "silu": XS / (1 + np.exp(-XS)),
        "leaky_relu": np.where(XS > 0, XS, 0.01 * XS),
        "identity": XS,
    }
    assert set(expected) == set(ACTIVATIONS)
    for name, ref in expected.items():
        np.testing.assert_allclose(get_activation(name)(x), ref, rtol=1e-5, atol=1e-6, err_msg=name)


def test_get_activation_swish_and_callable():
    assert isinstance(get_activation("swish"), Swish)
    f = lambda x: 2 * x  # noqa: E731
    assert get_activation(f) is f


@pytest.mark.parametrize("bad", ["ReLU", "swish2", "", 3])
def test_unknown_activation_raises(bad):
    with pytest.raises(ValueError, match="allowed: relu"):
        get_activation(bad)
    with pytest.raises(ValueError, match="allowed"):
        MLP((2,), activation=bad)
