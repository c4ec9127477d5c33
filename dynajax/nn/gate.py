"""A scalar gate started at zero: ``x -> scale * g * f(x)`` with a trained ``g``, ``g = 0`` at init.

The ReZero idea (Bachlechner et al. 2021) applied to a correction term: a network wrapped in
:class:`ZeroGated` outputs exactly zero at initialisation, so a hybrid model ``F_p + F_a``
(:class:`dynajax.forecast.Aphynity`) started from given physical parameters starts exactly at
the physics-only model, while ``g`` still receives a gradient. ``scale`` sets how far one
optimiser step on ``g`` moves the output: Adam moves ``g`` by about the learning rate per step,
so ``scale`` should be of the order of the correction's expected magnitude divided by the
number of steps allowed to reach it.
"""

from __future__ import annotations

import numbers

import flax.linen as nn
from jaxtyping import Array, Float

__all__ = ["ZeroGated"]


class ZeroGated(nn.Module):
    """``scale * g * f(x)`` with a scalar parameter ``gate`` (``g``) initialised at 0.

    Attributes:
        f: a linen module; its output shape is the gated output's.
        scale: a positive constant multiplying the gate.
    """

    f: nn.Module
    scale: float = 1.0

    def __post_init__(self):
        if not isinstance(self.scale, numbers.Real) or isinstance(self.scale, bool) or not self.scale > 0:
            raise ValueError(f"scale must be a positive real number, got {self.scale!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """Returns ``scale * g * f(x)``, zero at initialisation."""
        g = self.param("gate", nn.initializers.zeros, ())
        return self.scale * g * self.f(x)
