"""The seven 2-D toy densities of the FFJORD and OT-Flow papers, sampled in JAX.

Grathwohl et al. (ICLR 2019, FFJORD) and Onken et al. (AAAI 2021, OT-Flow, Fig. 4) train on
8 Gaussians, checkerboard, 2 spirals, swiss roll, circles, moons and pinwheel, each scaled to
roughly ``[-4, 4]^2``. The generators here follow those papers' descriptions of the shapes and
scales (written with ``jax.random``, so a key gives the same samples on every platform); they
are not bit-identical to the authors' numpy samplers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from dynajax import _validate

__all__ = ["TOY_DENSITIES", "sample_toy"]

TOY_DENSITIES = ("8gaussians", "checkerboard", "2spirals", "swissroll", "circles", "moons", "pinwheel")


def _eight_gaussians(key, n):
    k1, k2 = jax.random.split(key)
    ang = jnp.arange(8) * jnp.pi / 4
    centers = 4.0 * jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1)
    idx = jax.random.randint(k1, (n,), 0, 8)
    return (centers[idx] + 0.5 * jax.random.normal(k2, (n, 2))) / jnp.sqrt(2.0)


def _checkerboard(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = 4.0 * jax.random.uniform(k1, (n,)) - 2.0
    x2 = jax.random.uniform(k2, (n,)) - 2.0 * jax.random.randint(k3, (n,), 0, 2)
    x2 = x2 + jnp.floor(x1) % 2
    return 2.0 * jnp.stack([x1, x2], 1)


def _two_spirals(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    r = jnp.sqrt(jax.random.uniform(k1, (n,))) * 3.0 * jnp.pi
    sign = jnp.where(jax.random.bernoulli(k2, 0.5, (n,)), 1.0, -1.0)
    x = sign[:, None] * jnp.stack([-jnp.cos(r) * r, jnp.sin(r) * r], 1)
    return (x + 0.5 * jax.random.uniform(k3, (n, 2))) / 3.0


def _swiss_roll(key, n):
    k1, k2 = jax.random.split(key)
    t = 1.5 * jnp.pi * (1.0 + 2.0 * jax.random.uniform(k1, (n,)))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], 1)
    return (x + jax.random.normal(k2, (n, 2))) / 5.0


def _circles(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    ang = 2.0 * jnp.pi * jax.random.uniform(k1, (n,))
    radius = jnp.where(jax.random.bernoulli(k2, 0.5, (n,)), 1.0, 0.5)
    x = radius[:, None] * jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1)
    return 3.0 * (x + 0.08 * jax.random.normal(k3, (n, 2)))


def _moons(key, n):
    k1, k2, k3 = jax.random.split(key, 3)
    ang = jnp.pi * jax.random.uniform(k1, (n,))
    upper = jax.random.bernoulli(k2, 0.5, (n,))
    x = jnp.where(upper[:, None], jnp.stack([jnp.cos(ang), jnp.sin(ang)], 1),
                  jnp.stack([1.0 - jnp.cos(ang), 0.5 - jnp.sin(ang)], 1))
    x = x + 0.1 * jax.random.normal(k3, (n, 2))
    return 2.0 * x + jnp.asarray([-1.0, -0.2])


def _pinwheel(key, n, n_arms=5, radial_std=0.3, tangential_std=0.1, rate=0.25):
    k1, k2 = jax.random.split(key)
    feats = jax.random.normal(k1, (n, 2)) * jnp.asarray([radial_std, tangential_std])
    feats = feats + jnp.asarray([1.0, 0.0])
    labels = jax.random.randint(k2, (n,), 0, n_arms)
    ang = 2.0 * jnp.pi * labels / n_arms + rate * jnp.exp(feats[:, 0])
    c, s = jnp.cos(ang), jnp.sin(ang)
    x = jnp.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], 1)
    return 2.0 * x


_SAMPLERS = {
    "8gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "2spirals": _two_spirals,
    "swissroll": _swiss_roll,
    "circles": _circles,
    "moons": _moons,
    "pinwheel": _pinwheel,
}


def sample_toy(name: str, n: int, *, key: PRNGKeyArray) -> Float[Array, "n 2"]:
    """``n`` samples ``[n, 2]`` (float32) of the toy density ``name`` (:data:`TOY_DENSITIES`)."""
    _validate.choice(name, "toy density", TOY_DENSITIES)
    n = _validate.integer(n, "n")
    return _SAMPLERS[name](key, n).astype(jnp.float32)
