import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.nn import MLP, default_kernel_init, get_initializer, normal, orthogonal, zeros


@pytest.mark.parametrize("shape, gain", [((6, 6), 1.0), ((10, 4), 0.2), ((3, 3, 4, 8), 0.2)])
def test_orthogonal_tall_columns(rng, shape, gain):
    w = orthogonal(gain)(rng, shape, jnp.float32)
    assert w.shape == shape
    m = np.asarray(w).reshape(-1, shape[-1])
    np.testing.assert_allclose(m.T @ m, gain**2 * np.eye(shape[-1]), atol=1e-5)


def test_orthogonal_wide_rows(rng):
    w = np.asarray(orthogonal(0.5)(rng, (3, 7), jnp.float32))
    np.testing.assert_allclose(w @ w.T, 0.25 * np.eye(3), atol=1e-5)


def test_orthogonal_is_random_not_identity(rng):
    a = orthogonal()(rng, (5, 5))
    b = orthogonal()(jax.random.key(1), (5, 5))
    assert not np.allclose(a, b)
    assert not np.allclose(a, np.eye(5))


@pytest.mark.parametrize("gain", [0.05, 2.0])
def test_normal_std_is_gain(rng, gain):
    w = np.asarray(normal(gain)(rng, (200, 500), jnp.float32), dtype=np.float64)
    n = w.size
    # std error of the sample std is gain / sqrt(2 n) ~ 0.1% of gain here: allow 6 of them
    assert abs(w.std() - gain) < 6 * gain / np.sqrt(2 * n)
    assert abs(w.mean()) < 6 * gain / np.sqrt(n)
    assert np.abs(w).max() > 3.5 * gain  # not truncated


def test_get_initializer(rng):
    w = get_initializer("orthogonal", gain=0.2)(rng, (4, 4))
    np.testing.assert_allclose(w.T @ w, 0.04 * np.eye(4), atol=1e-6)
    assert float(jnp.std(get_initializer("normal", 0.3)(rng, (400, 100)))) == pytest.approx(0.3, rel=0.02)
    assert get_initializer("default") is default_kernel_init
    assert get_initializer("zeros") is zeros
    f = orthogonal()
    assert get_initializer(f) is f


@pytest.mark.parametrize("bad", ["xavier", "Orthogonal", None])
def test_unknown_initializer_raises(bad):
    with pytest.raises(ValueError, match="allowed: orthogonal, normal"):
        get_initializer(bad)


@pytest.mark.parametrize("gain", [0.0, -1.0])
def test_bad_gain_raises(gain):
    with pytest.raises(ValueError, match="gain"):
        orthogonal(gain)
    with pytest.raises(ValueError, match="gain"):
        normal(gain)


def test_mlp_orthogonal_init_aphynity(rng):
    """APHYNITY's pendulum MLP: 2-200-200-2, orthogonal(0.2) kernels, zero biases."""
    params = jax.jit(MLP((200, 200, 2), kernel_init=orthogonal(0.2)).init)(rng, jnp.ones((2,)))["params"]
    for name in ("Dense_0", "Dense_1", "Dense_2"):
        k = np.asarray(params[name]["kernel"])
        small = min(k.shape)
        gram = k.T @ k if k.shape[0] >= k.shape[1] else k @ k.T
        np.testing.assert_allclose(gram, 0.04 * np.eye(small), atol=1e-5)
        np.testing.assert_array_equal(params[name]["bias"], 0.0)
