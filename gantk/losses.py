"""GAN losses in the GAN(TK)^2 form (Ayed 2022 thesis eq. 5.2; Franceschi et al. 2022, ICML).

The discriminator maximises ``L(f) = E_fake[a(f)] - E_real[b(f)]``; the generator (or the
particles) minimises ``E_fake[c(f)]``. On the finite training set with weights ``w``
(``1/(2N)`` fake, ``1/(2M)`` real), the functional gradient is
``g(F) = rho1 a'(F) - rho2 b'(F)`` with ``rho1 = 2, rho2 = 0`` on fake points and
``rho1 = 0, rho2 = 2`` on real points (Lemma 5.8).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array

__all__ = ["Loss", "LOSSES", "get_loss", "functional_gradient"]


@dataclasses.dataclass(frozen=True)
class Loss:
    """A GAN loss ``(a, b, c)``; all three map discriminator values to per-point losses."""

    name: str
    a: Callable[[Array], Array]
    b: Callable[[Array], Array]
    c: Callable[[Array], Array]

    def discriminator_objective(self, f_fake: Array, f_real: Array) -> Array:
        """``L(f) = mean a(f(fake)) - mean b(f(real))`` (to be maximised)."""
        return jnp.mean(self.a(f_fake)) - jnp.mean(self.b(f_real))


def _log_sigmoid(u):
    return jax.nn.log_sigmoid(u)


LOSSES: dict[str, Loss] = {
    "ipm": Loss("ipm", lambda u: u, lambda u: u, lambda u: u),
    "lsgan": Loss("lsgan", lambda u: -((u + 1) ** 2), lambda u: (u - 1) ** 2, lambda u: u**2),
    # original GAN: a = log(1 - sigmoid), b = -log sigmoid; non-saturating generator c = -log sigmoid
    "gan": Loss("gan", lambda u: _log_sigmoid(-u), lambda u: -_log_sigmoid(u), lambda u: -_log_sigmoid(u)),
}


def get_loss(name: str | Loss) -> Loss:
    """The loss called ``name`` (``"ipm"``, ``"lsgan"``, ``"gan"``) or ``name`` itself if a Loss."""
    if isinstance(name, Loss):
        return name
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")
    return LOSSES[name]


def functional_gradient(loss: Loss, F: Array, is_fake: Array) -> Array:
    """``g(F) = rho1 a'(F) - rho2 b'(F)`` on the training points (``is_fake`` a boolean mask)."""
    da = jax.vmap(jax.grad(loss.a))(F)
    db = jax.vmap(jax.grad(loss.b))(F)
    return jnp.where(is_fake, 2.0 * da, -2.0 * db)
