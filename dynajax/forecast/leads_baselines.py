"""LEADS baselines and protocols on top of :mod:`dynajax.forecast.leads`.

* :func:`train_variant`: trains one of :data:`~dynajax.forecast.leads.VARIANTS` (LEADS,
  LEADS-no-min, One-Per-Env, One-For-All), all seeds in one program, selecting on validation.
* :func:`gbml_finetune`: the GBML-like baseline, a pretrained One-For-All model copied to every
  environment and fine-tuned there (no penalty).
* :func:`adaptation_curve`: test MSE at given step counts while fitting new environments,
  either with a pretrained ``f`` frozen (only ``g_e`` trains) or from scratch.
* :func:`evaluate`: per-environment test MSE of per-seed parameters.
* :func:`compare_variants` and :func:`adaptation_rows`: the protocols of thesis Table 3.14
  (every variant on the same data) and Table 3.13 (new environments with ``f`` frozen, from
  scratch, and ``f`` alone).
* :func:`env_states`, :func:`grouped`, :func:`group_mse`: the grouping protocol of thesis
  Tables 3.11 and 3.15 (the environments cut into consecutive groups of ``m``, one model per
  group) and :func:`one_for_all_floor`, the lowest error One-For-All can reach there.
* :func:`per_env_figure`: per-environment test MSE of several methods as a bar chart.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray, PyTree

from dynajax._io import atomic_write_bytes
from dynajax.forecast import leads
from dynajax.train import FitResult, TrainState

__all__ = ["train_variant", "evaluate", "gbml_finetune", "adaptation_curve", "compare_variants",
           "adaptation_rows", "env_states", "grouped",
           "group_mse", "one_for_all_floor", "per_env_figure"]


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
    res = leads.fit_leads(model, train, keys=keys, val=val, n_steps=n_steps, groups=groups,
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
    res = leads.fit_leads(model, train, keys=keys, val=val, params=params, n_steps=n_steps,
                          groups=groups, chunk_size=chunk_size, lr=lr)
    return model, res


def adaptation_curve(
    model: leads.LeadsModel,
    train: Array,
    test: Array,
    eval_steps: Sequence[int],
    *,
    keys: PRNGKeyArray,
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
    step, state = leads.make_trainer(model, train, keys=keys, frozen_f=frozen_f, lr=lr)
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


def compare_variants(
    variants: Sequence[str],
    net: nn.Module,
    train: Array,
    val: Array | None,
    evals: Sequence[Array],
    *,
    dt: float,
    n_steps: int,
    keys: PRNGKeyArray,
    gbml_steps: int = 0,
    chunk_size: int = 500,
    lr: float = 1e-3,
    **model_kwargs,
) -> dict[str, tuple[leads.LeadsModel, PyTree, list[np.ndarray]]]:
    """Trains every variant on the same data (thesis Table 3.14) and scores it on each split.

    Args:
        variants: names from :data:`~dynajax.forecast.leads.VARIANTS`.
        net, train, val, dt, n_steps, keys, chunk_size, lr, model_kwargs: as :func:`train_variant`.
        evals: splits to score, ``[n_env, n_traj, n_time, *state]``.
        gbml_steps: if positive, also ``"gbml"``: the trained ``"one_for_all"`` fine-tuned per
            environment for that many steps (:func:`gbml_finetune`).

    Returns:
        ``{variant: (model, best params, [per-environment MSE [n_seeds, n_env] per split])}``.
    """
    if gbml_steps > 0 and "one_for_all" not in variants:
        raise ValueError("GBML-like fine-tuning starts from one_for_all: add it to variants")
    out = {}
    for variant in variants:
        model, res = train_variant(variant, net, train, val, dt=dt, n_steps=n_steps, keys=keys,
                                   chunk_size=chunk_size, lr=lr, **model_kwargs)
        out[variant] = (model, res.best_params)
    if gbml_steps > 0:
        model, res = gbml_finetune(*out["one_for_all"], train, val, n_steps=gbml_steps, keys=keys,
                                   chunk_size=chunk_size, lr=lr)
        out["gbml"] = (model, res.best_params)
    return {k: (m, p, [evaluate(m, p, x) for x in evals]) for k, (m, p) in out.items()}


def adaptation_rows(
    net: nn.Module,
    f_params: PyTree,
    train: Array,
    test: Array,
    eval_steps: Sequence[int],
    *,
    dt: float,
    keys: PRNGKeyArray,
    lr: float = 1e-3,
    **model_kwargs,
) -> dict[str, np.ndarray]:
    """Adaptation to new environments (thesis Table 3.13), test MSE after each of ``eval_steps``.

    Args:
        net: architecture of ``f`` and each ``g_e``.
        f_params: per-seed ``f`` of a trained LEADS model ``[n_seeds, ...]``.
        train, test: the new environments' splits ``[n_env, n_traj, n_time, *state]``.
        eval_steps, keys, lr: as :func:`adaptation_curve`.
        dt, model_kwargs: the LEADS model of the new ``g_e`` (``lam``, ``alpha`` ...).

    Returns:
        ``{"f_only", "from_scratch", "frozen_f"}``, each ``[n_seeds, len(eval_steps)]`` averaged over
        the new environments: the pretrained ``f`` alone (``g_e = 0``, the same at every step),
        One-Per-Env trained from scratch, and new ``g_e`` trained beside the frozen ``f``.
    """
    n_env = int(jnp.shape(train)[0])
    g_model = leads.make_model("leads", net, n_env, dt, **model_kwargs)
    g0 = jax.vmap(lambda k: leads.zero_like_g(leads.init_params(g_model, train[0, 0, 0], key=k))["g"])(keys)
    f_only = evaluate(g_model, {"f": f_params, "g": g0}, test).mean(-1)
    frozen, _ = adaptation_curve(g_model, train, test, eval_steps, keys=keys, frozen_f=f_params, lr=lr)
    scratch_model = leads.make_model("one_per_env", net, n_env, dt, **model_kwargs)
    scratch, _ = adaptation_curve(scratch_model, train, test, eval_steps, keys=keys, lr=lr)
    return {"f_only": np.repeat(f_only[:, None], len(eval_steps), axis=1), "from_scratch": scratch, "frozen_f": frozen}


def env_states(dataset) -> Array:
    """A dataset's states by environment, float32 ``[n_env, n_traj, n_time, *state]``."""
    return jnp.asarray(dataset.by_env(), jnp.float32)


