"""Activation memory of reverse-mode differentiation, measured without running anything."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

__all__ = ["stored_bytes"]


def stored_bytes(f: Callable, *args) -> int:
    """Bytes that reverse mode keeps from the forward pass of ``f(*args)`` for the backward pass.

    These are the residuals held by ``jax.vjp(f, *args)``'s backward function (activations,
    checkpoints, and the inputs it needs), obtained by abstract evaluation (no FLOPs). It is
    what grows with depth for plain backpropagation and what a reversible network or the
    continuous adjoint keep constant. XLA's ``memory_analysis().temp_size_in_bytes`` on CPU
    does not show this growth for scans (measured: constant in the number of steps), hence
    this count.
    """
    shapes = jax.eval_shape(lambda *a: jax.vjp(f, *a)[1], *args)
    return int(sum(np.prod(s.shape, dtype=np.int64) * np.dtype(s.dtype).itemsize
                   for s in jax.tree_util.tree_leaves(shapes)))
