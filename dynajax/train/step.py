"""The pure training step ``step(state, batch) -> (state, metrics)`` built from a loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from jaxtyping import Array, PyTree

from dynajax.train.state import TrainState
from dynajax.train.uzawa import Uzawa

LossFn = Callable[..., tuple[Any, Any]]
StepFn = Callable[[TrainState, PyTree], tuple[TrainState, dict[str, Array]]]


def make_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    uzawa: Uzawa | None = None,
    stateful: bool = False,
) -> StepFn:
    """Builds the pure training step ``step(state, batch) -> (state, metrics)``.

    Args:
        loss_fn: ``loss_fn(params, batch, key) -> (loss, aux)`` with ``aux`` a dict of
            scalars to log. With ``stateful=True`` it is
            ``loss_fn(params, model_state, batch, key) -> (loss, (aux, new_model_state))``,
            mirroring flax's mutable ``apply``. With ``uzawa`` the loss is the pair
            ``(objective, constraint)`` and the step minimises ``uzawa.total``.
        optimizer: an optax gradient transformation.
        uzawa: optional adaptive multiplier schedule.
        stateful: whether the loss reads and returns non-trainable model state.

    Returns:
        The step function. Its metrics hold ``loss`` (the minimised value), everything
        in ``aux``, and with ``uzawa`` also ``objective``, ``constraint`` and ``multiplier``.
    """

    def objective(params, state: TrainState, batch, key):
        if stateful:
            loss, (aux, model_state) = loss_fn(params, state.model_state, batch, key)
        else:
            loss, aux = loss_fn(params, batch, key)
            model_state = state.model_state
        metrics = dict(aux or {})
        if uzawa is not None:
            obj, con = loss
            loss = uzawa.total(state.multiplier, obj, con)
            metrics.update(objective=obj, constraint=con)
        metrics["loss"] = loss
        return loss, (metrics, model_state)

    def step(state: TrainState, batch) -> tuple[TrainState, dict[str, Array]]:
        key, subkey = jax.random.split(state.key)
        grads, (metrics, model_state) = jax.grad(objective, has_aux=True)(
            state.params, state, batch, subkey
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_step = state.step + 1
        multiplier = state.multiplier
        if uzawa is not None:
            multiplier = uzawa.update(multiplier, metrics["constraint"], new_step)
            metrics["multiplier"] = multiplier
        new_state = state.replace(
            step=new_step,
            params=params,
            opt_state=opt_state,
            key=key,
            model_state=model_state,
            multiplier=multiplier,
        )
        return new_state, metrics

    return step
