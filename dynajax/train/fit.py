"""The training loop: compiled chunks of steps, validation with keep-best, checkpoints, a log.

:func:`fit` is a short composition of the pieces of this package: a sampler
(:mod:`~dynajax.train.sampling`), a chunk runner (below), keep-best tracking
(:mod:`~dynajax.train.best`), checkpoints (:mod:`~dynajax.train.checkpoint`) and the metrics
CSV (:mod:`~dynajax.train.metrics_log`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree

from dynajax import _unroll, _validate
from dynajax.train import checkpoint as ckpt
from dynajax.train.best import Best
from dynajax.train.metrics_log import MetricsCSV, chunk_rows
from dynajax.train.sampling import Sampler, make_sampler
from dynajax.train.state import TrainState
from dynajax.train.step import StepFn


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        state: the final state (leading seed axis with ``seeds=True``).
        best: keep-best tracking (:class:`~dynajax.train.best.Best`); pass it to the next
            :func:`fit` of a curriculum to carry the best parameters across stages.
        history: per-step training metrics as numpy arrays ``[n_steps(, n_seeds)]`` and
            ``val_loss`` / ``val_step`` per validation ``[n_evals(, n_seeds)]``.
        stopped_early: whether early stopping ended the run.
    """

    state: TrainState
    best: Best
    history: dict[str, np.ndarray]
    stopped_early: bool

    @property
    def best_params(self) -> PyTree:
        """Parameters of the best validation loss (the final ones without validation)."""
        return self.best.params

    @property
    def best_val(self) -> np.ndarray:
        """Best validation loss per seed (``[n_seeds, G]`` when ``validate`` returns ``[G]``);
        ``nan`` without validation, and where no validation was ever finite."""
        return self.best.value

    @property
    def best_step(self) -> np.ndarray:
        """Step of the best validation (-1 where none was finite)."""
        return self.best.step


def chunk_runner(step: StepFn, sample: Sampler, state: TrainState, *, seeds: bool,
                 unroll: int | bool | str) -> Callable[[TrainState, int], tuple[TrainState, dict]]:
    """``run(state, n) -> (state, metrics [n(, n_seeds), ...])``: ``n`` steps, compiled.

    A rolled ``lax.scan`` over steps, except, with ``unroll="auto"``, a step that convolves on
    CPU: it runs as a Python loop of one compiled step, since XLA:CPU runs convolutions inside
    a rolled scan many times slower and unrolling a whole chunk would multiply the compile
    time by its length (:mod:`dynajax._unroll`). Results are identical.
    """

    def one_step(st: TrainState, _):
        # the batch key depends on the state's key and the step counter only: a resumed run
        # draws exactly the batches of an uninterrupted one
        return step(st, sample(jax.random.fold_in(st.key, st.step), st.step))

    _unroll.check(unroll)
    loop = False
    if unroll == _unroll.AUTO:
        probe = jax.vmap(one_step, in_axes=(0, None)) if seeds else one_step
        loop, unroll = _unroll.should_unroll(probe, state, None), 1
    if not loop:
        def scan_chunk(st: TrainState, n: int):
            chunk = lambda s: jax.lax.scan(one_step, s, None, length=n, unroll=unroll)  # noqa: E731
            return jax.vmap(chunk)(st) if seeds else chunk(st)

        return jax.jit(scan_chunk, static_argnums=1)
    # not a scan of length 1: XLA:CPU keeps that loop, and the slow path with it
    step_once = jax.jit(jax.vmap(one_step, in_axes=(0, None)) if seeds else one_step)

    def run_loop(st: TrainState, n: int):
        outs = []
        for _ in range(n):
            st, m = step_once(st, None)
            outs.append(m)
        return st, jax.tree_util.tree_map(lambda *ms: jnp.stack(ms, 1 if seeds else 0), *outs)

    return run_loop


def _check_args(n_steps: int, chunk_size: int, batch_size, validate, patience) -> None:
    _validate.integer(n_steps, "n_steps", minimum=0)  # 0: nothing to do (e.g. a finished run resumed)
    _validate.integer(chunk_size, "chunk_size")
    if batch_size is not None:
        _validate.integer(batch_size, "batch_size")
    if patience is not None:
        if validate is None:
            raise ValueError("patience (early stopping) needs a validate function")
        _validate.integer(patience, "patience")


