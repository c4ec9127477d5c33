"""LEADS: multi-environment dynamics ``f_e = f + g_e`` (Yin et al. 2021; thesis section 3.4).

Every environment ``e`` has the field ``f_e = f + g_e``: ``f`` is shared and ``g_e`` is fitted
to environment ``e`` only. The relaxed problem (thesis eq. 3.12, trajectory form) is

    min  MSE_traj(f + g_e)  +  (1/lambda) * sum_e Omega(g_e),
    Omega(g_e) = mean_x |g_e(x)|^2 / (|x| + eps)^2  +  alpha * sum_l sigma(W_l^{g_e})^2,

with ``x`` the ground-truth training states of environment ``e`` (all frames), ``sigma`` the
spectral norm of ``g_e``'s weight matrices (power iteration with a persistent vector, see
:mod:`dynajax.nn.spectral_norm`; biases and Swish ``beta`` are excluded), and the sum over
environments taken as in the released code. ``lam=None`` drops the penalty ("LEADS no min").

Layout. ``f`` and every ``g_e`` share one flax architecture ``net`` that maps states
``[..., *state_shape]`` to derivatives of the same shape. Parameters are a dict
``{"f": ..., "g": ...}``; ``g`` carries a leading environment axis ``[n_env, ...]`` and the
field is ``vmap``-ped over environments (one compiled program for all of them). The same
machinery gives the baselines (:data:`VARIANTS`, :func:`make_model`):

* ``"leads"``: shared ``f``, one ``g_e`` per environment, penalty on.
* ``"leads_no_min"``: the same without penalty.
* ``"one_per_env"``: ``f`` *and* ``g`` per environment (one independent ``(f + g)_e`` each,
  so the parameter count matches LEADS'), no penalty.
* ``"one_for_all"``: one ``f + g`` (no environment axis) for all data, no penalty.

GBML-like fine-tuning (pretrain One-For-All, then fine-tune a copy per environment) is
:func:`tile_per_env` followed by training a ``"one_per_env"`` model. Adaptation to new
environments trains only ``g`` with ``f`` frozen (:func:`fit_leads` with ``frozen_f``).

Trajectories are integrated with :func:`dynajax.solve.integrate` (fixed step, one step per
frame, ``"rk4_38"`` by default, the ``scan`` backend), differentiating through the solver.
Training uses exponential scheduled sampling (:func:`scheduled_sampling_eps`): each frame but
the last restarts from the ground truth with probability ``eps = k ** (step // every)``.

Data layout: ``states [n_env, n_traj, n_time, *state_shape]`` (a dataset's ``by_env()``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from dynajax.nn import as_complex, init_spectral_state, spectral_norms
from dynajax.solve import get_solver, integrate
from dynajax.train import FitResult, TrainState, fit, init_state, make_step

__all__ = [
    "VARIANTS",
    "OMEGAS",
    "LeadsModel",
    "make_model",
    "init_params",
    "zero_like_g",
    "tile_per_env",
    "weight_matrices",
    "init_sn_state",
    "derivative",
    "penalty",
    "scheduled_sampling_eps",
    "rollout",
    "predict",
    "mse_per_env",
    "loss_fn",
    "make_trainer",
    "fit_leads",
]

VARIANTS = ("leads", "leads_no_min", "one_per_env", "one_for_all")
OMEGAS = ("leads", "frobenius")

# FNO spectral weights are stored real [2, ...] (dynajax.nn.fno); conv / dense kernels as is.
_COMPLEX_WEIGHTS = ("weights1", "weights2")
_KERNELS = ("kernel",)


@dataclasses.dataclass(frozen=True)
class LeadsModel:
    """A LEADS model (or one of its baselines) and how it is integrated.

    Attributes:
        net: the flax architecture of ``f`` and of each ``g_e``: ``[..., *state] -> [..., *state]``.
        n_env: number of environments.
        dt: frame spacing; one solver step per frame.
        solver: fixed-step solver name (:data:`dynajax.solve.SOLVERS`), ``"rk4_38"`` by default.
        lam: the ``lambda`` of the penalty ``(1/lambda) * Omega``; ``None`` = no penalty.
        alpha: weight of the spectral-norm term inside ``Omega``.
        per_env_f: ``f`` has an environment axis (One-Per-Env).
        per_env_g: ``g`` has an environment axis (``False``: One-For-All).
        n_power_iter: power iterations per spectral-norm estimate.
        norm_eps: added to ``|x|`` in the normalised norm term (the code's ``1e-5``).
        state_ndim: number of trailing state axes (1 for ``[d]``, 3 for ``[C, H, W]``).
        omega: ``"leads"`` (the normalised L2 + spectral-norm penalty above) or
            ``"frobenius"``: ``Omega(g_e) = sum of squared weights of g_e`` (``||G_e||_F^2``
            for a linear ``g_e``, the thesis' linear-ODE check, Table 3.11).
        unroll: ``lax.scan`` unroll of the fixed-step rollout (``integrate(..., unroll=)``):
            ``"auto"`` (unrolled on CPU when the field convolves), an int, or ``True``.
    """

    net: nn.Module
    n_env: int
    dt: float
    solver: str = "rk4_38"
    lam: float | None = 5e3
    alpha: float = 1e-2
    per_env_f: bool = False
    per_env_g: bool = True
    n_power_iter: int = 5
    norm_eps: float = 1e-5
    state_ndim: int = 1
    omega: str = "leads"
    unroll: int | bool | str = "auto"

    def __post_init__(self):
        if not isinstance(self.n_env, int) or isinstance(self.n_env, bool) or self.n_env < 1:
            raise ValueError(f"n_env must be a positive int, got {self.n_env!r}")
        if not float(self.dt) > 0:
            raise ValueError(f"dt must be positive, got {self.dt!r}")
        get_solver(self.solver)  # validates the name
        if self.lam is not None and not float(self.lam) > 0:
            raise ValueError(f"lam must be positive or None (no penalty), got {self.lam!r}")
        if not float(self.alpha) >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        if self.per_env_f and not self.per_env_g:
            raise ValueError("per_env_f=True needs per_env_g=True (one (f + g)_e per environment)")
        if self.lam is not None and not self.per_env_g:
            raise ValueError("the LEADS penalty needs per-environment g (per_env_g=True); use lam=None")
        if self.omega not in OMEGAS:
            raise ValueError(f"unknown omega {self.omega!r}; allowed: {', '.join(OMEGAS)}")
        if not isinstance(self.state_ndim, int) or self.state_ndim < 1:
            raise ValueError(f"state_ndim must be a positive int, got {self.state_ndim!r}")


def make_model(variant: str, net: nn.Module, n_env: int, dt: float, **kwargs) -> LeadsModel:
    """The :class:`LeadsModel` of a named variant (see :data:`VARIANTS`).

    ``kwargs`` go to :class:`LeadsModel` (``lam`` and ``alpha`` are used by ``"leads"`` only).

    Raises:
        ValueError: unknown variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    if variant == "leads":
        return LeadsModel(net, n_env, dt, **kwargs)
    kwargs = {**kwargs, "lam": None}
    if variant == "leads_no_min":
        return LeadsModel(net, n_env, dt, **kwargs)
    if variant == "one_per_env":
        return LeadsModel(net, n_env, dt, per_env_f=True, **kwargs)
    return LeadsModel(net, n_env, dt, per_env_g=False, **kwargs)


def _split_keys(key, n):
    return jax.random.split(key, n)


def init_params(model: LeadsModel, example: Float[Array, "*state"], *, key: PRNGKeyArray) -> PyTree:
    """Initial ``{"f": ..., "g": ...}``; environment axes as the model says.

    Args:
        model: the model.
        key: PRNG key.
        example: one state ``[*state_shape]`` (for shapes only).
    """
    kf, kg = jax.random.split(key)
    init = lambda k: model.net.init(k, example[None])["params"]  # noqa: E731
    f = jax.vmap(init)(_split_keys(kf, model.n_env)) if model.per_env_f else init(kf)
    g = jax.vmap(init)(_split_keys(kg, model.n_env)) if model.per_env_g else init(kg)
    return {"f": f, "g": g}


def zero_like_g(params: PyTree) -> PyTree:
    """``params`` with every ``g`` parameter set to 0 (so ``g_e = 0`` for MLP / conv nets)."""
    return {**params, "g": jax.tree_util.tree_map(jnp.zeros_like, params["g"])}


def tile_per_env(params: PyTree, n_env: int) -> PyTree:
    """One-For-All params copied to One-Per-Env layout (GBML-like fine-tuning start)."""
    tile = lambda x: jnp.broadcast_to(x, (n_env, *x.shape))  # noqa: E731
    return {"f": jax.tree_util.tree_map(tile, params["f"]), "g": jax.tree_util.tree_map(tile, params["g"])}


def weight_matrices(net_params: PyTree) -> dict[str, Array]:
    """The weights entering the spectral-norm penalty of one network, by path.

    Dense / conv kernels (``kernel``) and FNO spectral weights (``weights1``/``weights2``,
    rebuilt complex). Biases, Swish ``beta`` and everything else are left out.
    """
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(net_params)[0]:
        name = getattr(path[-1], "key", str(path[-1]))
        label = "/".join(str(getattr(p, "key", p)) for p in path)
        if name in _KERNELS:
            out[label] = leaf
        elif name in _COMPLEX_WEIGHTS:
            out[label] = as_complex(leaf)
    return out


def init_sn_state(model: LeadsModel, params: PyTree, *, key: PRNGKeyArray) -> PyTree:
    """Power-iteration vectors ``u`` for every ``g_e`` weight (leading env axis); ``{}`` if unused."""
    if model.lam is None or model.omega != "leads":
        return {}
    keys = _split_keys(key, model.n_env)
    return jax.vmap(lambda k, g: init_spectral_state(weight_matrices(g), key=k))(keys, params["g"])


def _apply(net, p, x):
    return net.apply({"params": p}, x)


def _env_axes(model: LeadsModel):
    return (0 if model.per_env_f else None, 0 if model.per_env_g else None)


def derivative(model: LeadsModel, params: PyTree, x: Float[Array, "n_env ..."]) -> Float[Array, "n_env ..."]:
    """``f_e(x_e) = f(x_e) + g_e(x_e)`` for every environment, ``vmap``-ped over ``e``.

    Args:
        model: the model.
        params: ``{"f", "g"}``.
        x: states with a leading environment axis ``[n_env, ..., *state_shape]``.

    Returns:
        Derivatives shaped like ``x``.
    """
    one = lambda f, g, xe: _apply(model.net, f, xe) + _apply(model.net, g, xe)  # noqa: E731
    return jax.vmap(one, in_axes=(*_env_axes(model), 0))(params["f"], params["g"], x)


def _flat_sq_norm(x, state_ndim):
    axes = tuple(range(x.ndim - state_ndim, x.ndim))
    return jnp.sum(jnp.square(x), axis=axes)


def penalty(
    model: LeadsModel, g_params: PyTree, sn_state: PyTree, states: Float[Array, "n_env ..."]
) -> tuple[Float[Array, ""], dict[str, Array], PyTree]:
    """``(1/lambda) * sum_e [mean_x |g_e(x)|^2/(|x|+eps)^2 + alpha * sum_l sigma_l(g_e)^2]``.

    With ``model.omega == "frobenius"``: ``(1/lambda) * sum_e sum_l ||W_l^{g_e}||_F^2``.

    Args:
        model: a model with ``lam`` set and per-environment ``g``.
        g_params: ``g`` parameters ``[n_env, ...]``.
        sn_state: power-iteration vectors from :func:`init_sn_state`.
        states: ground-truth states ``[n_env, ..., *state_shape]`` (any batch axes).

    Returns:
        ``(penalty, parts, new_sn_state)`` with ``parts`` holding the summed ``norm`` and
        ``spectral`` terms (before the ``1/lambda`` factor).
    """
    if model.lam is None:
        raise ValueError("this model has no penalty (lam=None)")
    nd = model.state_ndim
    if model.omega == "frobenius":
        sq = jax.vmap(lambda g: sum(jnp.sum(jnp.abs(w) ** 2) for w in weight_matrices(g).values()))(g_params)
        total = jnp.sum(sq) / model.lam
        return total, {"frobenius": jnp.sum(sq)}, sn_state

    def one(g, u, x):
        gx = _apply(model.net, g, x)
        ratio = _flat_sq_norm(gx, nd) / jnp.square(jnp.sqrt(_flat_sq_norm(x, nd)) + model.norm_eps)
        sig, new_u = spectral_norms(weight_matrices(g), u, model.n_power_iter)
        sn = sum(jnp.square(s) for s in jax.tree_util.tree_leaves(sig))
        return jnp.mean(ratio), sn, new_u

    norm, sn, new_state = jax.vmap(one)(g_params, sn_state, states)
    norm, sn = jnp.sum(norm), jnp.sum(sn)
    total = (norm + model.alpha * sn) / model.lam
    return total, {"norm": norm, "spectral": sn}, new_state


def scheduled_sampling_eps(step: Array | int, k: float = 0.99, every: int = 10) -> Array:
    """``eps = k ** (step // every)``: probability of restarting a frame from the truth."""
    return jnp.power(jnp.asarray(k, jnp.float32), (jnp.asarray(step) // every).astype(jnp.float32))


def _solve(model: LeadsModel, field: Callable, y0: PyTree, n_frames: int) -> PyTree:
    """States at ``0, dt, ..., (n_frames - 1) dt`` from ``y0``, one fixed step per frame."""
    ts = np.arange(n_frames, dtype=np.float64) * float(model.dt)
    return integrate(field, y0, ts, solver=model.solver, dt0=float(model.dt), backend="scan",
                     unroll=model.unroll)


def rollout(
    model: LeadsModel,
    params: PyTree,
    states: Float[Array, "n_env n_traj n_time *state"],
    eps: Array | float = 0.0,
    *,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "n_env n_traj n_time *state"]:
    """Predicted trajectories with scheduled sampling.

    Frame ``k + 1`` is one solver step from the ground-truth frame ``k`` with probability
    ``eps`` (drawn per trajectory and frame), else from the predicted frame ``k``. With
    ``eps = 0`` this is the plain rollout from ``states[:, :, 0]`` (:func:`predict`).
    """
    n_time = states.shape[2]
    field = lambda t, y, a: derivative(model, params, y)  # noqa: E731
    if key is None:
        return jnp.moveaxis(_solve(model, field, states[:, :, 0], n_time), 0, 2)
    mask = jax.random.bernoulli(key, eps, (n_time - 1, *states.shape[:2]))
    mask = mask.reshape(mask.shape + (1,) * model.state_ndim)
    truth = jnp.moveaxis(states, 2, 0)  # [n_time, n_env, n_traj, *state]

    def frame(pred, inp):
        gt, use_gt = inp
        nxt = _solve(model, field, jnp.where(use_gt, gt, pred), 2)[1]
        return nxt, nxt

    _, preds = jax.lax.scan(frame, truth[0], (truth[:-1], mask))
    return jnp.moveaxis(jnp.concatenate([truth[:1], preds]), 0, 2)


def predict(model: LeadsModel, params: PyTree, y0: Float[Array, "n_env n_traj *state"], n_time: int):
    """Rollouts ``[n_env, n_traj, n_time, *state]`` from initial states ``[n_env, n_traj, *state]``."""
    field = lambda t, y, a: derivative(model, params, y)  # noqa: E731
    return jnp.moveaxis(_solve(model, field, y0, n_time), 0, 2)


def mse_per_env(model: LeadsModel, params: PyTree, states: Float[Array, "n_env n_traj n_time *state"]) -> Float[Array, " n_env"]:
    """Test MSE per environment: mean over trajectories, frames (``t = 0`` included) and state."""
    pred = predict(model, params, states[:, :, 0], states.shape[2])
    return jnp.mean(jnp.square(pred - states).reshape(states.shape[0], -1), axis=1)


def loss_fn(
    model: LeadsModel,
    params: PyTree,
    sn_state: PyTree,
    states: Float[Array, "n_env n_traj n_time *state"],
    eps: Array | float,
    *,
    key: PRNGKeyArray,
) -> tuple[Array, tuple[dict[str, Array], PyTree]]:
    """Trajectory MSE (scheduled sampling) plus the LEADS penalty on the ground-truth states.

    Returns:
        ``(loss, (aux, new_sn_state))`` with ``aux`` holding ``mse`` and, with a penalty,
        ``penalty``, ``norm`` and ``spectral``.
    """
    pred = rollout(model, params, states, eps, key=key)
    mse = jnp.mean(jnp.square(pred - states))
    aux = {"mse": mse}
    if model.lam is None:
        return mse, (aux, sn_state)
    flat = states.reshape(states.shape[0], -1, *states.shape[3:])
    pen, parts, sn_state = penalty(model, params["g"], sn_state, flat)
    aux.update(penalty=pen, **parts)
    return mse + pen, (aux, sn_state)


def make_trainer(
    model: LeadsModel,
    train: Float[Array, "*groups n_env n_traj n_time *state"],
    *,
    keys: PRNGKeyArray,
    params: PyTree | None = None,
    frozen_f: PyTree | None = None,
    lr: float = 1e-3,
    ss_k: float = 0.99,
    ss_every: int = 10,
    groups: bool = False,
    state: TrainState | None = None,
) -> tuple[Callable, TrainState]:
    """The training step and the initial per-seed state used by :func:`fit_leads`.

    Arguments as :func:`fit_leads`. Returns ``(step, state)`` with ``step(state, batch)``
    the un-vmapped step (``batch`` is ignored: the training data are closed over) and
    ``state`` carrying a leading seed axis.
    """
    train = jnp.asarray(train)
    min_ndim = 4 + int(groups)
    if train.ndim < min_ndim:
        raise ValueError(
            f"train must be [{'G, ' if groups else ''}n_env, n_traj, n_time, *state], got shape {train.shape}"
        )
    env_axis = int(groups)
    if train.shape[env_axis] != model.n_env:
        raise ValueError(f"train holds {train.shape[env_axis]} environments, the model {model.n_env}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    example = train[(0,) * (3 + int(groups))]
    g_shape = (train.shape[0],) if groups else ()
    optimizer = optax.adam(lr)

    def full(p, f_fixed):
        return p if f_fixed is None else {"f": jax.lax.stop_gradient(f_fixed), "g": p}

    def one_group_loss(p, sn, data, k, eps, f_fixed):
        return loss_fn(model, full(p, f_fixed), sn, data, eps, key=k)

    def step_loss(p, mstate, batch, key):
        eps = scheduled_sampling_eps(mstate["step"], ss_k, ss_every) if ss_k > 0 else jnp.zeros(())
        f_fixed = mstate.get("frozen_f")
        if groups:
            ks = jax.random.split(key, train.shape[0])
            loss, (aux, sn) = jax.vmap(one_group_loss, in_axes=(0, 0, 0, 0, None, 0 if f_fixed is not None else None))(
                p, mstate["sn"], train, ks, eps, f_fixed)
            loss, aux = jnp.sum(loss), jax.tree_util.tree_map(jnp.sum, aux)
        else:
            loss, (aux, sn) = one_group_loss(p, mstate["sn"], train, key, eps, f_fixed)
        new = {**mstate, "sn": sn, "step": mstate["step"] + 1}
        return loss, ({**aux, "eps": eps}, new)

    step = make_step(step_loss, optimizer, stateful=True)

    def init_one(key, p0, f_fixed):
        kp, ks, kt = jax.random.split(key, 3)

        def fresh(k):
            p = init_params(model, example, key=k)
            return p if f_fixed is None else p["g"]

        if groups:
            p = jax.vmap(fresh)(_split_keys(kp, g_shape[0])) if p0 is None else p0
            full_p = p if f_fixed is None else jax.vmap(full)(p, f_fixed)
            sn = jax.vmap(lambda k, q: init_sn_state(model, q, key=k))(_split_keys(ks, g_shape[0]), full_p)
        else:
            p = fresh(kp) if p0 is None else p0
            sn = init_sn_state(model, full(p, f_fixed), key=ks)
        mstate = {"sn": sn, "step": jnp.zeros((), jnp.int32)}
        if f_fixed is not None:
            mstate["frozen_f"] = f_fixed
        return init_state(p, optimizer, key=kt, model_state=mstate)

    if state is None:
        state = jax.vmap(init_one, in_axes=(0, None if params is None else 0, None if frozen_f is None else 0))(
            keys, params, frozen_f)

    return step, state


def fit_leads(
    model: LeadsModel,
    train: Float[Array, "*groups n_env n_traj n_time *state"],
    *,
    keys: PRNGKeyArray,
    n_steps: int,
    val: Float[Array, "*groups n_env n_val n_time *state"] | None = None,
    params: PyTree | None = None,
    frozen_f: PyTree | None = None,
    lr: float = 1e-3,
    ss_k: float = 0.99,
    ss_every: int = 10,
    groups: bool = False,
    chunk_size: int = 500,
    state: TrainState | None = None,
    progress: bool = False,
) -> FitResult:
    """Trains a LEADS model with Adam, all seeds (and groups) in one compiled program.

    Args:
        model: the model.
        keys: one PRNG key per seed ``[n_seeds]`` (``vmap``-ped by :func:`dynajax.train.fit`).
        train: training states ``[n_env, n_traj, n_time, *state]``; with ``groups=True`` a
            leading axis of independent groups of environments ``[G, n_env, ...]``.
        n_steps: optimiser steps (total, counting those of a ``state`` passed in).
        val: validation states laid out like ``train``; the parameters with the lowest
            validation MSE are kept (``best_params``). Never pass the test split.
        params: initial parameters ``[n_seeds, (G,) ...]`` (default :func:`init_params`).
            With ``frozen_f`` these are the ``g`` parameters only.
        frozen_f: adaptation to new environments: ``f`` parameters ``[n_seeds, (G,) ...]``
            held fixed (never differentiated nor updated); only ``g`` trains.
        lr: Adam learning rate.
        ss_k, ss_every: scheduled sampling, ``eps = ss_k ** (step // ss_every)``;
            ``ss_k = 0`` disables it.
        groups: whether the data carry a leading group axis. Groups train independently
            (their losses are summed; Adam is elementwise, so the updates are those of
            separate runs); validation selects per group, so every group keeps its own
            best step (``best_val`` is ``[n_seeds, G]``).
        chunk_size: steps per compiled chunk.
        state: continue from this :class:`~dynajax.train.TrainState` (its params, optimiser
            state and step) instead of initialising.
        progress: show a progress bar.

    Returns:
        The :class:`~dynajax.train.FitResult`; ``state.params`` (and ``best_params``) are
        ``{"f", "g"}`` (or ``g`` alone with ``frozen_f``) with leading ``[n_seeds, (G,)]``.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    step, state = make_trainer(model, train, keys=keys, params=params, frozen_f=frozen_f, lr=lr,
                               ss_k=ss_k, ss_every=ss_every, groups=groups, state=state)
    train = jnp.asarray(train)
    if val is not None and (jnp.ndim(val) != train.ndim or jnp.shape(val)[int(groups)] != model.n_env):
        raise ValueError(f"val must be laid out like train {train.shape}, got {jnp.shape(val)}")
    validate = None
    if val is not None and frozen_f is None:
        val = jnp.asarray(val)

        def validate(p):
            if groups:
                return jax.vmap(lambda q, v: jnp.mean(mse_per_env(model, q, v)))(p, val)  # [G]
            return jnp.mean(mse_per_env(model, p, val))

    elif val is not None:
        raise ValueError("with frozen_f (adaptation) give no val: evaluate at fixed steps instead")
    return fit(step, state, lambda key, step: (), n_steps=n_steps, chunk_size=chunk_size,
               validate=validate, seeds=True, progress=progress)
