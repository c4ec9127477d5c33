"""Exponential-map normalizing flow on ``S^2`` (Rezende et al., ICML 2020, "Normalizing flows on
tori and spheres", Sec. 4.2 "exponential-map flows").

One layer is ``f(x) = exp_x(grad_S phi(x))`` with the radial potential
``phi(x) = sum_j (alpha_j / beta_j) exp(beta_j (<mu_j, x> - 1))``, ``alpha_j >= 0``,
``sum_j alpha_j <= 1``, ``beta_j > 0``, ``|mu_j| = 1``: under these constraints ``f`` is a
diffeomorphism of the sphere (the paper's condition, from McCann's theorem on ``c``-convex
potentials). ``grad_S`` is the Euclidean gradient projected on the tangent plane, and
``exp_x(v) = cos|v| x + sin|v| v / |v|``.

The flow maps data to the base (the "normalising" direction), ``z = f_L o ... o f_1(x)``, with
the uniform base density ``1 / (4 pi)``, so that the log-density needs no inverse:

``log p(x) = -log(4 pi) + sum_l log |det D f_l|``,

where ``D f_l`` is the differential between tangent planes. It is computed exactly: with the
ambient Jacobian ``J [3, 3]`` of the layer (``jax.jacfwd``) and an orthonormal basis ``e_1, e_2``
of ``T_x S^2``, ``|det D f| = |det [J e_1, J e_2, f(x)]|`` (the columns ``J e_i`` lie in
``T_{f(x)} S^2``, and the unit normal ``f(x)`` completes an orthonormal frame there).

Parameters are a pytree of arrays with a leading layer axis (``raw_mu [L, M, 3]``,
``raw_alpha [L, M + 1]``, ``raw_beta [L, M]``); ``alpha`` is the first ``M`` entries of a
softmax over ``M + 1`` (so ``sum alpha < 1``), ``beta = softplus(raw_beta) + BETA_MIN``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "BETA_MIN",
    "exp_map_layer",
    "flow_forward",
    "flow_log_density",
    "init_exp_map_flow",
    "layer_constraints",
    "tangent_basis",
]

BETA_MIN = 1e-3
LOG_AREA = math.log(4 * math.pi)


def init_exp_map_flow(n_layers: int, n_components: int, beta_init: float = 3.0, *, key):
    """Random parameters: centres uniform on ``S^2``, small ``alpha``, ``beta ~ beta_init``."""
    if n_layers < 1 or n_components < 1:
        raise ValueError(f"need n_layers >= 1 and n_components >= 1, got {n_layers}, {n_components}")
    if not beta_init > BETA_MIN:
        raise ValueError(f"beta_init must be > {BETA_MIN}, got {beta_init}")
    return _init(key, n_layers, n_components, float(beta_init))


@partial(jax.jit, static_argnums=(1, 2, 3))
def _init(key, n_layers, n_components, beta_init):
    k1, k2 = jax.random.split(key)
    mu = jax.random.normal(k1, (n_layers, n_components, 3))
    # slack logit 2 + log M: alpha_j about 1 / (M e^2 + M + ...) -> a near-identity start
    slack = jnp.full((n_layers, 1), 2.0 + math.log(n_components))
    raw_alpha = jnp.concatenate(
        [0.1 * jax.random.normal(k2, (n_layers, n_components)), slack], axis=1
    )
    raw_beta = jnp.full((n_layers, n_components), math.log(math.expm1(beta_init - BETA_MIN)))
    return {"raw_mu": mu, "raw_alpha": raw_alpha, "raw_beta": raw_beta}


def layer_constraints(layer):
    """``(mu [M, 3], alpha [M], beta [M])`` of one layer's raw parameters (see module doc)."""
    mu = layer["raw_mu"] / jnp.linalg.norm(layer["raw_mu"], axis=-1, keepdims=True)
    alpha = jax.nn.softmax(layer["raw_alpha"])[:-1]
    beta = jax.nn.softplus(layer["raw_beta"]) + BETA_MIN
    return mu, alpha, beta


def exp_map_layer(layer, x):
    """``f(x) = exp_x(grad_S phi(x))`` for one point ``x [3]`` (a unit vector); returns ``[3]``."""
    mu, alpha, beta = layer_constraints(layer)
    s = alpha * jnp.exp(beta * (mu @ x - 1.0))  # [M]: d phi / d <mu_j, x>
    g = s @ mu
    v = g - jnp.dot(g, x) * x
    r2 = jnp.dot(v, v)
    ok = r2 > 1e-12
    r = jnp.sqrt(jnp.where(ok, r2, 1.0))
    cos_r = jnp.where(ok, jnp.cos(r), 1.0 - 0.5 * r2)
    sinc_r = jnp.where(ok, jnp.sin(r) / r, 1.0 - r2 / 6.0)
    y = cos_r * x + sinc_r * v
    return y / jnp.linalg.norm(y)


def tangent_basis(x):
    """An orthonormal basis ``[3, 2]`` of the tangent plane ``T_x S^2`` (columns ``e_1, e_2``)."""
    a = jnp.where(jnp.abs(x[2]) < 0.9, jnp.array([0.0, 0.0, 1.0]), jnp.array([1.0, 0.0, 0.0]))
    a = a.astype(x.dtype)
    e1 = a - jnp.dot(a, x) * x
    e1 = e1 / jnp.linalg.norm(e1)
    e2 = jnp.cross(x, e1)
    return jnp.stack([e1, e2], axis=1)


def _layer_with_logdet(layer, x):
    y = exp_map_layer(layer, x)
    J = jax.jacfwd(lambda z: exp_map_layer(layer, z))(x)
    cols = J @ tangent_basis(x)
    frame = jnp.concatenate([cols, y[:, None]], axis=1)
    return y, jnp.log(jnp.abs(jnp.linalg.det(frame)))


def _check_points(x):
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"expected points of shape [n, 3] on S^2, got {x.shape}")
    if not isinstance(x, jax.core.Tracer):
        dev = float(np.max(np.abs(np.sum(np.asarray(x, np.float64) ** 2, axis=-1) - 1.0)))
        if dev > 1e-4:
            raise ValueError(f"points are not on the unit sphere (max | |x|^2 - 1 | = {dev:.3g})")
    return x


def flow_forward(params, x):
    """Push ``x [n, 3]`` through every layer: ``(z [n, 3], sum of log |det D f_l| [n])``."""
    x = _check_points(x)

    def one(xi):
        def body(carry, layer):
            y, ld = _layer_with_logdet(layer, carry[0])
            return (y, carry[1] + ld), None

        (z, ld), _ = jax.lax.scan(body, (xi, jnp.zeros((), xi.dtype)), params)
        return z, ld

    return jax.vmap(one)(x)


def flow_log_density(params, x):
    """``log p(x) = -log(4 pi) + sum_l log |det D f_l|`` at ``x [n, 3]`` (area measure)."""
    _, ld = flow_forward(params, x)
    return ld - LOG_AREA
