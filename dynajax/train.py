"""The training core shared by every method.

* :class:`TrainState` holds everything a run needs (params, optimiser state, PRNG key,
  step counter, non-trainable model state, multiplier values), so a step is a pure
  function ``step(state, batch) -> (state, metrics)``.
* :func:`make_step` builds that step from a loss and an optax optimiser, optionally with an
  adaptive Uzawa multiplier (:class:`Uzawa`) as used by APHYNITY and least-action training.
* :func:`fit` runs steps in ``lax.scan`` chunks (metrics come back to the host once per
  chunk), validates, keeps the best parameters, stops early, checkpoints atomically and
  resumes exactly. With ``seeds=True`` the state carries a leading seed axis and every
  seed trains in the same compiled program (``vmap``).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, PyTree

from dynajax import _unroll
from dynajax._io import atomic_write_bytes

__all__ = [
    "TrainState",
    "Uzawa",
    "FitResult",
    "init_state",
    "make_step",
    "fit",
    "save_checkpoint",
    "load_checkpoint",
    "sample_minibatch",
]


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
    key: Array,
    *,
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


def sample_minibatch(data: PyTree, key: Array, batch_size: int) -> PyTree:
    """Draws ``batch_size`` examples (without replacement) along the leading axis of ``data``."""
    n = jax.tree_util.tree_leaves(data)[0].shape[0]
    idx = jax.random.choice(key, n, (batch_size,), replace=False)
    return jax.tree_util.tree_map(lambda x: x[idx], data)


# ---------------------------------------------------------------------------------------
# Checkpoints: plain npz of the flattened pytree, written atomically.


def _to_numpy_leaves(tree) -> list[np.ndarray]:
    out = []
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out.append(np.asarray(leaf))
    return out


def _save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def save_checkpoint(
    path: str | os.PathLike, tree: PyTree, extra: dict[str, np.ndarray] | None = None
) -> None:
    """Writes ``tree`` to ``path`` (npz) atomically: a crash leaves the old file intact.

    ``extra`` arrays (e.g. a metric history) are stored beside it under ``extra/NAME``.
    """
    arrays = {f"leaf_{i:05d}": x for i, x in enumerate(_to_numpy_leaves(tree))}
    arrays.update({f"extra/{k}": np.asarray(v) for k, v in (extra or {}).items()})
    _save_npz(path, arrays)


def load_checkpoint(
    path: str | os.PathLike, like: PyTree, *, with_extra: bool = False
) -> PyTree | tuple[PyTree, dict[str, np.ndarray]]:
    """Reads a checkpoint written by :func:`save_checkpoint` into the structure of ``like``.

    Returns the tree, or ``(tree, extra)`` with ``with_extra=True``.

    Raises:
        ValueError: if the file does not match ``like`` (leaf count, shapes or dtypes).
    """
    like_leaves, treedef = jax.tree_util.tree_flatten(like)
    with np.load(Path(path)) as f:
        stored = [f[k] for k in sorted(f.files) if k.startswith("leaf_")]
        extra = {k[len("extra/"):]: f[k] for k in f.files if k.startswith("extra/")}
    if len(stored) != len(like_leaves):
        raise ValueError(
            f"checkpoint {path} holds {len(stored)} arrays but the state has {len(like_leaves)}"
        )
    leaves = []
    for x, ref in zip(stored, like_leaves):
        if isinstance(ref, jax.Array) and jnp.issubdtype(ref.dtype, jax.dtypes.prng_key):
            ref_data = jax.random.key_data(ref)
            if x.shape != ref_data.shape or x.dtype != ref_data.dtype:
                raise ValueError(
                    f"checkpoint {path} does not match the state: key data {x.shape} {x.dtype} "
                    f"where {ref_data.shape} {ref_data.dtype} is expected"
                )
            leaves.append(jax.random.wrap_key_data(jnp.asarray(x), impl=jax.random.key_impl(ref)))
            continue
        if x.shape != np.shape(ref) or x.dtype != np.asarray(ref).dtype:
            raise ValueError(
                f"checkpoint {path} does not match the state: array {x.shape} {x.dtype} "
                f"where {np.shape(ref)} {np.asarray(ref).dtype} is expected"
            )
        # Non-JAX leaves (e.g. fit's float64 best_val) stay numpy: jnp.asarray would cast
        # them to 32 bits and the next resume would no longer match.
        leaves.append(jnp.asarray(x) if isinstance(ref, jax.Array) else x)
    tree = jax.tree_util.tree_unflatten(treedef, leaves)
    return (tree, extra) if with_extra else tree


# ---------------------------------------------------------------------------------------
# The loop.


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        state: the final state (leading seed axis with ``seeds=True``).
        best_params: parameters with the best validation loss (the final ones without
            validation).
        best_val: best validation loss per seed (``[n_seeds, G]`` when ``validate``
            returns ``[G]``; ``nan`` without validation).
        history: per-step training metrics as numpy arrays ``[n_steps(, n_seeds)]`` and
            ``val_loss`` / ``val_step`` per validation ``[n_evals(, n_seeds)]``.
        stopped_early: whether early stopping ended the run.
    """

    state: TrainState
    best_params: PyTree
    best_val: np.ndarray
    history: dict[str, np.ndarray]
    stopped_early: bool