def grouped(states: Array, m: int, n_env: int | None = None) -> Array:
    """The first ``n_env`` environments (default all) cut into consecutive groups of ``m``.

    Args:
        states: ``[n_env_total, ...]``.
        m: environments per group; divides ``n_env``.
        n_env: how many environments to group (the first ones).

    Returns:
        ``[n_env // m, m, ...]``.
    """
    n_env = states.shape[0] if n_env is None else n_env
    if not 1 <= n_env <= states.shape[0]:
        raise ValueError(f"n_env must be in [1, {states.shape[0]}], got {n_env}")
    if m < 1 or n_env % m:
        raise ValueError(f"m must divide n_env={n_env}, got {m}")
    return states[:n_env].reshape(n_env // m, m, *states.shape[1:])


def group_mse(
    variant: str,
    net: nn.Module,
    m: int,
    train: Array,
    val: Array | None,
    evals: Sequence[Array],
    *,
    dt: float,
    n_steps: int,
    keys: PRNGKeyArray,
    n_env: int | None = None,
    chunk_size: int = 500,
    lr: float = 1e-3,
    **model_kwargs,
) -> list[np.ndarray]:
    """Trains ``variant`` on groups of ``m`` environments (one model per group) and scores it.

    The groups train in one program (``groups=True`` of :func:`train_variant`); each keeps its
    own best validation step.

    Args:
        variant, net, dt, n_steps, keys, chunk_size, lr, model_kwargs: as :func:`train_variant`.
        m: environments per group.
        train, val: ``[n_env_total, n_traj, n_time, *state]`` (``val`` may be ``None``).
        evals: splits to score, laid out like ``train``.
        n_env: group the first ``n_env`` environments only (default all).

    Returns:
        For every split of ``evals``, the per-seed MSE averaged over the grouped environments,
        ``[n_seeds]``.
    """
    grp = lambda x: grouped(x, m, n_env)  # noqa: E731
    model, res = train_variant(variant, net, grp(train), None if val is None else grp(val), dt=dt,
                               n_steps=n_steps, keys=keys, groups=True, chunk_size=chunk_size, lr=lr,
                               **model_kwargs)
    n_seeds = len(keys)
    return [evaluate(model, res.best_params, grp(x), groups=True).reshape(n_seeds, -1).mean(-1) for x in evals]


def one_for_all_floor(states: Array, m: int, n_env: int = 8) -> float:
    """Lowest MSE any One-For-All model can reach on ``states`` with groups of ``m`` environments.

    Every environment's trajectory ``i`` starts from the same state, and One-For-All is one
    deterministic field per group, so it predicts the same trajectory for every environment of
    a group; the best such prediction is the group mean, whose MSE is the within-group variance.

    Args:
        states: ``[n_env_total, n_traj, n_time, *state]`` with initial states shared across
            environments; the first ``n_env`` environments are grouped consecutively.
        m: environments per group (divides ``n_env``).
        n_env: how many environments are grouped (8 in thesis Table 3.15).

    Returns:
        The mean over the grouped environments of ``mean |x_e - mean_group x|^2``.

    Raises:
        ValueError: ``m`` does not divide ``n_env``, fewer than ``n_env`` environments, or the
            initial states differ across environments.
    """
    states = np.asarray(states, np.float64)
    if m < 1 or n_env % m:
        raise ValueError(f"m must divide n_env={n_env}, got {m}")
    if states.ndim < 3 or states.shape[0] < n_env:
        raise ValueError(f"states must be [n_env >= {n_env}, n_traj, n_time, ...], got shape {states.shape}")
    x = states[:n_env]
    if not np.allclose(x[:, :, 0], x[:1, :, 0]):
        raise ValueError("the floor needs initial states shared across environments")
    g = x.reshape(n_env // m, m, *x.shape[1:])
    return float(np.mean(np.square(g - g.mean(axis=1, keepdims=True))))


def per_env_figure(per_env: dict, title: str, path, *, figsize=(8, 3.5), ncol: int = 3) -> str:
    """Bar chart of per-environment test MSE (mean and std over seeds), one bar group per method.

    Args:
        per_env: method name -> test MSE ``[n_seeds, n_env]``.
        title: figure title.
        path: PNG path (written atomically).

    Returns:
        The file name.
    """
    import io
    from pathlib import Path

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    names = list(per_env)
    n_env = np.shape(per_env[names[0]])[-1]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        mse = np.asarray(per_env[name])
        ax.bar(np.arange(n_env) + i * width, mse.mean(0), width, yerr=mse.std(0), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("environment")
    ax.set_ylabel("test MSE (mean over seeds)")
    ax.set_xticks(np.arange(n_env) + 0.4, [str(e) for e in range(n_env)])
    ax.legend(fontsize=7, ncol=ncol)
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path).name
