"""Batches for :func:`dynajax.train.fit`: minibatches of an array dataset, or a user sampler.

A sampler is ``sample(key, step) -> batch``: the key is derived from the state's key and the
step counter only (so a resumed run draws the batches of an uninterrupted one), and ``step``
(a traced int32, the number of steps taken) lets a sampler follow a schedule: a curriculum
of sequence lengths, a scheduled-sampling probability put into the batch, and so on.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jaxtyping import Array, PyTree

Sampler = Callable[[Array, Array], PyTree]


def sample_minibatch(data: PyTree, batch_size: int, *, key: Array) -> PyTree:
    """Draws ``batch_size`` examples (without replacement) along the leading axis of ``data``."""
    n = jax.tree_util.tree_leaves(data)[0].shape[0]
    idx = jax.random.choice(key, n, (batch_size,), replace=False)
    return jax.tree_util.tree_map(lambda x: x[idx], data)


def make_sampler(data: PyTree | Sampler, batch_size: int | None = None) -> Sampler:
    """``sample(key, step) -> batch`` from an array pytree (full batch or minibatches) or a sampler.

    Args:
        data: a pytree of arrays with a leading example axis, or a sampler
            ``sample(key, step) -> batch`` returned as it is.
        batch_size: minibatch size for array data; ``None`` (or the dataset size) = full batch.

    Raises:
        ValueError: empty data, arrays without a common leading axis, or a batch size
            outside ``[1, n_examples]``.
    """
    if callable(data):
        if batch_size is not None:
            raise ValueError("batch_size applies to array data; a sampler draws its own batches")
        return data
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("data is empty")
    if any(np.ndim(x) == 0 for x in leaves):
        raise ValueError("every array in data needs a leading (example) axis")
    n_data = leaves[0].shape[0]
    if n_data == 0:
        raise ValueError("data holds no examples (leading axis of size 0)")
    if any(x.shape[0] != n_data for x in leaves):
        raise ValueError("all arrays in data must share the leading (example) axis size")
    if batch_size is None or batch_size == n_data:
        return lambda key, step: data
    if not 1 <= batch_size <= n_data:
        raise ValueError(f"batch_size must be in [1, {n_data}], got {batch_size}")
    return lambda key, step: sample_minibatch(data, batch_size, key=key)
