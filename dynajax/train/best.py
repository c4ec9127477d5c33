"""Keep-best tracking: the parameters of the best validation loss, per seed and per model."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree


@dataclasses.dataclass
class Best:
    """The best parameters so far and what they scored.

    ``value`` has the shape of one validation (``[]``, ``[n_seeds]`` or ``[n_seeds, G]`` for
    ``G`` independent models per seed); every entry keeps its own best. A NaN validation never
    counts as an improvement.

    Attributes:
        params: parameters at the best validation, same structure as the trained ones.
        value: best validation loss; ``inf`` before the first finite one.
        since: validations since the last improvement.
        step: step of the best validation; -1 before the first finite one.
    """

    params: PyTree
    value: np.ndarray
    since: np.ndarray
    step: np.ndarray

    @classmethod
    def init(cls, params: PyTree, shape: tuple[int, ...]) -> Best:
        return cls(params, np.full(shape, np.inf), np.zeros(shape, np.int64), np.full(shape, -1, np.int64))

    def update(self, params: PyTree, value: np.ndarray, step: int) -> Best:
        """This tracker after a validation ``value`` of ``params`` at ``step``."""
        value = np.asarray(value, np.float64)
        improved = value < self.value  # False for NaN
        mask = jnp.asarray(improved)

        def pick(new, old):
            return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - mask.ndim)), new, old)

        return Best(
            jax.tree_util.tree_map(pick, params, self.params),
            np.where(improved, value, self.value),
            np.where(improved, 0, self.since + 1),
            np.where(improved, step, self.step),
        )

    def as_tree(self) -> tuple:
        """``(params, value, since, step)`` for checkpoints."""
        return self.params, self.value, self.since, self.step

    @classmethod
    def from_tree(cls, tree: tuple) -> Best:
        params, value, since, step = tree
        return cls(params, np.asarray(value), np.asarray(since), np.asarray(step))
