"""Partially observed dynamics: hidden-state ODEs learned from observations (thesis ch. 1-2).

A model is a triple (eqs. 2.3-2.4):

* a vector field ``F_theta`` on the full state ``X [d, H, W]`` (any flax module mapping
  ``[..., d, H, W]`` to the same shape, e.g. :class:`~dynajax.forecast.hidden_baselines.ResNet`);
* a linear observation operator ``H``: :class:`ChannelProjection` (``Y`` = some channels of
  ``X``, all the thesis' experiments) or :class:`PointwiseLinear` (any per-pixel linear map of
  the channels);
* an initial-state estimator ``g_theta`` from ``K`` past observations, used according to the
  setting: ``"joint"`` (setting 1: ``X0 = H^+ Y0 + (I - H^+ H) g(Y_{-K+1:0})``, i.e. the
  observed channels are ``Y0`` and ``g`` fills the hidden ones), ``"canonical"`` (setting 2:
  ``X0`` given), ``"residual"`` (eq. 2.8: ``X0 = E(Y_{-K+1:0}, B) + B`` with a base state
  ``B = (Y0, w0, 0)`` given, e.g. a velocity proxy ``w0`` and zeros).

Training is discretise-then-optimise: the state is advanced over each observation interval by
``substeps`` explicit Euler or RK4 steps (``method="direct"`` replaces the solver by the map
``X_{i+1} = F(X_i)``, the thesis' "ResNet" ablation), gradients flow through the unrolled
scheme. Scheduled sampling (Bengio et al. 2015; an [interp.] of the thesis): at each observation time,
with probability ``p`` (per example), the observed part of the state is reset to the data,
``X <- X + H^+ (Y - H X)``. Constraints enter as penalties (eq. 2.12), see
:func:`masked_zero_penalty`.

CPU note: XLA:CPU runs convolutions inside a rolled ``lax.scan`` much slower than unrolled.
:func:`rollout` unrolls its scan over observation intervals automatically when the backend is
CPU and the step contains a convolution (:func:`should_unroll`); substeps are always a Python
loop. :func:`fit` trains through :func:`dynajax.train.fit`, whose ``unroll="auto"`` runs
such a step as a Python loop of one compiled step, and :func:`forecast` advances with a
Python loop over a jitted interval.

States are channels-first ``[..., C, H, W]`` (the :mod:`dynajax.systems` convention).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from dynajax._fixed_step import rk_step, tableau_of
from dynajax._unroll import contains_convolution, should_unroll
from dynajax.solve import RK4
from dynajax.train import FitResult, StepFn, TrainState, init_state, make_step, sample_minibatch
from dynajax.train import fit as train_fit

__all__ = [
    "METHODS",
    "SETTINGS",
    "ChannelProjection",
    "HiddenModel",
    "PointwiseLinear",
    "contains_convolution",
    "curriculum_stages",
    "exponential_schedule",
    "fit",
    "forecast",
    "horizon_means",
    "make_loss",
    "make_train_step",
    "masked_zero_penalty",
    "persistence",
    "relative_error",
    "rollout",
    "should_unroll",
    "velocity_cosine",
    "windows",
]

SETTINGS = ("joint", "canonical", "residual")
METHODS = ("euler", "rk4", "direct")
# the solvers' Butcher tableaux, stepped by hand (see the CPU note)
_TABLEAUX = {"euler": tableau_of(diffrax.Euler()), "rk4": tableau_of(RK4())}


# -- observation operators ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PointwiseLinear:
    """``Y(x) = M X(x)`` at every pixel, ``M`` of shape ``[l, d]`` (full row rank).

    ``correct(x, y) = x + M^+ (y - M x)`` is the least-norm change of ``x`` with ``H x = y``
    (used by scheduled sampling and to build initial states).
    """

    matrix: tuple[tuple[float, ...], ...]

    def __post_init__(self):
        m = np.asarray(self.matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[0] < 1 or m.shape[0] > m.shape[1]:
            raise ValueError(f"the observation matrix must be [l, d] with 1 <= l <= d, got {m.shape}")
        if np.linalg.matrix_rank(m) < m.shape[0]:
            raise ValueError("the observation matrix must have full row rank")

    @property
    def n_obs(self) -> int:
        """``l``, the observed channels."""
        return len(self.matrix)

    @property
    def n_state(self) -> int:
        """``d``, the state channels."""
        return len(self.matrix[0])

    def _m(self, dtype):
        return jnp.asarray(self.matrix, dtype)

    def __call__(self, x: Float[Array, "... d H W"]) -> Float[Array, "... l H W"]:
        """``H(x)``."""
        return jnp.einsum("ld,...dhw->...lhw", self._m(x.dtype), x)

    def lift(self, y: Float[Array, "... l H W"]) -> Float[Array, "... d H W"]:
        """``H^+ y`` (the least-norm state observed as ``y``)."""
        pinv = jnp.asarray(np.linalg.pinv(np.asarray(self.matrix)), y.dtype)
        return jnp.einsum("dl,...lhw->...dhw", pinv, y)

    def correct(self, x, y):
        """``x + H^+ (y - H x)``: ``x`` with its observed part replaced by ``y``."""
        return x + self.lift(y - self(x))

    def hidden_part(self, x):
        """``(I - H^+ H) x``, the part of ``x`` that ``H`` does not see."""
        return x - self.lift(self(x))


def ChannelProjection(channels: Sequence[int], n_state: int) -> PointwiseLinear:
    """``Y = X[..., channels, :, :]`` as a :class:`PointwiseLinear` (``d = n_state``)."""
    channels = [int(c) for c in channels]
    if not channels or len(set(channels)) != len(channels) or not all(0 <= c < n_state for c in channels):
        raise ValueError(f"channels must be distinct indices in [0, {n_state}), got {channels}")
    eye = np.eye(n_state)
    return PointwiseLinear(tuple(tuple(float(v) for v in eye[c]) for c in channels))


# -- the model ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HiddenModel:
    """A partially observed model: field ``F``, observation ``H``, estimator ``g``.

    Attributes:
        field: flax module ``[..., d, H, W] -> [..., d, H, W]``: the vector field ``F_theta``
            (or, with ``method="direct"``, the transition map ``X_i -> X_{i+1}``).
        observe: the observation operator (:func:`ChannelProjection`, :class:`PointwiseLinear`).
        estimator: flax module ``[..., K * l (+ d), H, W] -> [..., d, H, W]``; needed by the
            ``"joint"`` and ``"residual"`` settings (its input is the ``K`` context
            observations stacked on channels, plus the base state for ``"residual"``).
        setting: ``"joint"`` (1), ``"canonical"`` (2) or ``"residual"`` (eq. 2.8).
        n_context: ``K``, the context observations ``Y_{-K+1..0}``.
        interval: time between observations.
        substeps: solver steps per interval.
        method: ``"euler"``, ``"rk4"`` or ``"direct"``.
        unroll: ``None`` (automatic, :func:`should_unroll`) or a bool forcing it.
    """

    field: nn.Module
    observe: PointwiseLinear
    estimator: nn.Module | None = None
    setting: str = "joint"
    n_context: int = 4
    interval: float = 1.0
    substeps: int = 3
    method: str = "euler"
    unroll: bool | None = None

    def __post_init__(self):
        if self.setting not in SETTINGS:
            raise ValueError(f"unknown setting {self.setting!r}; allowed: {', '.join(SETTINGS)}")
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; allowed: {', '.join(METHODS)}")
        if self.setting != "canonical" and self.estimator is None:
            raise ValueError(f"setting {self.setting!r} needs an estimator g_theta")
        for name in ("n_context", "substeps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not self.interval > 0:
            raise ValueError(f"interval must be > 0, got {self.interval!r}")

    @property
    def n_state(self) -> int:
        return self.observe.n_state

    def _estimator_input(self, context, base):
        """``[..., K, l, H, W]`` (+ base ``[..., d, H, W]``) -> ``[..., K*l (+d), H, W]``."""
        c = context.reshape(*context.shape[:-4], -1, *context.shape[-2:])
        return c if base is None else jnp.concatenate([c, base], axis=-3)

    def init(self, key, context: Float[Array, "K l H W"]) -> dict:
        """Parameters ``{"field": ..., "estimator": ...}`` for one example's context."""
        kf, ke = jax.random.split(key)
        h, w = context.shape[-2:]
        x = jnp.zeros((self.n_state, h, w), context.dtype)
        params = {"field": self.field.init(kf, x)}
        if self.estimator is not None:
            base = x if self.setting == "residual" else None
            params["estimator"] = self.estimator.init(ke, self._estimator_input(context, base))
        return params

    def initial_state(self, params, context: Float[Array, "... K l H W"], x0=None):
        """``X0`` from the context observations (and ``x0``: the state for ``"canonical"``,
        the base ``(Y0, w0, 0)`` for ``"residual"``)."""
        if context.shape[-4] != self.n_context:
            raise ValueError(f"context must hold K = {self.n_context} frames, got shape {context.shape}")
        if self.setting == "canonical":
            if x0 is None:
                raise ValueError("setting 'canonical' needs the initial state x0")
            return x0
        if self.setting == "residual":
            if x0 is None:
                raise ValueError("setting 'residual' needs the base state x0 = (Y0, w0, 0)")
            return x0 + self.estimator.apply(params["estimator"], self._estimator_input(context, x0))
        g = self.estimator.apply(params["estimator"], self._estimator_input(context, None))
        return self.observe.lift(context[..., -1, :, :, :]) + self.observe.hidden_part(g)

    def advance(self, params, x):
        """One observation interval: ``substeps`` solver steps (or the direct map)."""
        if self.method == "direct":
            return self.field.apply(params["field"], x)
        tab = _TABLEAUX[self.method]
        h = jnp.asarray(self.interval / self.substeps, x.dtype)
        f = lambda t, y, args: self.field.apply(params["field"], y)
        for _ in range(self.substeps):
            x = rk_step(f, tab, 0.0, x, h, None)
        return x


