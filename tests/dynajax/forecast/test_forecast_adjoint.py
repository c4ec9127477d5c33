"""Chapter 1's explicit adjoint (eqs. 1.7-1.8): autodiff agreement, O(dt) convergence, O(eps) robustness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.forecast import adjoint

T1 = 1.0


def field(theta, x):
    return jnp.tanh(theta["W"] @ x + theta["b"]) - 0.3 * x


def running(t, x):
    return 0.5 * jnp.sum((x - jnp.stack([jnp.sin(2 * t), jnp.cos(2 * t)])) ** 2)


def terminal(x):
    return 0.5 * jnp.sum((x - jnp.array([0.5, -0.2])) ** 2)


@pytest.fixture
def problem(rng):
    with jax.enable_x64(True):
        k1, k2, k3 = jax.random.split(rng, 3)
        theta = {"W": jax.random.normal(k1, (2, 2), jnp.float64),
                 "b": 0.5 * jax.random.normal(k2, (2,), jnp.float64)}
        x0 = jax.random.normal(k3, (2,), jnp.float64)
        yield theta, x0  # float64 for the whole test


def _flat(g):
    return np.concatenate([np.ravel(g["W"]), np.ravel(g["b"])])


_adjoint_jit = jax.jit(
    lambda theta, xs: adjoint.adjoint_gradient(field, theta, xs, T1, running=running, terminal=terminal)
)


def _adjoint(theta, xs):
    g, lam = _adjoint_jit(theta, xs)
    return _flat(g), np.asarray(lam)


def test_adjoint_matches_autodiff_on_fine_grid(problem):
    theta, x0 = problem
    n = 500
    xs = adjoint.trajectory(field, theta, x0, T1, n)
    g_adj, lam = _adjoint(theta, xs)

    def J(th):  # RK4 states, trapezoid running cost: a second-order discretisation of J
        ys = adjoint.trajectory(field, th, x0, T1, n)
        ts = jnp.linspace(0, T1, n + 1)
        v = jax.vmap(running)(ts, ys)
        return T1 / n * (jnp.sum(v) - 0.5 * (v[0] + v[-1])) + terminal(ys[-1])

    g_ad = _flat(jax.jit(jax.grad(J))(theta))
    np.testing.assert_allclose(g_adj, g_ad, rtol=1e-4, atol=1e-7)
    # lambda_0 = -dJ/dX_0 (the sign convention of eq. 1.8)
    np.testing.assert_allclose(lam[-1], -jax.grad(terminal)(xs[-1]), rtol=1e-12)  # lambda_T = -beta grad j_T


def test_dto_gradient_converges_at_order_dt(problem):
    theta, x0 = problem
    xs = adjoint.trajectory(field, theta, x0, T1, 1000)
    g_ref, _ = _adjoint(theta, xs)
    errs = []
    for n in (10, 20, 40, 80):
        g = jax.jit(jax.grad(lambda th, n=n: adjoint.euler_objective(field, th, x0, T1, n, running=running, terminal=terminal)))(theta)
        errs.append(np.linalg.norm(_flat(g) - g_ref))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 1.7) & (ratios < 2.3)), (errs, ratios)  # first order: halving dt halves the error


def test_gradient_is_robust_to_trajectory_perturbations(problem):
    """Prop. 1.2: ||grad(X + eps delta) - grad(X)|| = O(eps), lambda bounded (Prop. 1.1)."""
    theta, x0 = problem
    n = 400
    xs = adjoint.trajectory(field, theta, x0, T1, n)
    g0, lam = _adjoint(theta, xs)
    ts = jnp.linspace(0, T1, n + 1)[:, None]
    delta = jnp.concatenate([jnp.sin(3 * ts), jnp.cos(5 * ts)], axis=1)
    diffs = [np.linalg.norm(_adjoint(theta, xs + eps * delta)[0] - g0) for eps in (1e-2, 5e-3, 2.5e-3)]
    ratios = np.array(diffs[:-1]) / np.array(diffs[1:])
    assert np.all((ratios > 1.9) & (ratios < 2.1)), (diffs, ratios)
    assert diffs[0] / 1e-2 < 10 * (np.linalg.norm(g0) + 1)  # the Lipschitz constant M' is moderate
    assert np.all(np.isfinite(lam)) and np.max(np.abs(lam)) < 10
