import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.nn import (
    SNDense,
    SpectralNorm,
    as_matrix,
    init_spectral_state,
    init_u,
    spectral_norm,
    spectral_norms,
)


def _known_spectrum(seed, shape, s):
    """A weight whose [prod(shape[:-1]), shape[-1]] matrix has singular values s."""
    m, n = int(np.prod(shape[:-1])), shape[-1]
    gen = np.random.default_rng(seed)
    u, _ = np.linalg.qr(gen.standard_normal((m, len(s))))
    v, _ = np.linalg.qr(gen.standard_normal((n, len(s))))
    mat = (u * np.asarray(s)) @ v.T
    return jnp.asarray(mat.reshape(shape), jnp.float32), u[:, 0], v[:, 0]


@pytest.mark.parametrize("shape", [(7, 5), (5, 9), (3, 3, 2, 4)])
def test_sigma_matches_matrix_2_norm(rng, shape, randn):
    w = randn(shape)
    u0 = init_u(w, key=rng)
    assert u0.shape == (shape[-1],)
    sigma, u = spectral_norm(w, u0, n_iter=500)
    ref = jnp.linalg.norm(as_matrix(w), 2)
    assert abs(float(sigma) - float(ref)) < 1e-4 * float(ref)
    np.testing.assert_allclose(jnp.linalg.norm(u), 1.0, rtol=1e-5)


def test_grad_of_sigma_is_top_singular_outer_product(rng):
    w, left, right = _known_spectrum(0, (3, 3, 2, 4), [2.0, 1.0, 0.7, 0.3])
    u0 = init_u(w, key=rng)
    grad = jax.grad(lambda w: spectral_norm(w, u0, n_iter=60)[0])(w)
    expected = jnp.outer(left, right).reshape(w.shape)  # sign ambiguity cancels
    np.testing.assert_allclose(grad, expected, atol=1e-3)
    assert float(spectral_norm(w, u0, 60)[0]) == pytest.approx(2.0, abs=1e-4)


def test_persistent_u_converges_one_iteration_per_call():
    w, _, right = _known_spectrum(0, (6, 4), [3.0, 1.5, 1.0, 0.5])
    u = init_u(w, key=jax.random.key(2))
    sigmas = []
    step = jax.jit(lambda w, u: spectral_norm(w, u, 1))
    for _ in range(30):
        sigma, u = step(w, u)
        sigmas.append(float(sigma))
    assert max(sigmas) <= 3.0 + 1e-5
    assert abs(sigmas[-1] - 3.0) < 1e-4
    assert abs(abs(float(jnp.dot(u, right))) - 1.0) < 1e-4


def test_no_gradient_flows_into_u(rng, randn):
    w = randn((5, 4))
    u0 = init_u(w, key=rng)
    g_u = jax.grad(lambda u: spectral_norm(w, u, 3)[0])(u0)
    np.testing.assert_array_equal(g_u, 0.0)
    jac = jax.jacobian(lambda w: spectral_norm(w, u0, 3)[1])(w)
    np.testing.assert_array_equal(jac, 0.0)


def test_out_axis_and_complex(rng, randn):
    w = randn((6, 4))
    u0 = init_u(w, key=rng)
    a, _ = spectral_norm(w, u0, 200)
    b, _ = spectral_norm(w.T, u0, 200, out_axis=0)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    wc = jax.lax.complex(w, randn((6, 4), seed=3))
    uc = init_u(wc, key=rng)
    assert jnp.iscomplexobj(uc)
    sigma, _ = spectral_norm(wc, uc, 300)
    assert sigma.dtype == jnp.float32
    np.testing.assert_allclose(sigma, jnp.linalg.norm(wc, 2), rtol=1e-4)


def test_pytree_helpers(rng, randn):
    weights = {"a": randn((4, 3)), "b": [randn((3, 3, 2, 2), seed=5)]}
    state = init_spectral_state(weights, key=rng)
    assert state["a"].shape == (3,) and state["b"][0].shape == (2,)
    sigmas, state = spectral_norms(weights, state, n_iter=300)
    assert jax.tree_util.tree_structure(sigmas) == jax.tree_util.tree_structure(weights)
    np.testing.assert_allclose(sigmas["a"], jnp.linalg.norm(weights["a"], 2), rtol=1e-4)
    np.testing.assert_allclose(sigmas["b"][0], jnp.linalg.norm(as_matrix(weights["b"][0]), 2), rtol=1e-4)


def test_bad_inputs_raise():
    w = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="at least 2 axes"):
        spectral_norm(jnp.ones(3), jnp.ones(3))
    with pytest.raises(ValueError, match=r"u must have shape \(3,\)"):
        spectral_norm(w, jnp.ones(4))
    with pytest.raises(ValueError, match="n_iter"):
        spectral_norm(w, jnp.ones(3), -1)
    with pytest.raises(ValueError, match="out_axis"):
        as_matrix(w, out_axis=2)
    with pytest.raises(ValueError, match="n_iter"):
        SpectralNorm(n_iter=1.5)


def test_linen_spectral_norm_updates_only_when_mutable(rng):
    w, _, _ = _known_spectrum(0, (5, 4), [2.0, 1.0, 0.5, 0.1])
    module = SpectralNorm(n_iter=1)
    variables = module.init(rng, w)
    assert variables["spectral"]["u"].shape == (4,)
    # immutable: u unchanged, repeated calls agree
    apply = jax.jit(module.apply)
    assert float(apply(variables, w)) == float(apply(variables, w))
    # mutable: u is carried and sigma converges with one iteration per call
    step = jax.jit(functools.partial(module.apply, mutable=["spectral"]))
    for _ in range(25):
        sigma, updates = step(variables, w)
        variables = {**variables, **updates}
    assert abs(float(sigma) - 2.0) < 1e-4


def test_sn_dense(rng, randn):
    x = randn((8, 5))
    layer = SNDense(3, n_iter=1)
    variables = jax.jit(layer.init)(rng, x)
    step = jax.jit(functools.partial(layer.apply, mutable=["spectral"]))
    for _ in range(40):
        y, updates = step(variables, x)
        variables = {**variables, **updates}
    kernel = variables["params"]["kernel"]
    sigma = jnp.linalg.norm(kernel, 2)
    np.testing.assert_allclose(y, x @ (kernel / sigma) + variables["params"]["bias"], rtol=1e-4, atol=1e-5)
    # the normalised kernel has spectral norm 1, and the gradient reaches the kernel only
    grads = jax.jit(jax.grad(lambda p: jnp.sum(layer.apply({**variables, "params": p}, x) ** 2)))(
        variables["params"]
    )
    assert float(jnp.abs(grads["kernel"]).max()) > 0
    with pytest.raises(ValueError, match="features"):
        SNDense(0)