def rollout(model: HiddenModel, params, x0, n_steps: int, obs=None, teacher_prob=0.0, *, key=None):
    """States ``X_0..X_n`` at the observation times, ``[n_steps + 1, ..., d, H, W]``.

    With ``obs`` (``[n_steps, ..., l, H, W]``: ``Y_1..Y_n``), ``teacher_prob > 0`` and a key,
    scheduled sampling resets the observed part of ``X_i`` to ``Y_i`` with that probability
    (per example: leading axes of ``x0`` but the last three) before advancing further.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    unroll = model.unroll
    if unroll is None:
        unroll = should_unroll(lambda p, x: model.advance(p, x), params, x0)
    use_teacher = obs is not None and key is not None
    batch_shape = x0.shape[:-3]

    def body(x, inp):
        x = model.advance(params, x)
        if use_teacher:
            y, k = inp
            coin = jax.random.uniform(k, batch_shape) < teacher_prob
            x_out = x
            x = jnp.where(coin[..., None, None, None], model.observe.correct(x, y), x)
            return x, x_out
        return x, x

    if use_teacher:
        if obs.shape[0] != n_steps:
            raise ValueError(f"obs must hold n_steps = {n_steps} frames, got {obs.shape[0]}")
        xs = (obs, jax.random.split(key, n_steps))
    else:
        xs = None
    _, states = jax.lax.scan(body, x0, xs, length=n_steps, unroll=bool(unroll) or 1)
    return jnp.concatenate([x0[None], states], axis=0)


# -- training -------------------------------------------------------------------------------

Penalty = Callable[[Array, dict], Array]


def masked_zero_penalty(mask_key: str = "mask", channels: Sequence[int] | None = None) -> Penalty:
    """Eq. 2.12's constraint ``X|_Omega = 0`` as a penalty ``mean_t ||1_Omega X_t||^2``.

    ``batch[mask_key]`` is ``[B, H, W]`` (1 inside ``Omega``); ``channels`` selects the
    constrained channels (default: all). Returns ``penalty(states [T+1, B, d, H, W], batch)``.
    """
    def penalty(states, batch):
        x = states if channels is None else states[..., tuple(channels), :, :]
        m = batch[mask_key][None, :, None].astype(x.dtype)
        return jnp.mean(jnp.sum((m * x) ** 2, axis=(-3, -2, -1)))

    return penalty


def make_loss(model: HiddenModel, penalties: Sequence[tuple[float, Penalty]] = ()):
    """``loss(params, batch, key) -> (loss, aux)`` of eqs. 2.3-2.4 (+ penalties, eq. 2.12).

    ``batch``: ``"obs" [B, K + T, l, H, W]`` (context ``Y_{-K+1..0}`` then targets
    ``Y_1..Y_T``), ``"x0" [B, d, H, W]`` for the canonical/residual settings, optional
    ``"teacher_prob"`` (scalar, scheduled sampling) and whatever the penalties read. The fit
    term is the mean over examples and steps of ``||Y_i - H X_i||^2`` (sum over pixels).
    """
    K = model.n_context

    def loss(params, batch, key):
        obs = batch["obs"]
        T = obs.shape[1] - K
        x0 = model.initial_state(params, obs[:, :K], batch.get("x0"))
        targets = jnp.moveaxis(obs[:, K:], 1, 0)  # [T, B, l, H, W]
        p = batch.get("teacher_prob", 0.0)
        states = rollout(model, params, x0, T, obs=targets, teacher_prob=p, key=key)
        err = model.observe(states[1:]) - targets
        fit = jnp.mean(jnp.sum(err**2, axis=(-3, -2, -1)))
        total, aux = fit, {"fit": fit}
        for i, (weight, pen) in enumerate(penalties):
            v = pen(states, batch)
            aux[f"penalty_{i}"] = v
            total = total + weight * v
        return total, aux

    return loss


def exponential_schedule(decay: float) -> Callable[[Array], Array]:
    """Scheduled-sampling probability ``decay ** step`` (the thesis' 0.9999 for EP)."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay!r}")
    return lambda step: jnp.asarray(decay, jnp.float32) ** step


def make_train_step(
    model: HiddenModel,
    optimizer: optax.GradientTransformation,
    *,
    teacher: Callable[[Array], Array] | None = None,
    penalties: Sequence[tuple[float, Penalty]] = (),
) -> StepFn:
    """A :func:`dynajax.train.make_step` step that sets ``teacher_prob = teacher(step)``."""
    inner = make_step(make_loss(model, penalties), optimizer)
    if teacher is None:
        return inner

    def step(state: TrainState, batch):
        return inner(state, dict(batch, teacher_prob=teacher(state.step)))

    return step


def windows(states, obs_channels: Sequence[int], length: int, n_context: int, starts=None) -> dict:
    """Training or evaluation windows of full-state sequences ``states [N, n_t, d, H, W]``.

    Returns ``{"obs": [M, length, l, H, W], "x0": [M, d, H, W]}`` (NumPy): the observed
    channels ``obs_channels`` of frames ``s .. s + length - 1`` of each sequence, and the full
    state at the last context frame ``s + n_context - 1`` (setting 2's given ``X0``), for every
    start ``s`` (``starts``: the same given starts in every sequence), sequence-major.
    """
    states = np.asarray(states)
    n_t = states.shape[1]
    starts = list(range(n_t - length + 1) if starts is None else starts)
    if not 1 <= n_context <= length or not starts or min(starts) < 0 or max(starts) + length > n_t:
        raise ValueError(f"need 1 <= n_context <= length and windows inside the {n_t} frames; got n_context "
                         f"{n_context}, length {length}, starts {starts}")
    t = np.asarray(starts)[:, None] + np.arange(length)  # [S, length]
    obs = states[:, t][:, :, :, list(obs_channels)]  # [N, S, length, l, H, W]
    x0 = states[:, np.asarray(starts) + n_context - 1]  # [N, S, d, H, W]
    return {"obs": obs.reshape(-1, *obs.shape[2:]), "x0": x0.reshape(-1, *x0.shape[2:])}


def curriculum_stages(T: int, steps: int, curriculum=((1.0, 1.0),)) -> list[tuple[int, int]]:
    """A horizon curriculum as ``[(horizon, n_steps), ...]``.

    ``curriculum`` holds ``(fraction of T, fraction of the steps)`` pairs; the horizons are
    ``max(1, round(f * T))`` and the last stage takes the rounding rest of the steps (stages
    of 0 steps are dropped).

    Raises:
        ValueError: empty, a step fraction <= 0, step fractions not summing to 1, a horizon
            above ``T`` or a last horizon other than ``T``.
    """
    fr = [float(f) for _, f in curriculum]
    hs = [max(1, round(float(h) * T)) for h, _ in curriculum]
    if not hs or min(fr) <= 0 or not np.isclose(sum(fr), 1.0) or max(hs) > T or hs[-1] != T:
        raise ValueError(f"curriculum must be (horizon fraction <= 1, step fraction > 0) pairs, step fractions "
                         f"summing to 1 and the last horizon = T; got {curriculum!r}")
    n = [round(f * steps) for f in fr[:-1]]
    return [(h, k) for h, k in zip(hs, [*n, steps - sum(n)]) if k > 0]


def fit(
    model: HiddenModel,
    train_windows: dict,
    val_windows: dict,
    *,
    key: Array,
    steps: int,
    lr: float,
    batch_size: int,
    val_every: int,
    curriculum=((1.0, 1.0),),
    teacher: Callable[[Array], Array] | None = None,
    penalties: Sequence[tuple[float, Penalty]] = (),
    progress: bool = False,
) -> FitResult:
    """Trains ``model`` on windows with :func:`dynajax.train.fit`, keeping the best validation.

    Adam with a cosine decay from ``lr`` over ``steps``, minibatches of ``batch_size``
    windows. The validation loss is the fit term of :func:`make_loss` on every validation
    window over the full horizon ``T`` (free rollouts), after every ``val_every`` steps of a
    stage and at its end. ``curriculum`` (:func:`curriculum_stages`) trains on the first
    ``h`` targets of each window for a part of the steps: one :func:`dynajax.train.fit` per
    stage (one compiled step per horizon), keep-best carried across stages.

    Args:
        model: the model to train.
        key: PRNG key (initialisation, scheduled-sampling coins, minibatches).
        train_windows: ``{"obs": [N, K + T, l, H, W], "x0": [N, d, H, W], ...}`` (the
            batch layout of :func:`make_loss`, e.g. from :func:`windows`; extra keys such as
            masks read by ``penalties`` are sampled along).
        val_windows: the same layout, with the same ``K + T``.
        steps: optimiser steps.
        lr: initial learning rate.
        batch_size: windows per step.
        val_every: steps between validations.
        curriculum: ``(fraction of T, fraction of the steps)`` pairs.
        teacher: scheduled-sampling probability ``teacher(step)``
            (:func:`exponential_schedule`); ``None``: free rollouts.
        penalties: ``(weight, penalty)`` pairs as in :func:`make_loss`.
        progress: show :func:`dynajax.train.fit`'s progress bar.

    Returns:
        A :class:`dynajax.train.FitResult`: ``best_params`` (``model.init``'s structure),
        ``best_val``, ``best_step`` and the history of every stage, concatenated.
    """
    K = model.n_context
    if val_windows["obs"].shape[1] != train_windows["obs"].shape[1]:
        raise ValueError(f"training and validation windows must have the same length, got "
                         f"{train_windows['obs'].shape[1]} and {val_windows['obs'].shape[1]}")
    k_init, k_state = jax.random.split(key)
    params = jax.jit(model.init)(k_init, jnp.asarray(train_windows["obs"][0, :K]))  # one compile, not one per layer
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))
    state = init_state(params, opt, key=k_state)
    step = make_train_step(model, opt, teacher=teacher, penalties=penalties)
    data = jax.tree_util.tree_map(jnp.asarray, train_windows)
    val = jax.tree_util.tree_map(jnp.asarray, val_windows)
    loss = make_loss(model)
    validate = lambda p: loss(p, val, jax.random.key(0))[1]["fit"]  # noqa: E731  one function: one compile
    best, done, histories = None, 0, []
    for h, n in curriculum_stages(data["obs"].shape[1] - K, steps, curriculum):
        def sample(k, _, h=h):
            b = sample_minibatch(data, batch_size, key=k)
            return dict(b, obs=b["obs"][:, :K + h])

        done += n
        res = train_fit(step, state, sample, n_steps=done, chunk_size=val_every,
                        validate=validate, best=best, progress=progress)
        state, best = res.state, res.best
        histories.append(res.history)
    history = {k: np.concatenate([hist[k] for hist in histories]) for k in histories[0]}
    return FitResult(state=state, best=best, history=history, stopped_early=False)


