"""The training loop as one traceable function, for ``vmap`` over runs with their own data.

:func:`dynajax.train.fit` drives compiled chunks from the host (validation, keep-best,
checkpoints, CSV). :func:`scan_fit` is the same loop with none of the host work, so a whole
grid of runs (seeds, initialisation gains, dataset subsets) trains in one ``jit(vmap(...))``
program: the steps are those of :func:`fit` (same batches, from ``fold_in(key, step)``), with
``evaluate(params)`` recorded after every ``eval_every`` steps for selection afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jaxtyping import Array, PyTree

from dynajax.train.sampling import Sampler, make_sampler
from dynajax.train.state import TrainState
from dynajax.train.step import StepFn


def scan_fit(step: StepFn, state: TrainState, data: PyTree | Sampler, *, n_steps: int,
             batch_size: int | None = None,
             evaluate: Callable[[PyTree], dict[str, Array]] | None = None,
             eval_every: int | None = None) -> tuple[TrainState, dict[str, Array]]:
    """``n_steps`` steps of ``step``, with ``evaluate(params)`` after every ``eval_every``.

    Args:
        step: ``step(state, batch) -> (state, metrics)`` (:func:`~dynajax.train.make_step`).
        state: initial state (no seed axis: ``vmap`` this function over runs instead).
        data: array pytree with a leading example axis, or a sampler ``sample(key, step)``.
        n_steps: number of steps, a multiple of ``eval_every``.
        batch_size: minibatch size for array data; ``None`` = full batch.
        evaluate: ``evaluate(params) -> dict`` of scalars (e.g. validation and test
            accuracy); ``None``: no evaluation.
        eval_every: steps between evaluations (required with ``evaluate``).

    Returns:
        ``(final_state, evals)`` with ``evals[name]`` of shape ``[n_steps // eval_every]``
        (an empty dict without ``evaluate``).

    Raises:
        ValueError: ``evaluate`` without ``eval_every``, ``n_steps`` not a positive multiple
            of ``eval_every``, or the data errors of :func:`~dynajax.train.make_sampler`.
    """
    if evaluate is None:
        evaluate, eval_every = (lambda params: {}), eval_every or n_steps
    elif eval_every is None:
        raise ValueError("evaluate needs eval_every (steps between evaluations)")
    if eval_every < 1 or n_steps < eval_every or n_steps % eval_every:
        raise ValueError(f"n_steps must be a positive multiple of eval_every >= 1, got "
                         f"n_steps={n_steps}, eval_every={eval_every}")
    sample = make_sampler(data, batch_size)

    def one_step(st: TrainState, _):
        return step(st, sample(jax.random.fold_in(st.key, st.step), st.step))[0], None

    def chunk(st: TrainState, _):
        st = jax.lax.scan(one_step, st, None, length=eval_every)[0]
        return st, evaluate(st.params)

    return jax.lax.scan(chunk, state, None, length=n_steps // eval_every)
