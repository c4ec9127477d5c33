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
# # LEADS: learning dynamics shared across environments
#
# `dynajax.forecast.leads` models environment `e` as `f_e = f + g_e`: `f` is shared, each
# `g_e` is small. The `g_e` parameters are stacked on a leading environment axis and the
# field is `vmap`-ped over environments, so every environment integrates in one compiled
# program. Training minimises the trajectory MSE plus
# `(1/lambda) * sum_e [mean |g_e(x)|^2 / |x|^2 + alpha * sum_l sigma_l(g_e)^2]`.
# This tour trains briefly on Lotka-Volterra; `dynajax reproduce leads-lv` runs the
# thesis tables.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dynajax.forecast import leads, leads_baselines
from dynajax.nn import MLP, normal
from dynajax.systems import lotka_volterra

t_start = time.time()
f32 = lambda d: jnp.asarray(d.by_env(), jnp.float32)  # noqa: E731
train = f32(lotka_volterra.generate("train"))  # [10 envs, 1 trajectory, 20 frames, 2]
val = f32(lotka_volterra.generate("val", n_per_env=4))
test = f32(lotka_volterra.generate("test", n_per_env=8))
print(train.shape, val.shape, test.shape)

# %% [markdown]
# ## The model
# One MLP architecture serves for `f` and for every `g_e` (LEADS' 2-64-64-64-2 with a
# learnable Swish). `make_model` also builds the baselines: `"leads_no_min"` (no penalty),
# `"one_per_env"` and `"one_for_all"`.

# %%
net = MLP((64, 64, 64, 2), activation="swish", kernel_init=normal(0.05))
model = leads.make_model("leads", net, n_env=10, dt=0.5, lam=5e3, alpha=1e-3)
params = leads.init_params(model, train[0, 0, 0], key=jax.random.key(0))
print(jax.tree_util.tree_map(jnp.shape, params["g"])["Dense_0"])  # leading axis: environments
sn = leads.init_sn_state(model, params, key=jax.random.key(1))
pen, parts, _ = leads.penalty(model, params["g"], sn, train.reshape(10, -1, 2))
print(f"penalty at init {float(pen):.3e}", {k: float(v) for k, v in parts.items()})

# %% [markdown]
# ## Training
# `fit_leads` trains all seeds in one `vmap`-ped program with `dynajax.train.fit`, with
# exponential scheduled sampling and selection on the validation split. Two hundred steps
# here (the thesis trains for tens of thousands).

# %%
keys = jax.random.split(jax.random.key(2), 2)  # two seeds
res = leads.fit_leads(model, train, keys=keys, val=val, n_steps=200, chunk_size=100)
mse = leads_baselines.evaluate(model, res.best_params, test)  # [seeds, envs]
f_only = leads_baselines.evaluate(model, jax.vmap(leads.zero_like_g)(res.best_params), test)
print("test MSE per seed:", mse.mean(-1), " f alone (g_e = 0):", f_only.mean(-1))

# %%
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(np.arange(10) - 0.2, mse.mean(0), 0.4, label="f + g_e")
ax.bar(np.arange(10) + 0.2, f_only.mean(0), 0.4, label="f alone")
ax.set_yscale("log")
ax.set_xlabel("environment")
ax.set_ylabel("test MSE")
ax.legend()
plt.show()

# %% [markdown]
# ## A rollout
# The learned fields of two environments against the truth (seed 0).

# %%
p0 = jax.tree_util.tree_map(lambda x: x[0], res.best_params)
pred = leads.predict(model, p0, test[:, :, 0], test.shape[2])
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for ax, e in zip(axes, (0, 9)):
    ax.plot(test[e, 0, :, 0], test[e, 0, :, 1], "k-", label="truth")
    ax.plot(pred[e, 0, :, 0], pred[e, 0, :, 1], "r--", label="LEADS")
    ax.set_title(f"environment {e}")
axes[0].legend()
plt.show()
print(f"tour ran in {time.time() - t_start:.1f} s")
