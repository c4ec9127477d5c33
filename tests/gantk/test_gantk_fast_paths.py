"""The fast paths of gantk: polynomial angles, closed-form input gradients, LSGAN solvers,
user kernel_fn callables in flows, and the particle-sharded IPM step."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import data, flows
from gantk import discriminators as D
from gantk import kernels as K

REPO = Path(__file__).resolve().parents[2]


def test_polynomial_angles_match_float64_arctan2(rng):
    k1, k2 = jax.random.split(rng)
    y = jnp.concatenate([jax.random.normal(k1, (20000,)), jnp.array([0.0, 0.0, 1.0, -1.0, 0.0, 3e-30, 1e30])])
    x = jnp.concatenate([jax.random.normal(k2, (20000,)), jnp.array([0.0, 1.0, 0.0, 0.0, -1.0, 1.0, 1.0])])
    ref = np.arctan2(np.asarray(y, np.float64), np.asarray(x, np.float64))
    got = np.asarray(jax.jit(K._atan2_poly)(y, x), np.float64)
    assert np.max(np.abs(got - ref)) < 4e-7
    # theta = atan2(root, q) from sin/cos with inv = 1/sqrt(q11 q22), root^2 + q^2 = q11 q22
    root, q = jnp.abs(y[:20000]), x[:20000]
    inv = jax.lax.rsqrt(root**2 + q**2)
    theta = np.asarray(jax.jit(K._arccos_angle)(root, q, inv), np.float64)
    assert np.max(np.abs(theta - np.arctan2(np.asarray(root, np.float64), np.asarray(q, np.float64)))) < 4e-7
    # neural-tangents' fill: atan2(0, 0) = pi/2
    z = jnp.zeros(1)
    assert abs(float(K._arccos_angle(z, z, z)[0]) - np.pi / 2) < 1e-7


KERNEL_CASES = {
    "relu": lambda: K.get_kernel("relu"),
    "sigmoid": lambda: K.get_kernel("sigmoid"),
    "rbf": lambda: K.get_kernel("rbf"),
    "fan_sum": lambda: (K.serial(K.Dense(8, 1.0, 0.5), K.FanOut(2), K.parallel(
        K.serial(K.LeakyRelu(0.2), K.Dense(8, 1.0, 0.2)), K.serial(K.Erf(), K.Dense(8, 2.0, 0.1))),
        K.FanInSum(), K.Relu(), K.Dense(1, 1.0, None)), "ntk"),
}


def test_closed_form_input_gradient_equals_autodiff(rng):
    # grad_x sum_j v_j k(x_i, s_j) = ((k_q * v) @ s)/d + (2/d) x_i (k_a @ v)_i, against autodiff
    # through the kernel_fn (first argument only) and central finite differences, float64
    with jax.enable_x64(True):
        x = jax.random.normal(rng, (6, 3), dtype=jnp.float64)
        s = 1.5 * jax.random.normal(jax.random.fold_in(rng, 1), (9, 3), dtype=jnp.float64)
        v = jnp.linspace(-1.0, 1.3, 9)
        cases = {name: make() for name, make in KERNEL_CASES.items()}

        @jax.jit
        def run(x, s, v):
            out = {}
            for name, (layer, get) in cases.items():
                kfn = K.kernel_fn(layer)
                ref = jax.grad(lambda z: jnp.sum(kfn(z, s, get) @ v))(x)
                out[name] = (*K.weighted_sum_and_grad(layer, x, s, v, get=get), kfn(x, s, get) @ v, ref)
            e = jnp.zeros_like(x).at[:, -1].set(1e-6)
            relu = cases["relu"][0]
            out["fd"] = (K.kernel_matrix(relu, x + e, s) @ v - K.kernel_matrix(relu, x - e, s) @ v) / 2e-6
            return out

        out = run(x, s, v)
        for name in cases:
            f, g, fref, gref = out[name]
            np.testing.assert_allclose(f, fref, rtol=1e-12, err_msg=name)
            np.testing.assert_allclose(g, gref, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(out["relu"][1][:, -1], out["fd"], rtol=1e-6)


def test_float32_gradient_at_coinciding_points_is_accurate(rng):
    # the support contains the particles (self-pairs at the cusp): float32 vs float64
    x = jax.random.normal(rng, (40, 2))
    y = 5.0 * jax.random.normal(jax.random.fold_in(rng, 1), (40, 2))
    s = jnp.concatenate([x, y])
    v = jnp.where(jnp.arange(80) < 40, 1 / 40, -1 / 40)
    kernels = [K.get_kernel(name) for name in ("relu", "relu-nobias")]

    def grads(a, s, v):
        return [K.weighted_sum_and_grad(layer, a, s, v, get=get)[1] for layer, get in kernels]

    g32 = jax.jit(grads)(x, s, v)
    with jax.enable_x64(True):
        g64 = jax.jit(grads)(*(jnp.asarray(a, jnp.float64) for a in (x, s, v)))
    for a, b in zip(g32, g64):
        assert np.all(np.isfinite(a))
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) < 1e-3 * np.max(np.abs(b))


def test_lsgan_solvers_match_float64_eigh_at_large_tau():
    # 4 tau lambda_max ~ 120 here: a fixed 40-step RK4 would diverge; Krylov and the
    # Gershgorin-sized RK4 must match eigh (float64) to 1e-5 relative in float32
    x, y = data.load("8gaussians", 60, 60, seed=0)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    tau = 10.0
    gram = jax.jit(lambda p: K.kernel_matrix("relu", p, p))(jnp.concatenate([x, y]))
    with jax.enable_x64(True):
        ref = np.asarray(jax.jit(lambda g: D.lsgan("relu", x.astype(jnp.float64), y.astype(jnp.float64), tau,
                                                    method="eigh", gram=g).coef)(gram.astype(jnp.float64)))
    scale = np.max(np.abs(ref))
    for method in ("krylov", "rk4"):
        c = jax.jit(lambda g, method=method: D.lsgan("relu", x, y, tau, method=method, gram=g).coef)(gram)
        assert np.max(np.abs(np.asarray(c) - ref)) < 1e-5 * scale, method
    bad = jax.jit(lambda g: D.lsgan("relu", x, y, tau, method="rk4", rk4_steps=40, gram=g).coef)(gram)
    assert not np.max(np.abs(np.asarray(bad) - ref)) < 1e-2 * scale  # the fixed step count is unstable


def test_flow_step_with_kernel_fn_callable_matches_named_kernel():
    x, y = data.load("8gaussians", 20, 16, seed=1)
    x, y = jnp.asarray(x), jnp.asarray(y)
    relu = K.kernel_fn(K.get_kernel("relu")[0])

    def user_kernel_fn(x1, x2, get):  # a plain callable: gantk uses autodiff for its gradient
        return relu(x1, x2, get)

    # LSGAN: the fused path (Gram assembled from the partials) vs the generic one (Gram, then
    # autodiff); the IPM gradient paths are compared in test_closed_form_input_gradient_...
    cfgs = {loss: (flows.FlowConfig(loss, "relu", eta=40.0), flows.FlowConfig(loss, user_kernel_fn, eta=40.0, get="ntk"))
            for loss in ("lsgan",)}

    @jax.jit
    def steps(x):
        s0 = flows.FlowState(x, (), jax.random.key(0))
        return {loss: (flows.make_step(a, y)(s0).x, flows.make_step(b, y)(s0).x) for loss, (a, b) in cfgs.items()}

    for loss, (a, b) in steps(x).items():
        assert float(jnp.max(jnp.abs(a - x))) > 1e-3, loss
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=loss)
    with pytest.raises(ValueError, match="kernel must be"):
        flows.FlowConfig("ipm", 3.0)
    with pytest.raises(ValueError, match="finite-width"):
        flows.FlowConfig("ipm", user_kernel_fn, width=64)
    bad = flows.FlowConfig("ipm", lambda x1, x2, get: jnp.sum(x1), eta=1.0)
    with pytest.raises(ValueError, match=r"must return a \[20, 36\] array"):
        flows.make_step(bad, y)(flows.init_state(bad, x, key=jax.random.key(0)))


_WORKER = textwrap.dedent("""
    import json, jax, jax.numpy as jnp
    from dynajax import parallel as par
    from gantk import data, flows
    x, y = data.load("8gaussians", 64, 40, seed=0)
    x, y = jnp.asarray(x), jnp.asarray(y)
    mesh = par.make_mesh()
    cfg = flows.FlowConfig("ipm", "relu", eta=128.0, block_size=8)
    pstep = flows.make_sharded_ipm_step(cfg, mesh)
    ys, xs = par.replicate(y, mesh), par.shard_batch(x, mesh)
    temp = pstep.lower(ys, xs).compile().memory_analysis().temp_size_in_bytes
    ys, xs = pstep(ys, xs)
    one = flows.make_step(flows.FlowConfig("ipm", "relu", eta=128.0), y)
    ref = jax.jit(lambda a: one(flows.FlowState(a, (), jax.random.key(0))).x)(x)
    print("RESULT " + json.dumps({"devices": len(jax.devices()), "err": float(jnp.max(jnp.abs(xs - ref))),
                                  "move": float(jnp.max(jnp.abs(xs - x))), "temp": int(temp)}))
