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
# # GAN(TK)²: infinite-width discriminators and the flows they induce (`gantk`)
#
# `gantk.kernels` gives the closed-form NTK / NNGP of fully connected nets with
# neural-tangents' conventions (bit-for-bit in float64), `gantk.discriminators` the
# infinite-width discriminators (IPM = NTK-MMD witness, LSGAN closed form, any loss by ODE),
# `gantk.flows` the particle flows of thesis chapter 5.

# %%
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from gantk import data, discriminators as D, flows, kernels as K, metrics, plots

net = K.mlp("relu", depth=3, width=128, W_std=1.0, b_std=1.0)  # gantk2's discriminator
kfn = K.kernel_fn(net)  # neural-tangents signature kernel_fn(x1, x2, get)
print("k(0, 0) =", float(kfn(jnp.zeros((1, 2)), None, "ntk")[0, 0]))  # 2.25

# %% [markdown]
# ## An infinite-width IPM discriminator is the NTK-MMD witness
# `f_tau = tau * (mean_i k(., x_i) - mean_j k(., y_j))`; the particle step descends `(tau/2) MMD_k^2`.

# %%
x0, y = data.load("8gaussians", 60, 60, seed=0)
cfg = flows.FlowConfig("ipm", "relu", tau=1.0, eta=2.0 * 60)
xf, snaps = flows.run_flow(cfg, x0, y, 300, snapshot_every=100)
print("W2^2/2 before / after:", metrics.half_w2(x0, y), metrics.half_w2(xf, y))

fig, axes = plt.subplots(1, 2, figsize=(9, 4))
plots.plot_particles(axes[0], np.asarray(x0), y, kernel="relu", loss="ipm", resolution=30)
axes[0].set_title("start, c(f*) and -grad c")
plots.plot_particles(axes[1], np.asarray(xf), y)
axes[1].set_title("after 300 steps")

# %% [markdown]
# ## LSGAN in closed form: `phi(z) = (1 - e^-z)/z`, matrix-free (Lanczos)

# %%
xs, ys = jnp.asarray(x0[:20]), jnp.asarray(y[:20])
for method in ("krylov", "eigh", "rk4"):
    d = D.lsgan("relu", xs, ys, 1.0, method=method)
    print(method, "F on fake (mean) =", float(d.F[:20].mean()), " on real:", float(d.F[20:].mean()))

# %% [markdown]
# ## Dirac-GAN gradient fields (Fig 5.6): ReLU with bias keeps pulling near the target

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
plots.plot_field(axes[0], "relu", "ipm", n=11)
plots.plot_field(axes[1], "rbf", "ipm", n=11)
