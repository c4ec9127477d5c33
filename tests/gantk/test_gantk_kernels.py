"""Closed-form kernels: parity with neural-tangents, arc-cosine formulas, empirical NTK, safe gradients."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import kernels as K

FIXTURE = Path(__file__).parent / "fixtures" / "nt_kernels.npz"


def _mlp(act, b_std, depth=3, W_std=1.0, param="ntk"):
    return K.mlp(act, depth, 128, W_std, b_std, parameterization=param)


ARCHS = {
    "relu": lambda: _mlp("relu", 1.0),
    "relu_nobias": lambda: _mlp("relu", None),
    "sigmoid": lambda: _mlp("sigmoid", 0.2),
    "erf": lambda: _mlp("erf", 0.5, depth=2, W_std=1.3),
    "abs": lambda: _mlp("abs", 1.0, depth=2),
    "leaky_relu": lambda: _mlp(K.LeakyRelu(0.1), 0.3, depth=2),
    "relu_standard": lambda: _mlp("relu", 1.0, depth=2, W_std=1.4, param="standard"),
    "rbf": lambda: K.rbf_kernel(0.5),
    "fan_sum": lambda: K.serial(
        K.Dense(64, 1.0, 0.5), K.FanOut(2),
        K.parallel(K.serial(K.Relu(), K.Dense(64, 1.0, 0.2)), K.serial(K.Erf(), K.Dense(64, 2.0, 0.1))),
        K.FanInSum(), K.Dense(1, 1.0, None)),
}


def test_parity_with_neural_tangents():
    ref = np.load(FIXTURE)
    with jax.enable_x64(True):
        for name in sorted(ARCHS):
            kfn = K.kernel_fn(ARCHS[name]())
            get = "nngp" if name == "rbf" else "ntk"

            @jax.jit
            def run(x1, x2, w):
                nngp, ntk = kfn(x1, x2, ("nngp", "ntk"))
                return nngp, ntk, jax.grad(lambda z: jnp.sum(kfn(z, x2, get) @ w))(x1)

            for d in (2, 5):
                nngp, ntk, g = run(*(jnp.asarray(ref[f"d{d}/{k}"]) for k in ("x1", "x2", "w")))
                # 1e-7: at coinciding points sqrt(q11 q22 - q12^2) takes the square root of a
                # rounding error (~1e-16), so values there depend on XLA's fusion order at ~1e-8
                np.testing.assert_allclose(nngp, ref[f"d{d}/{name}/nngp"], rtol=1e-7, atol=1e-10, err_msg=name)
                np.testing.assert_allclose(ntk, ref[f"d{d}/{name}/ntk"], rtol=1e-7, atol=1e-10, err_msg=name)
                assert np.all(np.isfinite(g)), name
                np.testing.assert_allclose(g, ref[f"d{d}/{name}/grad"], rtol=1e-6, atol=1e-8, err_msg=name)


def test_relu_ntk_at_origin_is_2_25():
    k = K.kernel_fn(K.get_kernel("relu")[0])(jnp.zeros((1, 2)), None, "ntk")
    assert abs(float(k[0, 0]) - 2.25) < 1e-6
    assert abs(float(np.load(FIXTURE)["relu_k00"].item()) - 2.25) < 1e-12


def test_one_layer_relu_nngp_is_arccos_kernel(rng):
    # Cho & Saul's order-1 arc-cosine kernel: |x||y| (sin t + (pi - t) cos t) / (2 pi d)
    with jax.enable_x64(True):
        x = jax.random.normal(rng, (7, 3), dtype=jnp.float64)
        nngp = K.kernel_fn(K.serial(K.Dense(8), K.Relu()))(x, None, "nngp")
        n = jnp.linalg.norm(x, axis=1)
        cos = jnp.clip(x @ x.T / (n[:, None] * n[None]), -1, 1)
        t = jnp.arccos(cos)
        ref = n[:, None] * n[None] * (jnp.sin(t) + (jnp.pi - t) * cos) / (2 * jnp.pi * 3)
        np.testing.assert_allclose(nngp, ref, rtol=1e-7, atol=1e-12)


def test_symmetric_psd(rng):
    with jax.enable_x64(True):
        x = jax.random.normal(rng, (30, 2), dtype=jnp.float64)
        for name in ("relu", "sigmoid", "rbf"):
            layer, get = K.get_kernel(name)
            k = jax.jit(lambda z: K.kernel_fn(layer)(z, None, get))(x)
            np.testing.assert_allclose(k, k.T, atol=1e-12)
            assert np.linalg.eigvalsh(np.asarray(k)).min() > -1e-9, name


@pytest.mark.slow
def test_empirical_ntk_of_wide_network_converges(rng):
    # Monte-Carlo: empirical NTKs J J^T of NTK-parameterised width-w nets scatter around
    # Theta with a spread ~ 1/sqrt(w), and their mean is Theta.
    x = jax.random.normal(jax.random.fold_in(rng, 1), (4, 2))
    theta = K.kernel_fn(K.mlp("relu", 3, 1, 1.0, 1.0))(x, None, "ntk")
    scale = float(jnp.max(theta))

    def emp(width, key):
        net = K.mlp("relu", 3, width, 1.0, 1.0)
        _, p = net.init(key, 2)
        j = jax.jacobian(lambda q: net.apply(q, x)[:, 0])(p)
        j = jnp.concatenate([a.reshape(4, -1) for a in jax.tree_util.tree_leaves(j)], 1)
        return j @ j.T

    stats = {}
    for width in (32, 512):
        keys = jax.random.split(jax.random.fold_in(rng, width), 16)
        e = jax.jit(jax.vmap(lambda k: emp(width, k)))(keys)
        stats[width] = (float(jnp.max(jnp.abs(e.mean(0) - theta))) / scale, float(jnp.max(e.std(0))) / scale)
    assert stats[512][0] < 0.06, stats  # mean of 16 at width 512 (per-init spread ~10%)
    assert stats[512][0] < 0.5 * stats[32][0], stats
    assert stats[32][1] > 1.5 * stats[512][1], stats  # the spread shrinks with width


def test_gradients_finite_at_coinciding_points_and_origin(rng):
    x = jnp.concatenate([jnp.zeros((1, 2)), jax.random.normal(rng, (3, 2))])
    for name in ("relu", "relu-nobias", "sigmoid", "rbf"):
        layer, get = K.get_kernel(name)
        f, g = jax.jit(lambda z: K.weighted_sum_and_grad(layer, z, z, jnp.array([1.0, -1.0, 0.5, 2.0]), get=get))(x)
        assert np.all(np.isfinite(f)) and np.all(np.isfinite(g)), name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_arccos_jvp_at_coinciding_points_ignores_rounding_of_the_gram_determinant(dtype):
    # depending on how the compiler fuses the reductions, q11 q22 - q12^2 can be a few ulps
    # instead of 0 for coinciding inputs; the jvp must then be the coinciding one, not 1/sqrt(ulps)
    with jax.enable_x64(dtype == "float64"):
        one = jnp.ones((1,), dtype)
        q_exact = jnp.ones((1, 1), dtype)
        q_rounded = q_exact - jnp.finfo(dtype).eps  # arg = 2 ulps of q11 q22
        t = jnp.ones((1, 1), dtype)

        def ntk_tangent(q):
            fn = lambda q: K._arccos_map(q, one, one, t, 0.5, 1 / (2 * np.pi))[1]  # noqa: E731
            return jax.jvp(fn, (q,), (jnp.ones_like(q),))[1]

        np.testing.assert_allclose(ntk_tangent(q_rounded), ntk_tangent(q_exact), atol=10 * jnp.finfo(dtype).eps)
        assert abs(float(ntk_tangent(q_exact)[0, 0])) < 1.0


def test_blocked_evaluation_matches_direct(rng):
    layer, _ = K.get_kernel("relu")
    x = jax.random.normal(rng, (23, 2))
    s = jax.random.normal(jax.random.fold_in(rng, 1), (9, 2))
    v = jnp.linspace(-1, 1, 9)

    @jax.jit
    def both(x, s, v):
        return (K.kernel_matrix(layer, x, s, block_size=5), K.kernel_matrix(layer, x, s),
                K.weighted_sum_and_grad(layer, x, s, v, block_size=4), K.weighted_sum_and_grad(layer, x, s, v))

    kb, k0, (f1, g1), (f0, g0) = both(x, s, v)
    np.testing.assert_allclose(kb, k0, rtol=1e-6)
    np.testing.assert_allclose(f1, f0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g1, g0, rtol=1e-5, atol=1e-6)
    # gradient in the first argument only, checked by central finite differences (float64)
    with jax.enable_x64(True):
        x64, s64, v64 = (jnp.asarray(a, jnp.float64) for a in (x[:3], s, v))
        e = jnp.zeros_like(x64).at[:, 0].set(1e-6)
        ws = jax.jit(lambda z: K.weighted_sum_and_grad(layer, z, s64, v64))
        _, g = ws(x64)
        np.testing.assert_allclose((ws(x64 + e)[0] - ws(x64 - e)[0]) / 2e-6, g[:, 0], rtol=1e-6)


def test_any_nt_style_kernel_fn_is_accepted(rng):
    def lin(x1, x2, get):
        return x1 @ x2.T
    x = jax.random.normal(rng, (5, 3))
    np.testing.assert_allclose(K.kernel_matrix(lin, x, x), x @ x.T, rtol=1e-6)


def test_validation():
    with pytest.raises(ValueError, match="parameterization"):
        K.Dense(3, parameterization="mean-field")
    with pytest.raises(ValueError, match="get"):
        K.kernel_fn(K.Relu())(jnp.ones((2, 2)), None, "cov")
    with pytest.raises(ValueError, match="same d"):
        K.kernel_fn(K.Relu())(jnp.ones((2, 2)), jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="FanInSum"):
        K.kernel_fn(K.serial(K.FanOut(2), K.parallel(K.Relu(), K.Relu()), K.FanInSum()))(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="unknown kernel"):
        K.get_kernel("tanh")