""")


@pytest.mark.slow
def test_sharded_ipm_step_equals_unsharded_step():
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.update(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", _WORKER], env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, out.stderr[-3000:]
    res = json.loads(lines[-1][len("RESULT "):])
    assert res["devices"] == 2
    assert res["move"] > 0.1 and res["err"] < 1e-5 * max(1.0, res["move"]), res
    # per device: 32 local rows in blocks of 8 against the 104 support points, not 64 x 104
    assert res["temp"] < 64 * 104 * 4 * 8, res


def test_gelu_kernel_matches_monte_carlo_and_a_wide_network(rng):
    from scipy.stats import norm

    # the layer map: E[g(u) g(v)] and E[g'(u) g'(v)] for g(u) = u Phi(u), by Monte Carlo
    gen = np.random.default_rng(0)
    n = 250_000
    cases = [(2.0, 0.5, -0.7), (0.3, 4.0, 1.0)]

    @jax.jit
    def closed(abc):  # the input kernel nngp = x1 x2^T / d: take x with covariance [[a, c], [c, b]]
        out = []
        for i in range(len(cases)):
            a, b, c = abc[i]
            x = jnp.linalg.cholesky(jnp.array([[a, c], [c, b]])) * jnp.sqrt(2.0)
            k = K.Gelu().kernel(K.Kernel(x @ x.T / 2, jnp.ones((2, 2)), jnp.array([a, b]), jnp.array([a, b]), 2, False))
            out.append((k.nngp[0, 1], k.ntk[0, 1]))  # ntk = 1 * E[g' g'] here
        return out

    with jax.enable_x64(True):
        vals = closed(jnp.asarray(cases, jnp.float64))
    for (a, b, c), (nngp, dot) in zip(cases, vals):
        z = gen.normal(size=(n, 2)) @ np.linalg.cholesky(np.array([[a, c], [c, b]])).T
        g, gp = z * norm.cdf(z), norm.cdf(z) + z * norm.pdf(z)
        assert abs(float(nngp) - np.mean(g[:, 0] * g[:, 1])) < 4 * np.std(g[:, 0] * g[:, 1]) / np.sqrt(n)
        assert abs(float(dot) - np.mean(gp[:, 0] * gp[:, 1])) < 4 * np.std(gp[:, 0] * gp[:, 1]) / np.sqrt(n)
    # the whole network: empirical NTK J J^T of one wide NTK-parameterised GELU net
    net = K.mlp("gelu", 1, 32768, 1.0, 0.5)
    x = jax.random.normal(rng, (4, 3))

    @jax.jit
    def emp_and_theta(key, x):
        _, p = net.init(key, 3)
        j = jax.jacobian(lambda q: net.apply(q, x)[:, 0])(p)
        j = jnp.concatenate([a.reshape(4, -1) for a in jax.tree_util.tree_leaves(j)], 1)
        return j @ j.T, K.kernel_fn(net)(x, None, "ntk")

    emp, theta = emp_and_theta(jax.random.fold_in(rng, 1), x)
    # Monte-Carlo error ~0.7 % here; the ReLU kernel would be 3.3 % off, Erf 46 %
    assert float(jnp.max(jnp.abs(emp - theta))) < 0.02 * float(jnp.max(theta))


@pytest.mark.parametrize("norm", [0.5, 30.0, 300.0, 1e3])
def test_gelu_kernel_float32_matches_float64_at_large_inputs(norm):
    # far from the origin the layer map sums terms of size sqrt(|x|) that cancel: float32 must
    # still agree with float64, for the kernel and for its input-gradient
    net = K.serial(K.Dense(512, W_std=1.5, b_std=0.1), K.Gelu(), K.Dense(1, W_std=1.5, b_std=0.1))
    kf = K.kernel_fn(net)
    ntk = lambda x1, x2: kf(x1, x2, "ntk")[0, 0]  # noqa: E731

    @jax.jit  # one program per dtype instead of an eager compile per operation
    def values(x1, x2):
        return ntk(x1, x1), ntk(x1, x2), jax.grad(ntk)(x1, x2)[0, 0]

    def inputs(dtype):
        return jnp.array([[norm, -0.3 * norm]], dtype), jnp.array([[0.999 * norm, -0.3 * norm]], dtype)

    f32 = values(*inputs(jnp.float32))
    with jax.enable_x64(True):
        f64 = values(*inputs(jnp.float64))
    # the gradient cancels more digits, most in fused code (jit under XLA's default flags)
    for got, want, rtol in zip(f32, f64, (1e-5, 1e-5, 1e-4)):
        np.testing.assert_allclose(float(got), float(want), rtol=rtol)


def test_gelu_kernel_finite_far_from_the_origin():
    net = K.serial(K.Dense(512, W_std=1.5, b_std=0.1), K.Gelu(), K.Dense(1))
    x = jnp.array([[1e6, 0.0], [-1e6, 3e5]], jnp.float32)
    k, g = jax.jit(lambda x: (K.kernel_fn(net)(x, None, ("nngp", "ntk")),
                              jax.grad(lambda z: K.kernel_fn(net)(z, x, "ntk").sum())(x)))(x)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in (*k, g))
    assert float(k[1][0, 0]) > 0 and float(k[1][0, 0]) >= abs(float(k[1][0, 1]))
