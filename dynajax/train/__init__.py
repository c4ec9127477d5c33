"""The training core shared by every method.

* :class:`TrainState` holds everything a run needs (params, optimiser state, PRNG key,
  step counter, non-trainable model state, multiplier values), so a step is a pure
  function ``step(state, batch) -> (state, metrics)`` (:func:`make_step`), optionally with
  an adaptive Uzawa multiplier (:class:`Uzawa`) as used by APHYNITY and least-action training.
* :func:`fit` runs steps in compiled chunks (metrics come back to the host once per chunk),
  validates and keeps the best parameters per seed and per model (:class:`Best`), stops
  early, checkpoints atomically (:func:`save_checkpoint`), resumes exactly, refuses a
  checkpoint of another model or configuration, and logs per-chunk metrics to a CSV. With
  ``seeds=True`` the state carries a leading seed axis and every seed trains in the same
  compiled program (``vmap``). Batches come from arrays or from a sampler
  ``sample(key, step)`` (curricula, scheduled sampling).
* :func:`scan_fit` is the same loop as one traceable function (no host work), recording an
  evaluation every few steps, to ``vmap`` a grid of runs with their own data.
"""

from dynajax.train.best import Best as Best
from dynajax.train.checkpoint import load_checkpoint as load_checkpoint
from dynajax.train.checkpoint import save_checkpoint as save_checkpoint
from dynajax.train.checkpoint import tree_fingerprint as tree_fingerprint
from dynajax.train.fit import FitResult as FitResult
from dynajax.train.fit import fit as fit
from dynajax.train.sampling import make_sampler as make_sampler
from dynajax.train.sampling import sample_minibatch as sample_minibatch
from dynajax.train.scan_fit import scan_fit as scan_fit
from dynajax.train.state import TrainState as TrainState
from dynajax.train.state import init_state as init_state
from dynajax.train.step import LossFn as LossFn
from dynajax.train.step import StepFn as StepFn
from dynajax.train.step import make_step as make_step
from dynajax.train.uzawa import Uzawa as Uzawa

__all__ = [
    "Best",
    "FitResult",
    "LossFn",
    "StepFn",
    "TrainState",
    "Uzawa",
    "fit",
    "init_state",
    "load_checkpoint",
    "make_sampler",
    "make_step",
    "sample_minibatch",
    "save_checkpoint",
    "scan_fit",
    "tree_fingerprint",
]
