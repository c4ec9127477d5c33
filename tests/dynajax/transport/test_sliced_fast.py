"""The fast paths of the sliced distances: host sort on CPU, exact circle shift for uniform
equal-size measures (against exact OT and a brute-force definition)."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import pytest

from dynajax.transport import one_d


def _circle_emd(u, v, p):
    d = np.abs(u[:, None] - v[None, :])
    M = np.minimum(d, 1.0 - d) ** p
    w = np.full(len(u), 1.0 / len(u))
    return ot.emd2(w, w, M)


def _brute_force_shift(u, v, p):
    """min over k in [-n, n] of mean_i |x_i - y~_{i+k}|^p (lifted cyclic matchings)."""
    x, y = np.sort(u), np.sort(v)
    n = len(x)
    ext = np.concatenate([y - 1, y, y + 1])
    return min(np.mean(np.abs(x - ext[n + k : 2 * n + k]) ** p) for k in range(-n, n + 1))


def test_uniform_circle_path_is_exact_ot():
    f = jax.jit(one_d.wasserstein_circle, static_argnames="p")
    r = np.random.default_rng(0)
    for n, p in ((1, 2.0), (40, 2.0), (40, 1.5)):
        u = r.random(n)
        v = (r.random(n) ** 2 + r.random()) % 1  # clustered and shifted: wraps around 0
        got = float(f(u.astype(np.float32), v.astype(np.float32), p=p))
        # exact OT with the geodesic cost, the brute-force minimum over matchings, the
        # golden-section path on the same measures with explicit (uniform) weights
        np.testing.assert_allclose(got, _circle_emd(u, v, p), rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(got, _brute_force_shift(u, v, p), rtol=2e-4, atol=1e-6)
        if (n, p) == (40, 2.0):
            w = np.full(n, 1.0 / n, np.float32)
            np.testing.assert_allclose(got, float(f(u, v, w, w, p=p)), rtol=2e-4, atol=1e-6)


def test_uniform_circle_gradient_matches_finite_differences():
    r = np.random.default_rng(1)
    u, v = r.random(12), r.random(12)
    g = jax.grad(lambda a: one_d.wasserstein_circle(a, jnp.asarray(v, jnp.float32), p=2.0))(
        jnp.asarray(u, jnp.float32))
    eps = 1e-4
    for i in (0, 5):
        e = np.zeros(12)
        e[i] = eps
        fd = (_brute_force_shift(u + e, v, 2.0) - _brute_force_shift(u - e, v, 2.0)) / (2 * eps)
        np.testing.assert_allclose(float(g[i]), fd, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("mode", ["0", "1"])
def test_sort_and_argsort_both_backends(mode, monkeypatch):
    monkeypatch.setenv(one_d.HOST_KERNELS_ENV, mode)
    assert one_d.host_kernels_enabled() == (mode == "1")
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 9)), jnp.float32)

    @jax.jit
    def run(x):
        s = jax.vmap(one_d.sort)(x)
        i = one_d.argsort(x)
        # d/dx sum(c * sort(x)) = c placed at each element's rank
        g = jax.grad(lambda z: jnp.sum(jnp.arange(9.0) * one_d.sort(z)))(x[0])
        return s, i, g

    s, i, g = run(x)
    np.testing.assert_array_equal(s, np.sort(np.asarray(x), axis=-1))
    np.testing.assert_array_equal(np.take_along_axis(np.asarray(x), np.asarray(i), -1), s)
    np.testing.assert_allclose(g, np.argsort(np.argsort(np.asarray(x[0]))).astype(np.float32))
    # circle angle: value (vmapped with an unbatched argument) and gradient vs atan2
    c, sn = x[0], x[1]
    ang = jax.jit(jax.vmap(one_d.circle_angle, in_axes=(0, None)))(x, sn)
    ref = np.mod((np.pi + np.arctan2(-np.asarray(sn), -np.asarray(x))) / (2 * np.pi), 1.0)
    np.testing.assert_allclose(ang, ref, atol=1e-6)
    gc, gs = jax.grad(lambda a, b: jnp.sum(jnp.sin(one_d.circle_angle(a, b))), (0, 1))(c, sn)
    rc, rs = jax.grad(lambda a, b: jnp.sum(jnp.sin(jnp.arctan2(-b, -a) / (2 * jnp.pi) + 0.5)),
                      (0, 1))(c, sn)
    np.testing.assert_allclose(gc, rc, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gs, rs, rtol=1e-4, atol=1e-6)


def test_host_sort_env_validation(monkeypatch):
    monkeypatch.setenv(one_d.HOST_KERNELS_ENV, "yes")
    with pytest.raises(ValueError, match="DYNAJAX_HOST_KERNELS"):
        one_d.host_kernels_enabled()


def test_ssw_same_value_and_gradient_with_and_without_host_kernels(monkeypatch):
    from dynajax.transport.sliced import random_stiefel, spherical_sliced_wasserstein

    r = np.random.default_rng(3)
    x, y = r.normal(size=(30, 3)), r.normal(size=(30, 3)) + 0.5
    x = jnp.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), jnp.float32)
    y = jnp.asarray(y / np.linalg.norm(y, axis=1, keepdims=True), jnp.float32)
    U = random_stiefel(16, 3, key=jax.random.key(0))
    out = {}
    for mode in ("0", "1"):
        monkeypatch.setenv(one_d.HOST_KERNELS_ENV, mode)
        f = jax.jit(jax.value_and_grad(lambda a: spherical_sliced_wasserstein(a, y, projections=U)))
        out[mode] = f(x)
    np.testing.assert_allclose(out["0"][0], out["1"][0], rtol=1e-5)
    np.testing.assert_allclose(out["0"][1], out["1"][1], rtol=1e-4, atol=1e-6)