@functools.partial(jax.jit, static_argnums=0)
def _initial_state(model: HiddenModel, params, context, x0):
    return model.initial_state(params, context, x0)


@functools.partial(jax.jit, static_argnums=0)
def _advance(model: HiddenModel, params, x):
    return model.advance(params, x)


def forecast(model: HiddenModel, params, context: Float[Array, "B K l H W"], x0, n_steps: int) -> np.ndarray:
    """States ``X_0..X_n`` from context observations, ``[n_steps + 1, B, d, H, W]`` (NumPy).

    ``x0 [B, d, H, W]`` as in :meth:`HiddenModel.initial_state` (``None`` for setting 1). A
    Python loop over a jitted interval: one compilation whatever ``n_steps`` (long
    evaluation horizons would otherwise unroll into one large program on CPU), and one per
    model and shapes across calls (the model is a static argument).
    """
    x = _initial_state(model, params, jnp.asarray(context), None if x0 is None else jnp.asarray(x0))
    out = [x]
    for _ in range(n_steps):
        x = _advance(model, params, x)
        out.append(x)
    return np.asarray(jnp.stack(out))


# -- metrics ----------------------------------------------------------------------------------


def relative_error(pred, true, *, form: str = "squares", eps: float = 1e-6) -> Array:
    """Relative error per frame over the last three axes ``[C, H, W]`` -> ``[...]``.

    ``form="squares"``: ``sum ||e||^2 / sum ||Y||^2`` (a ratio of squares);
    ``form="pointwise"``: eq. 2.6, ``mean_x ||e(x)|| / (||Y(x)|| + eps)`` (undefined where
    ``Y = 0``, hence ``eps``).
    """
    e = pred - true
    if form == "squares":
        return jnp.sum(e**2, axis=(-3, -2, -1)) / jnp.sum(true**2, axis=(-3, -2, -1))
    if form == "pointwise":
        return jnp.mean(jnp.linalg.norm(e, axis=-3) / (jnp.linalg.norm(true, axis=-3) + eps), axis=(-2, -1))
    raise ValueError(f"unknown form {form!r}; allowed: 'squares', 'pointwise'")


