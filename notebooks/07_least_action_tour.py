# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Least-action training of residual networks (`dynajax.transport.least_action`)
#
# A ResNet `x_{k+1} = x_k + dt v_k(x_k)` is a forward-Euler flow, i.e. a transport map.
# Penalising its kinetic energy `sum_k E||r_k||^2 / dt` while matching a target picks the
# *optimal* (Monge) map among all maps that fit (thesis ch. 4). Here: a 2-D translation
# `N(0, I) -> N(m, S)` with an MMD discriminator, with and without the penalty, from a
# large initialisation gain.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import optax

from dynajax.nn.initializers import orthogonal
from dynajax.train import init_state, make_step
from dynajax.transport import (
    gaussian_monge_map,
    gaussian_w2,
    kinetic_energy,
    monge_map_distance,
)
from dynajax.transport.least_action import (
    ResidualFlow,
    VelocityMLP,
    linear_decay,
    mmd_discrepancy,
    transport_penalty,
    udt_loss,
)

m, S = jnp.array([2.5, 0.5]), jnp.array([[1.5, 0.4], [0.4, 0.6]])
chol = jnp.linalg.cholesky(S)
flow = ResidualFlow(VelocityMLP((32,), "tanh", orthogonal(2.0)), n_blocks=6, dt=1 / 6)
disc = mmd_discrepancy((0.3, 1.0, 3.0))
opt = optax.adam(5e-3)
N_STEPS = 600


def train(penalty: bool):
    step = make_step(lambda p, b, k: udt_loss(flow, p, *b, disc, penalty=penalty), opt)
    state = init_state(flow.init(jax.random.key(0), jnp.zeros((2, 2))), opt, key=jax.random.key(1))

    def body(st, _):
        kx, ky = jax.random.split(jax.random.fold_in(st.key, st.step))
        lam = linear_decay(st.step, int(0.6 * N_STEPS), 1.0, 1e-3)
        batch = (jax.random.normal(kx, (256, 2)), m + jax.random.normal(ky, (256, 2)) @ chol.T, lam)
        return step(st, batch)

    return jax.jit(lambda s: jax.lax.scan(body, s, None, length=N_STEPS))(state)[0].params


params = {"MMD only": train(False), "MMD + kinetic energy": train(True)}

# %% [markdown]
# The Monge map is affine and known in closed form; the kinetic energy of the optimal
# constant-speed flow equals `W2^2`.

# %%
x = jax.random.normal(jax.random.key(5), (2000, 2))
T_star = gaussian_monge_map(jnp.zeros(2), jnp.eye(2), m, S)
w2 = gaussian_w2(jnp.zeros(2), jnp.eye(2), m, S)
for name, p in params.items():
    tx, res, _ = flow.residuals(p, x)
    print(f"{name:22s} distance to Monge map {float(monge_map_distance(tx, T_star(x))):.3f}   "
          f"kinetic energy {float(kinetic_energy(residuals=res, dt=flow.dt)):.3f}  (W2^2 = {float(w2):.3f})   "
          f"inverse error {float(jnp.sqrt(jnp.mean(jnp.sum((flow.inverse(p, tx) - x) ** 2, -1)))):.3f}")

# %% [markdown]
# Particle trajectories through the blocks (black: inputs, red: outputs, green: Monge map).

# %%
xs = x[:40]
fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
for ax, (name, p) in zip(axes, params.items()):
    _, _, st = flow.residuals(p, xs)
    ax.plot(st[:, :, 0], st[:, :, 1], color="tab:blue", lw=0.7, alpha=0.7)
    ax.scatter(*st[0].T, s=6, c="k")
    ax.scatter(*st[-1].T, s=6, c="tab:red")
    ax.scatter(*T_star(xs).T, s=10, marker="x", c="tab:green")
    ax.set_title(name)
plt.show()

# %% [markdown]
# The penalty comes in three named reductions: the thesis's sum over blocks and points,
# per point (`batch_mean`), and the released code's per-element mean (`mean`, 1/d of the
# per-point value).

# %%
_, res, _ = flow.residuals(params["MMD + kinetic energy"], x)
print({r: float(transport_penalty(res, r)) for r in ("sum", "batch_mean", "mean")})
