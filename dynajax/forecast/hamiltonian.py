"""Hamiltonian physical models ``F_p = J grad H`` for APHYNITY (thesis Table 3.4 (c)).

For a state ``y = (q, p)`` (positions then momenta, each of dimension ``d``) and a scalar
Hamiltonian ``H(q, p; theta)``, the Hamiltonian field is

    F_p(y) = J grad H(y) = (dH/dp, -dH/dq),   J = [[0, I], [-I, 0]],

computed by automatic differentiation. Along its flow ``dH/dt = grad H . J grad H = 0``: the
physics-only model conserves ``H`` (a damped system is therefore outside the family, which is
what APHYNITY's ``F_a`` completes).

* :func:`hamiltonian_field` turns any ``H(q, p, theta)`` into a field ``field(t, y, theta)``
  usable as :class:`~dynajax.forecast.aphynity.Aphynity`'s ``physics`` (with
  ``physics_init``).
* :func:`pendulum_hamiltonian` is the ideal pendulum's ``p^2 / 2 + omega0^2 (1 - cos q)``
  with the learnable ``omega0_sq``; :data:`PENDULUM` is the resulting
  :class:`~dynajax.systems.base.PhysicalFamily` (the frictionless family, derived from ``H``).
* :class:`HamiltonianNet` is the thesis's "Hamiltonian" prior (a Hamiltonian neural network:
  an MLP giving a scalar ``H``); :func:`neural_hamiltonian` returns its field and initial
  parameters ``{"H": flax params}``, which Aphynity trains as physical parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from dynajax.systems.base import PhysicalFamily

__all__ = [
    "PENDULUM",
    "HamiltonianNet",
    "hamiltonian_field",
    "neural_hamiltonian",
    "pendulum_hamiltonian",
]

Hamiltonian = Callable[[Array, Array, Any], Array]


def hamiltonian_field(H: Hamiltonian) -> Callable[[Any, Float[Array, " 2d"], Any], Float[Array, " 2d"]]:
    """The field ``field(t, y, theta) = (dH/dp, -dH/dq)`` of ``H(q, p, theta) -> scalar``.

    ``y`` is one unbatched state ``[2d]`` split as ``(q [d], p [d])``.
    """
    if not callable(H):
        raise ValueError(f"H must be a callable H(q, p, theta) -> scalar, got {type(H).__name__}")
    grad_H = jax.grad(H, argnums=(0, 1))

    def field(t, y, theta):
        del t
        if y.ndim != 1 or y.shape[0] % 2:
            raise ValueError(f"a Hamiltonian state is (q, p) of even length, got shape {y.shape}")
        q, p = jnp.split(y, 2)
        dq, dp = grad_H(q, p, theta)
        return jnp.concatenate([dp, -dq])

    return field


def pendulum_hamiltonian(q: Float[Array, " d"], p: Float[Array, " d"], theta: Mapping[str, Array]) -> Array:
    """``sum(p^2 / 2 + omega0_sq (1 - cos q))``: the ideal pendulum per unit ``m l^2``."""
    return jnp.sum(0.5 * p**2 + theta["omega0_sq"] * (1 - jnp.cos(q)))


PENDULUM = PhysicalFamily(
    name="hamiltonian",
    param_names=("omega0_sq",),
    field=hamiltonian_field(pendulum_hamiltonian),
    init={"omega0_sq": 0.2},
    description="J grad H of the ideal pendulum's H: conservative, leaves out the friction",
)


class HamiltonianNet(nn.Module):
    """A scalar ``H(q, p)``: an MLP on the concatenated ``(q, p)`` with smooth activations.

    Attributes:
        hidden: widths of the hidden layers (the output layer is one unit).
        activation: a smooth activation (``tanh`` by default: the field is a gradient, so a
            piecewise-linear ReLU network would give a piecewise-constant field).
    """

    hidden: Sequence[int] = (200, 200)
    activation: Callable[[Array], Array] = nn.tanh

    @nn.compact
    def __call__(self, q: Float[Array, " d"], p: Float[Array, " d"]) -> Array:
        x = jnp.concatenate([q, p])
        for width in self.hidden:
            x = self.activation(nn.Dense(width)(x))
        return nn.Dense(1)(x)[0]


def neural_hamiltonian(net: HamiltonianNet, dim: int, *, key: Array | None = None) -> tuple[Callable, dict[str, Any]]:
    """The field of a :class:`HamiltonianNet` and its initial parameters.

    Args:
        net: the network.
        dim: ``d``, the number of positions (the state has ``2 d`` entries).
        key: PRNG key of the initialisation; ``None`` returns the initialiser
            ``key -> params`` instead, which :meth:`Aphynity.init` calls with a key derived
            from each seed's.

    Returns:
        ``(field, {"H": params or initialiser})``: pass them as
        ``Aphynity(physics=field, physics_init={"H": ...})``.
    """
    if not isinstance(net, nn.Module):
        raise ValueError(f"net must be a flax Module, got {type(net).__name__}")
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    z = jnp.zeros((int(dim),), jnp.float32)
    init = lambda k: net.init(k, z, z)
    field = hamiltonian_field(lambda q, p, theta: net.apply(theta["H"], q, p))
    return field, {"H": init if key is None else init(key)}
