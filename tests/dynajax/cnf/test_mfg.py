"""Mean-field costs against closed forms on flows whose characteristics are known exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.cnf import (
    Potential,
    entropy_congestion,
    interaction,
    kl_terminal,
    mfg_objective,
    obstacle,
    otflow_loss,
    quadratic_terminal,
    standard_normal_logpdf,
)


def _shift(m, speed=1.0):
    """``Phi = speed (m.x + speed |m|^2 t / 2)``: agents move by ``-speed m`` per unit time."""
    pot = Potential(m.shape[0], width=4)
    p = jax.tree_util.tree_map(jnp.zeros_like, pot.init(key=jax.random.key(0)))
    p["b"] = speed * jnp.concatenate([m, jnp.asarray([0.5 * speed * jnp.sum(m**2)])])
    return pot, p


@pytest.mark.slow
def test_dynamic_ot_special_case_is_otflow():
    """No running cost + KL terminal: the MFG objective is OT-Flow's up to the entropy of rho_0."""
    m = jnp.asarray([1.0, 2.0])
    pot = Potential(2, width=8)
    p = pot.init(key=jax.random.key(3))
    x = m + jax.random.normal(jax.random.key(1), (128, 2))
    log_rho0 = standard_normal_logpdf(x - m)

    @jax.jit
    def run(x):
        J, t = mfg_objective(pot, p, x, log_rho0, terminal=kl_terminal(standard_normal_logpdf, 7.0),
                             alpha_hjb=(3.0, 0.0), n_steps=4)
        Jo, to = otflow_loss(pot, p, x, alpha=(1.0, 7.0, 3.0), n_steps=4)
        return J, t, Jo, to

    J, t, Jo, to = run(x)
    np.testing.assert_allclose(float(t.kinetic), float(to.L), rtol=1e-6)
    np.testing.assert_allclose(float(t.hjb), float(to.R), rtol=1e-6)
    np.testing.assert_allclose(float(t.terminal), 7.0 * (float(to.C) + float(jnp.mean(log_rho0))), rtol=1e-5)
    np.testing.assert_allclose(float(J), float(Jo) + 7.0 * float(jnp.mean(log_rho0)), rtol=1e-5)


def test_running_costs_along_a_known_translation():
    """Agents translated at constant velocity: every integral has a closed form in time."""
    m = jnp.asarray([1.0, -1.0])
    pot, p = _shift(m)
    x = jax.random.normal(jax.random.key(2), (64, 2))
    log_rho0 = standard_normal_logpdf(x)
    Q = lambda z: jnp.sum(z, axis=1)  # noqa: E731  (linear: its time integral is exact)
    target = jnp.asarray([0.5, 0.5])

    @jax.jit
    def run(x):
        return mfg_objective(pot, p, x, log_rho0, terminal=quadratic_terminal(target, 2.0),
                             running=(obstacle(Q, 3.0), entropy_congestion(0.5), interaction(0.4, 1.5)),
                             n_steps=4)

    J, t = run(x)
    z1 = x - m
    # obstacle: int_0^1 sum(x - t m) dt = sum(x) - sum(m)/2; entropy: log rho is transported
    # unchanged; interaction: pairwise distances are invariant under a translation
    k = jnp.mean(jnp.exp(-jnp.sum((x[:, None] - x[None]) ** 2, -1) / (2 * 1.5**2)), axis=1)
    running = 3.0 * jnp.mean(jnp.sum(x, 1) - jnp.sum(m) / 2) + 0.5 * jnp.mean(log_rho0) + 0.2 * jnp.mean(k)
    np.testing.assert_allclose(float(t.running), float(running), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(t.kinetic), 0.5 * float(jnp.sum(m**2)), rtol=1e-6)
    np.testing.assert_allclose(float(t.terminal), float(jnp.mean(jnp.sum((z1 - target) ** 2, 1))), rtol=1e-5)
    # HJB residual: d_t Phi - |grad Phi|^2/2 = 0 here, so it is the time integral of |F_delta|
    ts = (np.arange(64) + 0.5) / 64  # midpoint rule in time
    fd = 3.0 * (np.sum(np.asarray(x), 1)[None] - ts[:, None] * float(jnp.sum(m))) + np.asarray(0.5 * (log_rho0 + 1.0) + 0.4 * k)[None]
    np.testing.assert_allclose(float(t.hjb), float(np.mean(np.abs(fd))), rtol=2e-3)
    assert float(J) == pytest.approx(float(t.kinetic + t.running + t.terminal + t.hjb + t.hjb_terminal), rel=1e-6)


@pytest.mark.slow
def test_gradients_are_finite_and_match_finite_differences():
    with jax.enable_x64(True):
        m = jnp.asarray([1.0, -1.0], jnp.float64)
        pot = Potential(2, width=4)
        p = pot.init(key=jax.random.key(5), dtype=jnp.float64)
        x = jax.random.normal(jax.random.key(6), (16, 2), jnp.float64)
        x = x.at[1].set(x[0])  # two agents at the same place
        lr0 = standard_normal_logpdf(x)

        f = jax.jit(lambda q: mfg_objective(pot, q, x, lr0, terminal=quadratic_terminal(m, 1.0),
                                            running=(interaction(1.0, 0.5),), n_steps=4)[0])
        g = jax.jit(jax.grad(f))(p)
        assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree_util.tree_leaves(g))
        eps = 1e-6
        for name, idx in [("K0", (0, 1)), ("b", (0,)), ("A", (1, 2))]:
            e = jnp.zeros_like(p[name]).at[idx].set(eps)
            fd = (f({**p, name: p[name] + e}) - f({**p, name: p[name] - e})) / (2 * eps)
            np.testing.assert_allclose(float(g[name][idx]), float(fd), rtol=1e-5, atol=1e-7)


def test_bad_inputs():
    pot, p = _shift(jnp.asarray([1.0, 0.0]))
    x = jnp.zeros((4, 2))
    term = quadratic_terminal(jnp.zeros(2))
    with pytest.raises(ValueError, match="log_rho0"):
        mfg_objective(pot, p, x, jnp.zeros(3), terminal=term)
    with pytest.raises(ValueError, match="alpha_hjb"):
        mfg_objective(pot, p, x, jnp.zeros(4), terminal=term, alpha_hjb=(1.0,))
    with pytest.raises(ValueError, match="weight"):
        obstacle(lambda z: z[:, 0], -1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        interaction(1.0, 0.0)
    with pytest.raises(ValueError, match="weight"):
        kl_terminal(standard_normal_logpdf, 0.0)
