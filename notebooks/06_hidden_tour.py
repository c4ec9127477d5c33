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
# # Partially observed dynamics: hidden-state ODEs (thesis ch. 1-2)
#
# `dynajax.forecast.hidden` learns a vector field `F` on a full state `X` from observations
# `Y = H(X)` only. Here: Navier-Stokes with a passive density `rho`; the state is
# `X = (rho, u_x, u_y)`, only `rho` is observed. In setting 2 the initial state is given and
# the loss sees `rho` only; the hidden velocity is scored by its per-pixel cosine.
# `dynajax reproduce hidden-ns` runs the full study (settings 1-2, ablations, restructuring).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from dynajax.forecast import adjoint
from dynajax.forecast import hidden as hd
from dynajax.forecast.hidden_baselines import ResNet
from dynajax.systems import navier_stokes as ns

states = ns.density_velocity_states(7, 9, key=jax.random.key(0))  # [7 sims, 10 frames, (rho, u_x, u_y), 32, 32]
states[:, :, 1:] /= np.sqrt(np.mean(states[:5, :, 1:] ** 2))  # velocity in units of its training RMS
print(states.shape)

# %% [markdown]
# A model: ResNet vector field, `H` = the density channel, 3 Euler substeps per frame.
# `hd.windows` cuts the sequences into windows (observations `Y`, and the full state at the
# last context frame, given in setting 2); `hd.fit` trains on them with `dynajax.train.fit`
# and keeps the parameters of the best validation loss. On CPU the rollout over frames
# unrolls by itself because the field convolves (XLA:CPU runs convolutions in a rolled loop
# many times slower).

# %%
H = hd.ChannelProjection([0], 3)
model = hd.HiddenModel(ResNet(3, width=8, n_down=1, n_blocks=1), H, setting="canonical", n_context=1, substeps=3)
train_w = hd.windows(states[:4], [0], 4, 1)  # context K = 1 frame, then 3 targets
val_w = hd.windows(states[4:5], [0], 4, 1)
res = hd.fit(model, train_w, val_w, key=jax.random.key(1), steps=30, lr=2e-3, batch_size=8, val_every=10)
print("unrolls on this backend:", hd.should_unroll(lambda p, x: model.advance(p, x), res.best_params,
                                                   jnp.asarray(train_w["x0"][0])))
print("validation loss:", np.round(res.history["val_loss"], 3), "best at step", int(res.best_step))

# %% [markdown]
# Forecast the test sequences and score them beside persistence.

# %%
test_sims = states[5:]
x0 = jnp.asarray(test_sims[:, 0])
pred = hd.forecast(model, res.best_params, jnp.asarray(test_sims[:, :1, :1]), x0, 6)  # [7, B, 3, 32, 32]
true = jnp.moveaxis(jnp.asarray(test_sims[:, :7]), 1, 0)
err = hd.relative_error(pred[:, :, :1], true[:, :, :1])
err_p = hd.relative_error(hd.persistence(x0, 6)[:, :, :1], true[:, :, :1])
cos = hd.velocity_cosine(pred[:, :, 1:], true[:, :, 1:])
print("rel. error h=6:", hd.horizon_means(err.T, [6]), "persistence:", hd.horizon_means(err_p.T, [6]))
print("hidden-velocity cosine h=6:", hd.horizon_means(cos.T, [6]))
fig, ax = plt.subplots(1, 3, figsize=(9, 3))
for a, img, t in zip(ax, [true[6, 0, 0], pred[6, 0, 0], true[6, 0, 1]], ["true rho, t=6", "predicted rho", "hidden u_x"]):
    a.imshow(np.asarray(img)), a.set_title(t), a.axis("off")
plt.show()

# %% [markdown]
# Chapter 1: the adjoint of eq. 1.8 integrated by hand agrees with the gradient obtained by
# differentiating through an explicit Euler discretisation up to `O(dt)`.

# %%
with jax.enable_x64(True):
    f = lambda th, x: jnp.tanh(th @ x) - 0.3 * x
    th = jnp.array([[0.5, -1.0], [1.2, 0.1]])
    x0 = jnp.array([1.0, -0.5])
    term = lambda x: 0.5 * jnp.sum(x**2)
    g_ref, _ = adjoint.adjoint_gradient(f, th, adjoint.trajectory(f, th, x0, 1.0, 400), 1.0, terminal=term)
    for n in (10, 20, 40):
        g = jax.grad(lambda t, n=n: adjoint.euler_objective(f, t, x0, 1.0, n, terminal=term))(th)
        print(n, float(jnp.linalg.norm(g - g_ref)))
