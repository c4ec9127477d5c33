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
# # APHYNITY: physics plus the smallest neural correction
#
# `dynajax.forecast.aphynity` models a vector field as `F = F_p + F_a`: a parametric physical
# family `F_p` (from `dynajax.systems` or your own function) and a flax network `F_a`. Training
# minimises `||F_a||^2` under the constraint that rollouts match the data, with an adaptive
# multiplier (thesis Algorithm 2): `loss = ||F_a||^2 + lambda * L_traj`, `lambda += tau2 * L_traj`.
#
# Here: the damped pendulum with the *frictionless* prior, which cannot explain the damping.
# A tiny run (few trajectories, a small network, a few hundred steps) so that it takes seconds;
# `dynajax reproduce aphynity-pendulum` runs the thesis-size experiment.

# %%
import math
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dynajax.forecast.aphynity import Aphynity, TrainConfig, evaluate_mse, train
from dynajax.forecast.baselines import param_only
from dynajax.nn import MLP, orthogonal
from dynajax.systems import fit, pendulum

n_frames = 16
train_ds = pendulum.generate("train", n_traj=6)
val_ds = pendulum.generate("val", n_traj=6)
states = {s: d.states[:, :n_frames] for s, d in (("train", train_ds), ("val", val_ds))}
times = train_ds.times[:n_frames]
print(states["train"].shape, "true T0 =", pendulum.PARAMS["T0"])

# %% [markdown]
# ## The model
# `Aphynity(family, network)`; `physics=None` is a Neural ODE, `network=None` the physics-only
# model. With a zero network the rollout is exactly the physical family's.

# %%
family = pendulum.FAMILIES["frictionless"]
model = Aphynity(family, MLP((16, 16, 2), kernel_init=orthogonal(0.2)))
params = model.init(jax.random.key(0), jnp.asarray(states["train"][:, 0], jnp.float32))
print("physical parameters:", model.physical_params(params))
print("F at two states:", model.field(params, jnp.asarray(states["train"][:2, 0], jnp.float32)))

# %% [markdown]
# ## Physics alone vs APHYNITY
# The least-squares frictionless fit is biased (it bends T0 to mimic the damping); APHYNITY lets
# the network take the damping and keeps `omega0` physical. Two seeds train in one compiled
# program (`vmap`); parameters are selected on the validation split.

# %%
ls = fit.fit_family(family, states["train"], times=times, init="grid")
T0_ls = float(pendulum.T0_from_omega0_sq(ls.params["omega0_sq"]))

cfg = TrainConfig(method="aphynity", penalty="l2_normalized", n_steps=300, chunk_size=150, lr=3e-3,
                  lr_physical=3e-2, tau2=0.3, n_iter=5)
t = time.perf_counter()
res = train(model, states["train"], states["val"], times, cfg, keys=jax.random.split(jax.random.key(1), 2))
print(f"trained 2 seeds x {cfg.n_steps} steps in {time.perf_counter() - t:.1f} s")
best = jax.tree_util.tree_map(lambda x: x[0], res.best_params)
T0_aph = float(pendulum.T0_from_omega0_sq(model.physical_params(best)["omega0_sq"]))
print(f"T0: least squares {T0_ls:.3f}, APHYNITY {T0_aph:.3f} (truth 6)")
val = jnp.asarray(states["val"], jnp.float32)
print("val ln MSE: physics only", math.log(fit.rollout_mse(family, ls.params, states["val"], times=times)),
      "APHYNITY", math.log(float(evaluate_mse(model, best, val, times))))

# %% [markdown]
# The multiplier grows while the trajectory constraint is violated:

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].semilogy(res.history["constraint"][:, 0], label="L_traj")
axes[0].semilogy(res.history["objective"][:, 0], label="||F_a||^2 (normalised)")
axes[0].plot(res.history["multiplier"][:, 0] / 1e3, label="lambda / 1000")
axes[0].set(xlabel="step")
axes[0].legend(fontsize=7)
pred = model.rollout(best, val[:1, 0], times)
phys = fit.rollout(family, ls.params, states["val"][:1, 0], times)
axes[1].plot(times, states["val"][0, :, 0], "k.", label="data")
axes[1].plot(times, np.asarray(pred)[0, :, 0], "C3-", label="APHYNITY")
axes[1].plot(times, np.asarray(phys)[0, :, 0], "C0--", label="frictionless least squares")
axes[1].set(xlabel="t", ylabel="theta")
axes[1].legend(fontsize=7)
plt.show()

# %% [markdown]
# Baselines and ablations are configurations: `param_only(family)`, `neural_ode(net)`, and
# `TrainConfig(method="vanilla" | "non_adaptive" | "derivative")`.

# %%
only = param_only(family)
print(only.physics.name, only.network)
