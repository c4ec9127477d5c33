"""Activations by name, and LEADS' Swish with a learnable ``beta``.

:func:`get_activation` turns a name (as stored in a frozen experiment config) into a
callable. Every name maps to a stateless function except ``"swish"``, which builds a fresh
:class:`Swish` linen module with its own learnable ``beta``; call :func:`get_activation`
inside a ``@nn.compact`` method so that module becomes a submodule of the caller.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["ACTIVATIONS", "Swish", "get_activation", "swish_beta"]


def swish_beta(x: Float[Array, "..."], beta: Float[Array, ""] | float) -> Float[Array, "..."]:
    """LEADS' Swish: ``x * sigmoid(x * softplus(beta)) / 1.1``.

    Args:
        x: input, any shape.
        beta: the raw (unconstrained) parameter; ``softplus`` makes the slope positive.

    Returns:
        An array shaped like ``x``.
    """
    return x * jax.nn.sigmoid(x * jax.nn.softplus(beta)) / 1.1


class Swish(nn.Module):
    """Swish with a learnable scalar ``beta``, as in the LEADS code (Yin et al. 2021).

    ``f(x) = x * sigmoid(x * softplus(beta)) / 1.1`` with ``beta`` a scalar parameter
    initialised at ``beta_init`` (0.5 in LEADS, so the initial slope is softplus(0.5) ~ 0.974).
    The ``1.1`` divisor is LEADS' own constant.

    Attributes:
        beta_init: initial value of the raw parameter ``beta`` (shape ``[]``).
    """

    beta_init: float = 0.5

    @nn.compact
    def __call__(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """Applies Swish elementwise; ``x`` of any shape, output of the same shape."""
        beta = self.param("beta", nn.initializers.constant(self.beta_init), (), jnp.float32)
        return swish_beta(x, beta.astype(jnp.result_type(x)))


def _identity(x):
    return x


# name -> stateless callable. "swish" (learnable) is handled in get_activation.
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
    # torch's F.gelu (used by the FNO reference code) is the exact erf form; jax defaults to tanh.
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "elu": jax.nn.elu,
    "sigmoid": jax.nn.sigmoid,
    "silu": jax.nn.silu,
    "leaky_relu": jax.nn.leaky_relu,  # negative slope 0.01, as torch
    "identity": _identity,
}

_ALLOWED = (*ACTIVATIONS, "swish")


def get_activation(
    activation: str | Callable[[Array], Array],
) -> Callable[[Array], Array]:
    """Returns the activation for a name, or ``activation`` itself when it is callable.

    Args:
        activation: one of ``relu``, ``tanh``, ``softplus``, ``gelu`` (exact erf form, as
            torch), ``elu``, ``sigmoid``, ``silu`` (``x * sigmoid(x)``), ``leaky_relu``
            (slope 0.01), ``identity``, ``swish`` (a new :class:`Swish` module with a
            learnable ``beta``), or any callable.

    Returns:
        A callable ``[...] -> [...]``. For ``"swish"`` a new, unbound :class:`Swish`
        module: create it inside a ``@nn.compact`` method.

    Raises:
        ValueError: unknown name, or neither a string nor a callable.
    """
    if callable(activation):
        return activation
    if not isinstance(activation, str):
        raise ValueError(
            f"activation must be a name or a callable, got {activation!r}; "
            f"allowed: {', '.join(_ALLOWED)} or a callable"
        )
    if activation == "swish":
        return Swish()
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; allowed: {', '.join(_ALLOWED)}")
    return ACTIVATIONS[activation]


def check_activation(activation: str | Callable | None, what: str = "activation") -> None:
    """Raises ``ValueError`` early for a bad activation name (``None`` is allowed)."""
    if activation is None or callable(activation):
        return
    if not isinstance(activation, str) or activation not in _ALLOWED:
        raise ValueError(f"unknown {what} {activation!r}; allowed: {', '.join(_ALLOWED)}")
