"""The training state: everything a run carries from one step to the next."""

from __future__ import annotations

import flax.struct
import jax.numpy as jnp
import optax
from jaxtyping import Array, PyTree

from dynajax.train.uzawa import Uzawa


@flax.struct.dataclass
class TrainState:
    """Everything a training run carries from one step to the next.

    Attributes:
        step: scalar int32, number of optimiser steps taken.
        params: trainable parameters (any pytree).
        opt_state: the optax optimiser state.
        key: PRNG key, split once per step.
        model_state: non-trainable model variables (e.g. spectral-norm power-iteration
            vectors), updated by a stateful loss; ``{}`` when unused.
        multiplier: the current Uzawa multiplier (scalar), ``nan``-free float, 0 if unused.
    """

    step: Array
    params: PyTree
    opt_state: PyTree
    key: Array
    model_state: PyTree = flax.struct.field(default_factory=dict)
    multiplier: Array = flax.struct.field(default_factory=lambda: jnp.zeros(()))


def init_state(
    params: PyTree,
    optimizer: optax.GradientTransformation,
    *,
    key: Array,
    model_state: PyTree | None = None,
    uzawa: Uzawa | None = None,
) -> TrainState:
    """Creates the initial :class:`TrainState` (``vmap`` it over keys for several seeds)."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=optimizer.init(params),
        key=key,
        model_state={} if model_state is None else model_state,
        multiplier=jnp.asarray(0.0 if uzawa is None else uzawa.lambda0, jnp.float32),
    )