def fit(
    step: StepFn,
    state: TrainState,
    data: PyTree | Sampler,
    *,
    n_steps: int,
    chunk_size: int = 100,
    batch_size: int | None = None,
    validate: Callable[[PyTree], Array] | None = None,
    patience: int | None = None,
    seeds: bool = False,
    best: Best | None = None,
    checkpoint: str | os.PathLike | None = None,
    fingerprint: str | None = None,
    metrics_csv: str | os.PathLike | None = None,
    progress: bool = True,
    unroll: int | bool | str = "auto",
) -> FitResult:
    """Runs ``n_steps`` training steps in compiled chunks.

    Args:
        step: from :func:`~dynajax.train.make_step` (or any ``step(state, batch) -> (state,
            metrics)``).
        state: initial state; with ``seeds=True`` every leaf has a leading seed axis
            (``jax.vmap(init)(keys)``).
        data: a pytree of arrays with a leading example axis (the full batch, or minibatches
            of ``batch_size`` drawn each step from the state's key), or a sampler
            ``sample(key, step) -> batch`` (``step``: steps taken, traced; for curricula and
            scheduled sampling).
        n_steps: total number of optimiser steps (including steps already taken when
            resuming from ``checkpoint`` or continuing a state).
        chunk_size: steps per compiled chunk; metrics reach the host once per chunk and
            validation, early stopping, checkpoints, the log and the progress bar run between
            chunks.
        batch_size: minibatch size for array data; ``None`` = full batch.
        validate: ``validate(params) -> scalar`` validation loss, evaluated after each chunk
            (vmapped over seeds); the best parameters are kept. It may return ``[G]`` losses
            for parameters with a leading ``[G]`` axis of independent models (e.g. LEADS
            groups): each model then keeps its own best. A NaN validation never counts as
            the best; a seed whose validation was never finite ends with ``best_val = nan``
            and a warning.
        patience: stop when the validation loss has not improved for this many evaluations
            (for every seed). Needs ``validate``.
        seeds: whether ``state`` carries a leading seed axis to ``vmap`` over.
        best: keep-best tracking from a previous :func:`fit` of the same parameters (a stage
            of a curriculum), continued here.
        checkpoint: path of a checkpoint written atomically after each chunk; if it exists at
            the start, the run resumes from it exactly.
        fingerprint: identity of the model and configuration (e.g. a hash of the config),
            stored in the checkpoint; resuming a checkpoint written with another one is
            refused.
        metrics_csv: path of a CSV with one row per chunk (step, chunk means, validation),
            written as the run goes.
        progress: show a progress bar (tqdm) over steps.
        unroll: ``unroll`` of the chunk's ``lax.scan``; ``"auto"``: see :func:`chunk_runner`.

    Returns:
        A :class:`FitResult`.
    """
    _check_args(n_steps, chunk_size, batch_size, validate, patience)
    sample = make_sampler(data, batch_size)
    run_chunk = chunk_runner(step, sample, state, seeds=seeds, unroll=unroll)
    val_fn = None if validate is None else jax.jit(jax.vmap(validate) if seeds else validate)
    n_seeds_shape = jax.tree_util.tree_leaves(state.step)[0].shape if seeds else ()
    # one best value per seed, or per seed and model when validate returns [G] losses
    val_shape = n_seeds_shape if val_fn is None else jax.eval_shape(val_fn, state.params).shape
    if best is None:
        best = Best.init(state.params, val_shape)
    elif best.value.shape != val_shape:
        raise ValueError(f"best tracks validations of shape {best.value.shape}, this run's are {val_shape}")
    history: dict[str, list] = {}
    chunk_ends: list[int] = []

    ckpt_path = None if checkpoint is None else Path(checkpoint)
    if ckpt_path is not None and ckpt_path.exists():
        (state, best_tree), saved = ckpt.load_checkpoint(
            ckpt_path, (state, best.as_tree()), with_extra=True, fingerprint=fingerprint)
        best = Best.from_tree(best_tree)
        chunk_ends = [int(s) for s in saved.pop("chunk_ends", [])]
        history = {k: list(v) for k, v in saved.items()}
    log = None if metrics_csv is None else MetricsCSV(metrics_csv)
    if log is not None:
        log.rewrite(chunk_rows(history, chunk_ends))

    done = int(np.max(np.asarray(state.step)))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, initial=min(done, n_steps), unit="step", leave=False)
    stopped = False
    try:
        while done < n_steps and not stopped:
            n = min(chunk_size, n_steps - done)
            state, metrics = run_chunk(state, n)
            metrics = jax.device_get(metrics)  # the one host round-trip per chunk
            for k, v in metrics.items():
                history.setdefault(k, []).extend(np.moveaxis(np.asarray(v), 1, 0) if seeds else np.asarray(v))
            done += n
            chunk_ends.append(done)
            if val_fn is not None:
                val = np.asarray(jax.device_get(val_fn(state.params)), dtype=np.float64)
                history.setdefault("val_loss", []).append(val)
                history.setdefault("val_step", []).append(done)
                best = best.update(state.params, val, done)
                stopped = patience is not None and bool(np.all(best.since >= patience)) and done < n_steps
            if ckpt_path is not None:
                extra = {k: np.asarray(v) for k, v in history.items()}
                ckpt.save_checkpoint(ckpt_path, (state, best.as_tree()),
                                     extra={**extra, "chunk_ends": np.asarray(chunk_ends)}, fingerprint=fingerprint)
            if log is not None:
                log.append(chunk_rows(history, chunk_ends)[-1])
            if bar is not None:
                bar.update(n)
                if history.get("loss"):
                    bar.set_postfix(loss=f"{float(np.mean(history['loss'][-1])):.3e}")
    finally:
        if bar is not None:
            bar.close()

    if val_fn is None:
        best = Best(state.params, np.full(n_seeds_shape, np.nan), np.zeros(n_seeds_shape, np.int64),
                    np.full(n_seeds_shape, done, np.int64))
    elif history.get("val_loss"):
        never = ~np.isfinite(best.value)
        if np.any(never):
            warnings.warn(f"validation loss was never finite for {int(never.sum())} of {never.size} "
                          f"seed/model entries (indices {np.argwhere(never).tolist()[:8]}): their best_val is "
                          "nan and best_params the initial parameters", RuntimeWarning, stacklevel=2)
            best = dataclasses.replace(best, value=np.where(never, np.nan, best.value))
    return FitResult(state=state, best=best, history={k: np.asarray(v) for k, v in history.items()},
                     stopped_early=stopped)