def fit(
    step: StepFn,
    state: TrainState,
    data: PyTree | Callable[[Array], PyTree],
    *,
    n_steps: int,
    chunk_size: int = 100,
    batch_size: int | None = None,
    validate: Callable[[PyTree], Array] | None = None,
    patience: int | None = None,
    seeds: bool = False,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    unroll: int | bool | str = "auto",
) -> FitResult:
    """Runs ``n_steps`` training steps in compiled ``lax.scan`` chunks.

    Args:
        step: from :func:`make_step` (or any ``step(state, batch) -> (state, metrics)``).
        state: initial state; with ``seeds=True`` every leaf has a leading seed axis
            (``jax.vmap(init)(keys)``).
        data: either a pytree of arrays with a leading example axis (the full batch, or
            minibatches of ``batch_size`` drawn each step from the state's key), or a
            function ``sample(key) -> batch``.
        n_steps: total number of optimiser steps (including steps already taken when
            resuming from ``checkpoint``).
        chunk_size: steps per compiled chunk; metrics reach the host once per chunk and
            validation, early stopping, checkpoints and the progress bar run between chunks.
        batch_size: minibatch size when ``data`` is a pytree; ``None`` = full batch.
        validate: ``validate(params) -> scalar`` loss on a validation split, evaluated after
            each chunk (vmapped over seeds). The best parameters are kept. It may return
            ``[G]`` losses for parameters with a leading ``[G]`` axis of independent models
            (e.g. LEADS groups): each model then keeps its own best.
        patience: stop when the validation loss has not improved for this many
            evaluations (for every seed). Needs ``validate``.
        seeds: whether ``state`` carries a leading seed axis to ``vmap`` over.
        checkpoint: path of an ``.npz`` checkpoint written atomically after each chunk; if
            it exists at the start, the run resumes from it exactly.
        progress: show a progress bar (tqdm) over steps.
        unroll: ``unroll`` argument of the chunk's ``lax.scan``. ``"auto"``: a rolled scan,
            except for a step that contains a convolution on CPU, which runs as a Python
            loop of one compiled step (:mod:`dynajax._unroll`); results are identical.

    Returns:
        A :class:`FitResult`.
    """
    if n_steps < 0 or chunk_size < 1:
        raise ValueError(f"need n_steps >= 0 and chunk_size >= 1, got {n_steps}, {chunk_size}")
    if patience is not None and validate is None:
        raise ValueError("patience (early stopping) needs a validate function")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    if callable(data):
        sample = data
    else:
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
            sample = lambda key: data  # noqa: E731
        elif not 1 <= batch_size <= n_data:
            raise ValueError(f"batch_size must be in [1, {n_data}], got {batch_size}")
        else:
            sample = lambda key: sample_minibatch(data, key, batch_size)  # noqa: E731

    def one_step(st: TrainState, _):
        # The batch key is derived from the state's key and the step counter only, so a
        # resumed run draws exactly the batches of an uninterrupted one.
        batch = sample(jax.random.fold_in(st.key, st.step))
        return step(st, batch)

    _unroll.check(unroll)
    if unroll == _unroll.AUTO:
        # A step that convolves runs as a Python loop of one compiled step on CPU: XLA:CPU
        # runs convolutions inside a rolled scan many times slower, and unrolling a whole
        # chunk would multiply the compile time by its length (dynajax._unroll).
        probe = jax.vmap(one_step, in_axes=(0, None)) if seeds else one_step
        loop = _unroll.should_unroll(probe, state, None)
        unroll = 1
    else:
        loop = False

    def scan_chunk(st: TrainState, n: int):
        chunk = lambda s: jax.lax.scan(one_step, s, None, length=n, unroll=unroll)  # noqa: E731
        return jax.vmap(chunk)(st) if seeds else chunk(st)

    if loop:
        # Not a scan of length 1: XLA:CPU keeps that loop, and the slow path with it.
        step_once = jax.jit(jax.vmap(one_step, in_axes=(0, None)) if seeds else one_step)

        def run_chunk(st: TrainState, n: int):
            outs = []
            for _ in range(n):
                st, m = step_once(st, None)
                outs.append(m)
            axis = 1 if seeds else 0
            return st, jax.tree_util.tree_map(lambda *ms: jnp.stack(ms, axis), *outs)
    else:
        run_chunk = jax.jit(scan_chunk, static_argnums=1)
    val_fn = None
    if validate is not None:
        val_fn = jax.jit(jax.vmap(validate) if seeds else validate)

    n_seeds_shape = (jax.tree_util.tree_leaves(state.step)[0].shape) if seeds else ()
    # one best value per seed, or per seed and model when validate returns [G] losses
    val_shape = n_seeds_shape if val_fn is None else jax.eval_shape(val_fn, state.params).shape
    best_val = np.full(val_shape, np.inf)
    best_params = state.params
    since_best = np.zeros(val_shape, np.int64)
    history: dict[str, list] = {}
    stopped = False

    ckpt_path = None if checkpoint is None else Path(checkpoint)
    if ckpt_path is not None and ckpt_path.exists():
        like = (state, best_params, best_val, since_best)
        (state, best_params, best_val, since_best), saved = load_checkpoint(
            ckpt_path, like, with_extra=True
        )
        best_val, since_best = np.asarray(best_val), np.asarray(since_best)
        history = {k: list(v) for k, v in saved.items()}

    done = int(np.max(np.asarray(state.step)))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, initial=min(done, n_steps), unit="step", leave=False)

    try:
        while done < n_steps and not stopped:
            n = min(chunk_size, n_steps - done)
            state, metrics = run_chunk(state, n)
            metrics = jax.device_get(metrics)  # the one host round-trip per chunk
            for k, v in metrics.items():
                v = np.asarray(v)
                history.setdefault(k, []).extend(np.moveaxis(v, 1, 0) if seeds else v)
            done += n
            if val_fn is not None:
                val = np.asarray(jax.device_get(val_fn(state.params)), dtype=np.float64)
                history.setdefault("val_loss", []).append(val)
                history.setdefault("val_step", []).append(done)
                improved = val < best_val
                best_val = np.where(improved, val, best_val)
                since_best = np.where(improved, 0, since_best + 1)
                mask = jnp.asarray(improved)
                best_params = jax.tree_util.tree_map(
                    lambda new, old: jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - mask.ndim)), new, old),
                    state.params,
                    best_params,
                )
                if patience is not None and bool(np.all(since_best >= patience)):
                    stopped = done < n_steps
            else:
                best_params = state.params
            if ckpt_path is not None:
                save_checkpoint(
                    ckpt_path,
                    (state, best_params, best_val, since_best),
                    extra={k: np.asarray(v) for k, v in history.items()},
                )
            if bar is not None:
                bar.update(n)
                loss = history.get("loss")
                if loss:
                    bar.set_postfix(loss=f"{float(np.mean(loss[-1])):.3e}")
    finally:
        if bar is not None:
            bar.close()

    if val_fn is None:
        best_val = np.full(n_seeds_shape, np.nan)
        best_params = state.params
    return FitResult(
        state=state,
        best_params=best_params,
        best_val=best_val,
        history={k: np.asarray(v) for k, v in history.items()},
        stopped_early=stopped,
    )
