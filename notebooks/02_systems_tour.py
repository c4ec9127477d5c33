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
# # The physical systems and their datasets
#
# `dynajax.systems` holds one module per system of the thesis: the true vector field, the
# physical families used as (in)complete priors, an initial-condition sampler and a
# deterministic, cached dataset generator returning a `TrajectoryDataset`
# (`states [n_traj, n_time, *state_shape]`). Data are generated in float64.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from dynajax.systems import fit, get_system, lotka_volterra, navier_stokes, pendulum, reaction_diffusion, system_names

print(system_names())

# %% [markdown]
# ## Damped pendulum (APHYNITY)
# T0 = 6, alpha = 0.2, 25 trajectories per split, 40 frames at dt = 0.5, noise 0.01.
# A least-squares fit of the *frictionless* family shows why physics alone is not enough.

# %%
train, test = pendulum.generate("train"), pendulum.generate("test")
print(train.states.shape, train.times[:3], train.params["T0"][:2])
frictionless = get_system("pendulum").family("frictionless")
res = fit.fit_family(frictionless, train, init="grid")
T0_hat = float(pendulum.T0_from_omega0_sq(res.params["omega0_sq"]))
print(f"frictionless fit: T0 = {T0_hat:.2f} (true 6), test ln MSE = {np.log(fit.rollout_mse(frictionless, res.params, test)):.2f}")

# %% [markdown]
# ## Lotka-Volterra environments (LEADS)
# Ten environments share initial conditions and differ in (alpha, gamma).

# %%
lv = lotka_volterra.generate("test", n_per_env=2)
fig, ax = plt.subplots(figsize=(4, 4))
for e in range(lv.n_env):
    traj = lv.states[lv.env == e][0]
    ax.plot(traj[:, 0], traj[:, 1], lw=1)
ax.set(xlabel="prey u", ylabel="predator v", title="one trajectory per environment")
plt.show()

# %% [markdown]
# ## Reaction-diffusion and Navier-Stokes fields

# %%
start = time.perf_counter()
rd = reaction_diffusion.generate("test", n_traj=2)
ns = navier_stokes.generate("test", n_per_env=1, warmup=2.0, n_frames=3, cache=False)
print(f"generated RD {rd.states.shape} and NS {ns.states.shape} in {time.perf_counter() - start:.1f} s")
w = ns.states[0, -1]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
axes[0].imshow(rd.states[0, -1, 0], cmap="viridis")
axes[0].set_title("RD: u at t = 2.5")
axes[1].imshow(w[0], cmap="RdBu_r")
axes[1].set_title("NS: vorticity")
axes[2].imshow(w[1], cmap="magma")
axes[2].set_title("NS: passive scalar")
for a in axes:
    a.set_xticks([])
    a.set_yticks([])
plt.show()
u = navier_stokes.velocity_from_vorticity(w[0])
print("velocity field", u.shape, "max |u| =", float(np.abs(u).max()))
