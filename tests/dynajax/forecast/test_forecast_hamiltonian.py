"""Hamiltonian physical models: J grad H against finite differences, conservation of H."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.forecast import aphynity as aph
from dynajax.forecast import hamiltonian as ham
from dynajax.systems import pendulum


def _central_diff_field(H, y, theta, eps=1e-4):
    # (dH/dp, -dH/dq) by central differences in float64
    y = np.asarray(y, np.float64)
    d = y.shape[0] // 2
    shifts = np.concatenate([np.eye(y.shape[0]), -np.eye(y.shape[0])]) * eps
    ys = jnp.asarray(y + shifts)
    h = np.asarray(jax.jit(jax.vmap(lambda z: H(z[:d], z[d:], theta)))(ys))
    grad = (h[: y.shape[0]] - h[y.shape[0]:]) / (2 * eps)
    return np.concatenate([grad[d:], -grad[:d]])


def test_field_is_j_grad_h_by_finite_differences(rng):
    with jax.enable_x64(True):
        theta = {"omega0_sq": jnp.float64(1.1)}
        y = jnp.asarray([0.7, -0.3, 1.2, 0.4])  # two pendulums: q = (0.7, -0.3), p = (1.2, 0.4)
        f = jax.jit(ham.hamiltonian_field(ham.pendulum_hamiltonian))(0.0, y, theta)
        np.testing.assert_allclose(f, _central_diff_field(ham.pendulum_hamiltonian, y, theta), rtol=1e-7)
        # the pendulum's H gives the frictionless family's field exactly
        want = pendulum.frictionless_field(0.0, y[jnp.array([0, 2])], theta)
        np.testing.assert_allclose(f[jnp.array([0, 2])], want, rtol=1e-12)
        # a Hamiltonian network: autodiff field equals finite differences of its scalar H
        net = ham.HamiltonianNet((16, 16))
        field, init = ham.neural_hamiltonian(net, 2, key=rng)
        init = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float64), init)
        H = lambda q, p, th: net.apply(th["H"], q, p)
        np.testing.assert_allclose(jax.jit(field)(0.0, y, init), _central_diff_field(H, y, init, eps=1e-5),
                                   rtol=1e-5, atol=1e-8)


def test_physics_only_rollout_conserves_h(rng):
    # a Hamiltonian network as the whole physical model (trained like any physical parameter);
    # dH/dt = grad H . J grad H = 0: RK4 rollouts keep H up to the scheme's error
    net = ham.HamiltonianNet((16,))
    field, init = ham.neural_hamiltonian(net, 1)  # an initialiser: drawn per seed by Aphynity.init
    y0 = jnp.asarray(pendulum.sample_initial(5, key=rng), jnp.float32)
    ts = np.arange(21) * 0.05
    model = aph.Aphynity(field, None, physics_init=init)
    params = model.init(rng, y0)
    other = model.init(jax.random.fold_in(rng, 7), y0)["physical"]["H"]
    assert not np.allclose(jax.tree_util.tree_leaves(other)[1], jax.tree_util.tree_leaves(params["physical"]["H"])[1])
    H = lambda y: net.apply(params["physical"]["H"], y[:1], y[1:])

    @jax.jit
    def run(params):
        ys = model.rollout(params, y0, ts)  # [5, T, 2]
        flat = ys.reshape(-1, 2)
        dot = jnp.sum(jax.vmap(jax.grad(H))(flat) * model.physical_field(params, flat), axis=1)
        return ys, jax.vmap(jax.vmap(H))(ys), dot, jnp.max(jnp.abs(jax.vmap(jax.grad(H))(flat)))

    ys, energy, dot, g_max = run(params)
    drift = np.max(np.abs(np.asarray(energy) - np.asarray(energy[:, :1])))
    assert drift < 1e-4 * max(float(np.max(np.abs(energy))), 1.0), drift
    assert np.max(np.abs(np.asarray(ys[:, -1] - ys[:, 0]))) > 1e-2  # the states moved: not vacuous
    np.testing.assert_allclose(dot, 0.0, atol=1e-5 * float(g_max) ** 2)  # pointwise grad H . F_p = 0


def test_invalid_inputs():
    with pytest.raises(ValueError, match="callable"):
        ham.hamiltonian_field(3.0)
    with pytest.raises(ValueError, match="even length"):
        ham.PENDULUM.field(0.0, jnp.ones(3), {"omega0_sq": 1.0})
    with pytest.raises(ValueError, match="dim"):
        ham.neural_hamiltonian(ham.HamiltonianNet((4,)), 0)
