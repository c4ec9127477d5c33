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
# # Optimal transport in `dynajax.transport`
#
# Exact and entropic OT (through ott-jax), Gaussian closed forms, kernel distances, and the
# sliced family (sliced, max-sliced, spherical sliced Wasserstein). Costs are squared /
# un-rooted unless the name ends in `_distance`.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

from dynajax import transport as T

key_x, key_y = jax.random.split(jax.random.key(0))
x = jax.random.normal(key_x, (300, 2))
y = 0.5 * jax.random.normal(key_y, (300, 2)) + jnp.array([3.0, 0.0])

# %% [markdown]
# ## Exact, entropic and closed-form W2^2
# Two Gaussians N(0, I) and N((3, 0), I/4): W2^2 = 9 + 2 (1 - 1/2)^2 = 9.5.

# %%
print("closed form   ", float(T.gaussian_w2(jnp.zeros(2), jnp.eye(2), jnp.array([3.0, 0.0]), 0.25 * jnp.eye(2))))
print("exact (300 pts)", float(T.exact_w2(x, y)))
for eps in [1.0, 0.1, 0.01]:
    print(f"sinkhorn eps={eps:<5}", float(T.sinkhorn(x, y, epsilon=eps).transport_cost))
print("sinkhorn divergence", float(T.sinkhorn_divergence(x, y, epsilon=0.01)))
print("energy distance", float(T.energy_distance(x, y)), " MMD^2", float(T.mmd2(x, y, bandwidths=[0.5, 1.0, 2.0])))

# %% [markdown]
# ## Sliced distances
# SW_2^2 averages 1-D costs over random directions; max-SW takes the worst direction.
# For a translate by b, SW_2^2 = |b|^2 / d on average and max-SW_2^2 = |b|^2.

# %%
b = jnp.array([3.0, 0.0])
key = jax.random.key(1)
print("SW_2^2(x, x + b)    ", float(T.sliced_wasserstein(x, x + b, key=key, n_proj=500)), "(|b|^2/2 = 4.5)")
print("max-SW_2^2(x, x + b)", float(T.max_sliced_wasserstein(x, x + b, key=key)), "(|b|^2 = 9)")

# %% [markdown]
# ## Spherical sliced Wasserstein on S^2
# A cloud concentrated near the north pole against the uniform distribution, then 20
# projected gradient steps that move the cloud onto the uniform sample (a discrete SSW flow).

# %%
sphere = lambda z: z / jnp.linalg.norm(z, axis=-1, keepdims=True)  # noqa: E731
north = sphere(jax.random.normal(key_x, (200, 3)) * 0.3 + jnp.array([0.0, 0.0, 1.0]))
uniform = sphere(jax.random.normal(key_y, (200, 3)))
print("SSW_2^2(north, uniform) =", float(T.spherical_sliced_wasserstein(north, uniform, key=key, n_proj=200)))
print("closed form against the uniform measure:", float(T.spherical_sliced_wasserstein_unif(north, key=key, n_proj=200)))
ssw = jax.jit(lambda z: T.spherical_sliced_wasserstein(z, uniform, key=key, n_proj=200))
grad_ssw = jax.jit(jax.grad(ssw))
moved = north
for _ in range(20):
    moved = sphere(moved - 1000.0 * grad_ssw(moved))
print("after 20 projected gradient steps:", float(ssw(moved)))

# %%
fig, ax = plt.subplots(figsize=(4, 4))
ax.scatter(*x.T, s=4, label="x ~ N(0, I)")
ax.scatter(*y.T, s=4, label="y ~ N((3,0), I/4)")
ax.set_aspect("equal")
ax.legend()
plt.show()
