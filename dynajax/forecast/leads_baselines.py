"""LEADS baselines and protocols on top of :mod:`dynajax.forecast.leads`.

* :func:`train_variant`: trains one of :data:`~dynajax.forecast.leads.VARIANTS` (LEADS,
  LEADS-no-min, One-Per-Env, One-For-All), all seeds in one program, selecting on validation.
* :func:`gbml_finetune`: the GBML-like baseline, a pretrained One-For-All model copied to every
  environment and fine-tuned there (no penalty).
* :func:`adaptation_curve`: test MSE at given step counts while fitting new environments,
  either with a pretrained ``f`` frozen (only ``g_e`` trains) or from scratch.
* :func:`evaluate`: per-environment test MSE of per-seed parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from dynajax.forecast import leads
from dynajax.train import FitResult, TrainState

__all__ = ["train_variant", "evaluate", "gbml_finetune", "adaptation_curve"]


def evaluate(
    model: leads.LeadsModel, params: PyTree, states: Array, *, groups: bool = False
) -> np.ndarray:
    """Per-environment MSE ``[n_seeds, (G,) n_env]`` of per-seed ``params`` on ``states``.

    ``states`` is ``[(G,) n_env, n_traj, n_time, *state]`` (shared by all seeds).
    """
    return np.asarray(_evaluate(model, params, jnp.asarray(states), groups))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _evaluate(model, params, states, groups):
    # module-level jit keyed on the (hashable) model: repeated evaluations compile once
    one = lambda p, s: leads.mse_per_env(model, p, s)  # noqa: E731
    if groups:
        one = jax.vmap(one)
    return jax.vmap(one, in_axes=(0, None))(params, states)


def train_variant(
    variant: str,
    net: nn.Module,
    train: Array,
    val: Array | None,
    *,
    dt: float,
    n_steps: int,
    keys: PRNGKeyArray,
    groups: bool = False,
    chunk_size: int = 500,
    lr: float = 1e-3,
    **model_kwargs,
) -> tuple[leads.LeadsModel, FitResult]:
    """Builds the variant's model and trains it (see :func:`dynajax.forecast.leads.fit_leads`).

    Args:
        variant: one of :data:`dynajax.forecast.leads.VARIANTS`.
        net: architecture of ``f`` and of each ``g_e``.
        train, val: ``[(G,) n_env, n_traj, n_time, *state]``.
        dt: frame spacing.
        n_steps: Adam steps.
        keys: one key per seed.
        groups: data carry a leading axis of independent groups of environments.
        chunk_size, lr: passed on.
        model_kwargs: :class:`~dynajax.forecast.leads.LeadsModel` options (``lam``,
            ``alpha``, ``solver``, ``state_ndim``, ``omega``, ``unroll`` ...).

    Returns:
        ``(model, fit_result)``.
    """
    n_env = int(jnp.shape(train)[int(groups)])
    model = leads.make_model(variant, net, n_env, dt, **model_kwargs)
    res = leads.fit_leads(model, keys, train, val=val, n_steps=n_steps, groups=groups,
                          chunk_size=chunk_size, lr=lr)
    return model, res


def gbml_finetune(
    pretrained: leads.LeadsModel,
    pretrained_params: PyTree,
    train: Array,
    val: Array | None,
    *,
    n_steps: int,
    keys: PRNGKeyArray,
    groups: bool = False,
    chunk_size: int = 500,
    lr: float = 1e-3,
) -> tuple[leads.LeadsModel, FitResult]:
    """GBML-like: copy a trained One-For-All model to every environment and fine-tune each.

    Args:
        pretrained: the One-For-All model (``per_env_g=False``).
        pretrained_params: its per-seed parameters ``[n_seeds, (G,) ...]``.
        train, val, n_steps, keys, groups, chunk_size, lr: as :func:`train_variant`.

    Returns:
        ``(one_per_env_model, fit_result)``.
    """
    if pretrained.per_env_g:
        raise ValueError("gbml_finetune starts from a One-For-All model (per_env_g=False)")
    n_env = int(jnp.shape(train)[int(groups)])
    model = leads.LeadsModel(
        pretrained.net, n_env, pretrained.dt, solver=pretrained.solver, lam=None, per_env_f=True,
        state_ndim=pretrained.state_ndim, unroll=pretrained.unroll,
    )
    tile = lambda p: leads.tile_per_env(p, n_env)  # noqa: E731
    if groups:
        tile = jax.vmap(tile)
    params = jax.vmap(tile)(pretrained_params)
    res = leads.fit_leads(model, keys, train, val=val, params=params, n_steps=n_steps,
                          groups=groups, chunk_size=chunk_size, lr=lr)
    return model, res


def adaptation_curve(
    model: leads.LeadsModel,
    keys: PRNGKeyArray,
    train: Array,
    test: Array,
    eval_steps: Sequence[int],
    *,
    frozen_f: PyTree | None = None,
    lr: float = 1e-3,
) -> tuple[np.ndarray, TrainState]:
    """Test MSE after each of ``eval_steps`` Adam steps on new environments.

    With ``frozen_f`` (per-seed ``f`` params of a trained LEADS model) only the new ``g_e``
    train and ``f`` stays bit-identical; without it, ``model`` trains from scratch. No
    model selection: the parameters at each step count are scored, as in thesis Table 3.13.

    Args:
        model: the model for the new environments (``n_env`` = number of new environments).
        keys: one key per seed.
        train, test: ``[n_env, n_traj, n_time, *state]``.
        eval_steps: increasing step counts.
        frozen_f: ``[n_seeds, ...]`` pretrained ``f`` params, or ``None``.
        lr: Adam learning rate.

    Returns:
        ``(mse [n_seeds, len(eval_steps)], final train state)``, the MSE averaged over the
        new environments. Steps run in compiled ``lax.scan`` chunks of ``gcd(eval_steps)``.
    """
    steps = [int(s) for s in eval_steps]
    if not steps or any(b <= a for a, b in zip(steps, steps[1:])) or steps[0] < 1:
        raise ValueError(f"eval_steps must be increasing positive ints, got {eval_steps!r}")
    step, state = leads.make_trainer(model, keys, train, frozen_f=frozen_f, lr=lr)
    # One compiled chunk of `chunk` steps, reused: every eval step is a multiple of it.
    chunk = int(np.gcd.reduce(np.asarray(steps)))

    @jax.jit
    def run_chunk(st):
        one = lambda s: jax.lax.scan(lambda c, _: step(c, ()), s, None, length=chunk)[0]  # noqa: E731
        return jax.vmap(one)(st)

    out, done = [], 0
    for s in steps:
        while done < s:
            state = run_chunk(state)
            done += chunk
        params = state.params if frozen_f is None else {"f": frozen_f, "g": state.params}
        out.append(evaluate(model, params, test).mean(axis=-1))
    return np.stack(out, axis=1), state