def velocity_cosine(u_pred, u_true, eps: float = 1e-12) -> Array:
    """Eq. 2.7: per-pixel cosine of ``[..., 2, H, W]`` velocities, averaged over pixels."""
    num = jnp.sum(u_pred * u_true, axis=-3)
    den = jnp.linalg.norm(u_pred, axis=-3) * jnp.linalg.norm(u_true, axis=-3)
    return jnp.mean(num / jnp.maximum(den, eps), axis=(-2, -1))


def persistence(first: Array, n_steps: int) -> Array:
    """The persistence forecast: ``first [..., C, H, W]`` repeated ``n_steps + 1`` times."""
    return jnp.broadcast_to(first[None], (n_steps + 1, *first.shape))


def horizon_means(per_step: Any, horizons: Sequence[int]) -> dict[int, float]:
    """``{h: mean of per_step[..., 1..h]}``: per-step metrics ``[..., T + 1]`` (index 0 = t0)
    averaged over steps ``1..h`` and every leading axis (eqs. 2.6-2.7's averaging)."""
    a = np.asarray(per_step)
    if any(h < 1 or h >= a.shape[-1] for h in horizons):
        raise ValueError(f"horizons must lie in [1, {a.shape[-1] - 1}], got {list(horizons)}")
    return {int(h): float(np.mean(a[..., 1 : h + 1])) for h in horizons}
