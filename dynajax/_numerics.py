"""Roots with finite gradients at zero, shared by the distances of dynajax.

``sqrt`` and ``v ** (1/p)`` have an infinite derivative at ``0``, which backpropagates as
``inf * 0 = NaN``. The functions here return the same values and take the subgradient
``0`` at ``0`` (neural-tangents' ``_sqrt`` convention for its kernels). For a distance
``D(x, y) >= 0`` that vanishes at ``x = y``, ``0`` is in the (Clarke) subdifferential there:
``x = y`` is a minimum. Both use the double-``where`` trick: the root is taken of a safe
stand-in where the input is zero, so that no ``inf`` is formed even in the branch that
:func:`jax.numpy.where` discards (whose gradient would otherwise be ``0 * inf = NaN``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike


def safe_sqrt(x: ArrayLike) -> Array:
    """``sqrt(max(x, 0))``, with gradient ``0`` where ``x <= 0``."""
    x = jnp.asarray(x)
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def safe_root(x: ArrayLike, p) -> Array:
    """``max(x, 0) ** (1 / p)``, with gradient ``0`` where ``x <= 0``."""
    x = jnp.asarray(x)
    pos = x > 0
    return jnp.where(pos, jnp.where(pos, x, 1.0) ** (1.0 / p), 0.0)
