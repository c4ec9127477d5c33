"""The adaptive (Uzawa) multiplier of constrained training (APHYNITY, least action)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
from jaxtyping import Array


@dataclasses.dataclass(frozen=True)
class Uzawa:
    """Adaptive multiplier for ``min C(theta) s.t. L(theta) = 0`` (thesis ch. 3, eq. 3.6).

    Every ``every`` steps the multiplier ascends, ``lambda <- lambda + tau * L``, evaluated on
    the current batch. ``weight`` says where it multiplies:

    * ``"constraint"`` (APHYNITY): minimise ``C + lambda * L``;
    * ``"objective"`` (least-action / LAP): minimise ``L + C / lambda``.

    Attributes:
        lambda0: initial multiplier, > 0.
        tau: ascent rate, >= 0.
        every: steps between updates (the thesis's ``N_iter`` or ``s``), >= 1.
        weight: ``"constraint"`` or ``"objective"``.
    """

    lambda0: float
    tau: float
    every: int = 1
    weight: Literal["constraint", "objective"] = "constraint"

    def __post_init__(self):
        if not self.lambda0 > 0:
            raise ValueError(f"Uzawa lambda0 must be > 0, got {self.lambda0}")
        if not self.tau >= 0:
            raise ValueError(f"Uzawa tau must be >= 0, got {self.tau}")
        if int(self.every) < 1:
            raise ValueError(f"Uzawa every must be >= 1, got {self.every}")
        if self.weight not in ("constraint", "objective"):
            raise ValueError(f"Uzawa weight must be 'constraint' or 'objective', got {self.weight!r}")

    def total(self, multiplier: Array, objective: Array, constraint: Array) -> Array:
        """The relaxed loss for the current multiplier."""
        if self.weight == "constraint":
            return objective + multiplier * constraint
        return constraint + objective / multiplier

    def update(self, multiplier: Array, constraint: Array, step: Array) -> Array:
        """The multiplier after optimiser step number ``step`` (1-based)."""
        due = (step % self.every) == 0
        return jnp.where(due, multiplier + self.tau * jax.lax.stop_gradient(constraint), multiplier)
