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
# # Architectures in `dynajax.arch`
#
# Networks as ODE discretisations (neural-ODE classifiers with two gradient routes, stable
# antisymmetric and Hamiltonian networks) and physics-informed losses (PINN residuals,
# Deep Ritz, multiplicative filter networks, divergence-free fields).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dynajax import arch

# %% [markdown]
# ## A ResNet is forward Euler; two ways to get its gradient
# `adjoint="discretize"` differentiates the Euler steps exactly; `adjoint="backsolve"` solves
# the continuous adjoint backwards and is only first-order accurate for the discrete network.

# %%
x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 2)), jnp.float32)
y = (x[:, 0] * x[:, 1] > 0).astype(jnp.int32)
model = arch.ContinuousClassifier(dim_in=2, width=4, n_steps=8)
params = model.init(jax.random.key(0))
back = arch.ContinuousClassifier(dim_in=2, width=4, n_steps=8, adjoint="backsolve")
g_d = jax.grad(model.loss)(params, x, y)
g_b = jax.grad(back.loss)(params, x, y)
rel = jnp.linalg.norm(g_d["field"]["w"] - g_b["field"]["w"]) / jnp.linalg.norm(g_d["field"]["w"])
print(f"relative difference of the two routes at 8 Euler steps: {float(rel):.3f}")

# %% [markdown]
# ## Stable layers
# `W - W^T - gamma I` has eigenvalues on the line `Re = -gamma`; the leapfrog (Stormer-Verlet)
# Hamiltonian network is exactly invertible, which the reversible backward pass exploits.

# %%
W = jax.random.normal(jax.random.key(1), (8, 8))
ev = np.linalg.eigvals(np.asarray(arch.antisymmetric_matrix(W, 0.1)))
hp = arch.init_layers("hamiltonian", 64, 4, key=jax.random.key(2))
y0 = jax.random.normal(jax.random.key(3), (5, 4))
yL, zL = arch.hamiltonian_forward(hp, y0, None, 0.2)
back_y = jax.lax.scan(lambda c, q: (arch.leapfrog_inverse(q, *c, 0.2), None), (yL, zL), hp, reverse=True)[0][0]
print("max |y0 - inverse(forward(y0))| =", float(jnp.max(jnp.abs(back_y - y0))))
plt.figure(figsize=(3, 3))
plt.scatter(ev.real, ev.imag, s=10)
plt.axvline(-0.1, color="k", lw=0.5)
plt.title("eigenvalues of W - W^T - 0.1 I")
plt.show()

# %% [markdown]
# ## A PINN for -u'' = pi^2 sin(pi x) on (0, 1), u(0) = u(1) = 0
# The residual is written with `arch.laplacian`; `arch.pinn_loss` adds the boundary term.

# %%
import optax

from dynajax.nn import MLP

net = MLP((16, 16, 1), activation="tanh")
p = net.init(jax.random.key(4), jnp.zeros((1,)))
xs = jnp.linspace(0.0, 1.0, 64)[:, None]
bnd = (jnp.array([[0.0], [1.0]]), jnp.zeros((2,)))
residual = lambda u, x: -arch.laplacian(u, x) - jnp.pi**2 * jnp.sin(jnp.pi * x[0])
opt = optax.adam(1e-2)


@jax.jit
def train(p):
    def step(c, _):
        p, s = c
        loss, g = jax.value_and_grad(lambda q: arch.pinn_loss(lambda z: net.apply(q, z)[0], residual, xs,
                                                              boundary=bnd, weights={"boundary": 10.0})[0])(p)
        upd, s = opt.update(g, s)
        return (optax.apply_updates(p, upd), s), loss

    (p, _), losses = jax.lax.scan(step, (p, opt.init(p)), None, length=800)
    return p, losses


p, losses = train(p)
err = jnp.max(jnp.abs(net.apply(p, xs)[:, 0] - jnp.sin(jnp.pi * xs[:, 0])))
print(f"final loss {float(losses[-1]):.2e}, max error vs sin(pi x): {float(err):.1e}")

# %% [markdown]
# ## Divergence-free fields and multiplicative filter networks
# A stream function gives an exactly divergence-free velocity; `divergence_penalty` measures
# the divergence of any pointwise field. An MFN is an implicit representation `x -> u(x)`.

# %%
v = arch.stream_velocity(lambda z: jnp.sin(2 * jnp.pi * z[0]) * jnp.cos(2 * jnp.pi * z[1]))
pts = jax.random.uniform(jax.random.key(5), (128, 2))
print("divergence penalty of a curl field:", float(arch.divergence_penalty(v, pts)))
mfn = arch.MFN(hidden=32, n_filters=3, out=1, input_scale=20.0)
mp = mfn.init(jax.random.key(6), jnp.zeros((1, 2)))
print("MFN output shape:", mfn.apply(mp, pts).shape)
