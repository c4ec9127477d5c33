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
# # Continuous flows with a transport cost
#
# `dynajax.cnf`: (a) the OT-Flow potential and the exact trace of its Hessian, (b) OT-Flow
# trained on a 2-D toy density, (c) dynamic optimal transport between two Gaussians as a
# mean-field game, against the closed form, (d) a Gaussian-preserving flow (GP-flow). Sizes are
# tiny so this runs in well under a minute on 2 cores; `dynajax reproduce otflow-toy`,
# `mfg-gaussians`, `mfg-crowd` and `gpflow-toy` run the studies.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from dynajax.cnf import (
    AntisymmetricField,
    Potential,
    characteristics,
    gaussian_divergence,
    gp_flow,
    hutchinson_divergence,
    kl_terminal,
    mfg_objective,
    otflow_log_density,
    otflow_sample,
    otflow_step,
    sample_toy,
    standard_normal_logpdf,
)
from dynajax.train import fit, init_state, make_step
from dynajax.transport import gaussian_log_density, gaussian_w2

key = jax.random.key(0)

# %% [markdown]
# ## (a) The potential and its exact Laplacian
# `Phi(x, t) = w^T N(s) + 1/2 s^T A^T A s + b^T s` with `s = (x, t)` and `N` a ResNet with the
# activation `log cosh` (Onken et al. 2021). The flow is `dx/dt = -grad Phi`; its divergence
# `-tr(grad^2 Phi)` comes in closed form through the layers, at about the cost of the gradient.
# Below: the closed form against `jnp.trace(jax.hessian(Phi))` and one Hutchinson probe.

# %%
d = 10
pot = Potential(d, width=16, n_layers=3)
params = pot.init(key=key)
x = jax.random.normal(jax.random.fold_in(key, 1), (64, d))
t = jnp.full((64,), 0.3)
_, _, lap = pot.grad_and_laplacian(params, x, t)
hess = jax.vmap(lambda xi, ti: jnp.trace(jax.hessian(lambda y: pot(params, y[None], ti)[0])(xi)))(x, t)
velocity = lambda y: -pot.grad(params, y[None], 0.3)[0][0]  # one point: [d] -> [d]  # noqa: E731
hutch = -hutchinson_divergence(velocity, x, key=jax.random.fold_in(key, 2))
print("max |exact - autodiff Hessian trace| / max |trace|:", float(jnp.max(jnp.abs(lap - hess)) / jnp.max(jnp.abs(hess))))
print("one Hutchinson probe, mean relative error per point:", float(jnp.mean(jnp.abs(hutch - hess) / jnp.abs(hess))))

# %% [markdown]
# ## (b) OT-Flow on 8 Gaussians
# The objective `alpha_L L + alpha_C C + alpha_R R` (kinetic energy, negative log-likelihood of
# the flowed data under `N(0, I)`, HJB penalty), trained with `dynajax.train.fit`; samples by
# the inverse flow.

# %%
pot2 = Potential(2, width=32, n_layers=2)
opt = optax.adam(optax.exponential_decay(0.05, 100, 0.5, staircase=True))
step = otflow_step(pot2, opt, alpha=(1.0, 100.0, 5.0), n_steps=8)
sampler = lambda k, i: sample_toy("8gaussians", 512, key=k)  # noqa: E731
res = fit(step, init_state(pot2.init(key=key), opt, key=key), sampler, n_steps=300, chunk_size=100, progress=False)
q = res.state.params
x_test = sample_toy("8gaussians", 4000, key=jax.random.fold_in(key, 3))
print("test NLL (nats):", float(-jnp.mean(otflow_log_density(pot2, q, x_test))))
gen, _ = otflow_sample(pot2, q, 4000, key=jax.random.fold_in(key, 4))
path = characteristics(pot2, q, x_test[:40], path=True)

fig, ax = plt.subplots(1, 3, figsize=(11, 3.5))
ax[0].scatter(*x_test.T, s=1)
ax[0].set_title("data")
ax[1].scatter(*gen.T, s=1)
ax[1].set_title("inverse-flow samples")
ax[2].plot(path.z[:, :, 0], path.z[:, :, 1], lw=0.8)
ax[2].set_title("trajectories to N(0, I)")
for a in ax:
    a.set_aspect("equal")
plt.tight_layout()

# %% [markdown]
# ## (c) Dynamic OT between Gaussians as a mean-field game
# No running cost but the kinetic energy, the terminal cost `alpha_G KL(rho(1) | N(0, I))` and
# the HJB penalty (Ruthotto et al. 2020). At the optimum `2 L = W2^2`, known in closed form.

# %%
m, s = jnp.array([1.0, -0.5]), jnp.array([0.7, 1.3])
log_rho0 = gaussian_log_density(m, jnp.diag(s**2))
terminal = kl_terminal(standard_normal_logpdf, 1000.0)


def loss(p, xb, k):
    J, terms = mfg_objective(pot2, p, xb, log_rho0(xb), terminal=terminal, alpha_hjb=(5.0, 0.0))
    return J, {"L": terms.kinetic}


opt_g = optax.adam(optax.exponential_decay(0.01, 150, 0.5))
res_g = fit(make_step(loss, opt_g), init_state(pot2.init(key=key), opt_g, key=key),
            lambda k, i: m + s * jax.random.normal(k, (512, 2)), n_steps=400, chunk_size=100, progress=False)
x0 = m + s * jax.random.normal(jax.random.fold_in(key, 5), (4000, 2))
ch = characteristics(pot2, res_g.state.params, x0, n_steps=16)
print("2L learned:", float(2 * jnp.mean(ch.kinetic)), " W2^2 closed form:", float(gaussian_w2(m, jnp.diag(s**2), jnp.zeros(2), jnp.eye(2))))

# %% [markdown]
# ## (d) A Gaussian-preserving flow
# `v(x) = div A(x) - A(x) x` with `A` antisymmetric leaves `N(0, I)` invariant for any weights
# (Morel et al. 2023): `div(gamma v) = 0`, so pushing Gaussian samples through the flow keeps
# their law. `gpflow-toy` trains such a flow to lower the transport cost of a normalizing flow.

# %%
field = AntisymmetricField(2, hidden=(32, 32))
fp = jax.tree_util.tree_map(lambda a: 5.0 * a, field.init(key=key))  # scaled weights: a visible swirl
v = lambda y: field(fp, y)  # noqa: E731
z = jax.random.normal(jax.random.fold_in(key, 6), (20_000, 2))
sz = gp_flow(v, z, n_steps=16)
print("max |div_gamma v| on samples:", float(jnp.max(jnp.abs(gaussian_divergence(v, z[:500])))))
print("mean displacement:", float(jnp.mean(jnp.linalg.norm(sz - z, axis=1))))
for name, pts in (("before", z), ("after", sz)):
    print(f"mean / covariance {name} the flow:", np.round(np.asarray(pts.mean(0)), 3), np.round(np.cov(np.asarray(pts).T), 3).tolist())
