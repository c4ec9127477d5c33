"""APHYNITY: a physical model completed by the smallest neural correction (thesis section 3.3).

The vector field is ``F = F_p + F_a`` (eq. 3.4): ``F_p`` a parametric physical family with a
few parameters (any :class:`~dynajax.systems.base.PhysicalFamily`, or a user field
``field(t, y, theta)``), ``F_a`` any flax network. Training solves the discrete problem
(eq. 3.6)

    min ||F_a||^2   s.t.   X~_{k dt} = X_{k dt}  for every training trajectory and frame,

with ``X~`` the rollout of ``F_p + F_a`` from ``X_0`` by a fixed-step solver (RK4 3/8 rule,
one step per frame, as the papers; classic RK4 selectable), relaxed to
``||F_a||^2 + lambda * L_traj`` and ``lambda`` raised by the Uzawa rule
``lambda <- lambda + tau2 * L_traj`` (Algorithm 2; :class:`dynajax.train.Uzawa`).

* :class:`Aphynity` is the model (``init``, ``field``, ``rollout``, ``augmentation``,
  ``physical_params``). ``physics=None`` gives a Neural ODE, ``network=None`` the
  physics-only ("Param ODE/PDE") model: see :mod:`dynajax.forecast.baselines`.
* :func:`norm_penalty` is the empirical ``||F_a||^2`` on ground-truth states, ``"l2"``
  (mean over states and pixels of the squared norm over channels) or ``"l2_normalized"``
  (mean of ``||F_a(X)||^2 / (||X|| + 1e-5)^2``, used for the pendulum).
* :func:`trajectory_mse`, :func:`derivative_mse`: the two supervisions (eq. 3.2 and 3.3).
* :class:`TrainConfig` and :func:`train` run a method (``"aphynity"``, ``"non_adaptive"``,
  ``"vanilla"``, ``"derivative"``) for several seeds in one compiled program
  (:func:`dynajax.train.fit` with ``seeds=True``), selecting parameters on a validation
  split. ``train(..., lr=, lr_physical=)`` gives every member its own Adam rates (held in
  the optimiser state), so a learning-rate grid trains with the seeds in the same program;
  :func:`select_on_validation` picks the grid point; :func:`train_grid` does both.
  ``TrainConfig.schedule`` decays the rates (cosine or exponential).
* Hamiltonian physical models ``F_p = J grad H``: :mod:`dynajax.forecast.hamiltonian`.

States are batched: every function takes ``y [B, *state_shape]``, because a network with
batch-statistics normalisation (APHYNITY's ConvNet) sees the whole batch at each field
evaluation, as in the released code. Grid states are channels-first ``[C, H, W]`` (as the
systems store them); with ``channels_last_network=True`` (default) the channel axis is moved
last before the network (flax convolutions are channels-last) and back after.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PyTree

from dynajax.solve import integrate
from dynajax.systems.base import PhysicalFamily
from dynajax.train import FitResult, Uzawa, fit, init_state, make_step

__all__ = [
    "METHODS",
    "PENALTIES",
    "SCHEDULES",
    "VAL_METRICS",
    "Aphynity",
    "GridResult",
    "TrainConfig",
    "derivative_mse",
    "evaluate_mse",
    "make_loss",
    "norm_penalty",
    "scaled",
    "select_on_validation",
    "sigmoid_scaled",
    "train",
    "train_grid",
    "trajectory_mse",
]

PENALTIES = ("l2", "l2_normalized")
METHODS = ("aphynity", "non_adaptive", "vanilla", "derivative")
SCHEDULES = ("constant", "cosine", "exponential")
VAL_METRICS = ("mse", "geomean_mse")
_SOLVERS = ("rk4_38", "rk4", "euler", "midpoint", "heun")

# name -> (raw -> physical, physical -> raw)
Reparam = Mapping[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]]


def scaled(scale: float) -> tuple[Callable, Callable]:
    """Reparametrisation ``value = scale * raw`` (the wave code: ``c = 100 * theta_c``)."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return (lambda raw: scale * raw, lambda value: jnp.asarray(value) / scale)


def sigmoid_scaled(scale: float) -> tuple[Callable, Callable]:
    """``value = scale * sigmoid(raw)`` (the RD code: ``a = 1e-2 * sigmoid(theta_a)``)."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")

    def inverse(value):
        x = jnp.asarray(value) / scale
        return jnp.log(x) - jnp.log1p(-x)

    return (lambda raw: scale * jax.nn.sigmoid(raw), inverse)


def _zeros_field(t, y, theta):
    del t, theta
    return jnp.zeros_like(y)


@dataclasses.dataclass(frozen=True)
class Aphynity:
    """The model ``F = F_p + F_a`` and its fixed-step rollout.

    Attributes:
        physics: a :class:`PhysicalFamily`, a field ``field(t, y, theta) -> dy/dt`` on one
            unbatched state, or ``None`` (``F_p = 0``: a Neural ODE).
        network: a flax module mapping ``[B, d]`` (vector states) or ``[B, H, W, C]`` (grid
            states, see ``channels_last_network``) to the same shape, or ``None``
            (``F_a = 0``: physics only).
        physics_init: initial physical parameter values (default: the family's ``init``;
            required for a plain callable that takes parameters, ``{}`` for none). A value
            may be a pytree of arrays (a Hamiltonian network's weights,
            :mod:`dynajax.forecast.hamiltonian`) or a function ``key -> pytree`` called in
            :meth:`init` with a key derived from its key (a per-seed initialisation).
        reparam: optional per-parameter ``(raw -> value, value -> raw)`` maps; trained
            parameters are the raw ones (e.g. :func:`sigmoid_scaled` for RD).
        solver: fixed-step tableau, ``"rk4_38"`` (torchdiffeq's ``rk4``, the papers') or
            ``"rk4"`` (classic), or ``"euler"``, ``"midpoint"``, ``"heun"``.
        substeps: solver steps per data frame (1 in the papers).
        unroll: ``lax.scan`` unroll of the rollout: ``"auto"`` (unrolled on CPU when the
            field convolves, :mod:`dynajax._unroll`), an int, or ``True`` (fully).
        channels_last_network: move the channel axis (axis 1 of ``[B, C, H, W]``) last
            for the network. Ignored for vector states ``[B, d]``.
    """

    physics: PhysicalFamily | Callable | None = None
    network: nn.Module | None = None
    physics_init: Mapping[str, float] | None = None
    reparam: Reparam | None = None
    solver: str = "rk4_38"
    substeps: int = 1
    unroll: int | bool | str = "auto"
    channels_last_network: bool = True

    def __post_init__(self):
        if self.physics is None and self.network is None:
            raise ValueError("Aphynity needs a physical model, a network, or both; got neither")
        if self.physics is not None and not (
            isinstance(self.physics, PhysicalFamily) or callable(self.physics)
        ):
            raise ValueError(
                f"physics must be a PhysicalFamily, a field(t, y, theta) or None, got {type(self.physics).__name__}"
            )
        if self.network is not None and not isinstance(self.network, nn.Module):
            raise ValueError(f"network must be a flax.linen Module or None, got {type(self.network).__name__}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; allowed: {', '.join(_SOLVERS)}")
        if not (isinstance(self.substeps, int) and self.substeps >= 1):
            raise ValueError(f"substeps must be a positive int, got {self.substeps!r}")
        names = set(self._init_values())
        if self.reparam is not None and not set(self.reparam) <= names:
            raise ValueError(
                f"reparam names {sorted(set(self.reparam) - names)} are not physical parameters {sorted(names)}"
            )

    # -- parameters -------------------------------------------------------------------

    def _init_values(self) -> dict[str, float]:
        if self.physics is None:
            return {}
        if self.physics_init is not None:
            init = dict(self.physics_init)
        elif isinstance(self.physics, PhysicalFamily):
            init = dict(self.physics.init)
        else:
            raise ValueError("a physics callable needs physics_init (use {} if it takes no parameters)")
        if isinstance(self.physics, PhysicalFamily) and set(init) != set(self.physics.param_names):
            raise ValueError(
                f"physics_init has {sorted(init)}, family {self.physics.name!r} takes {list(self.physics.param_names)}"
            )
        return init

    def init(self, key: Array, y_example: Float[ArrayLike, "B ..."]) -> dict[str, PyTree]:
        """Initial parameters ``{"physical": raw values, "network": flax params}``.

        Args:
            key: PRNG key for the network.
            y_example: a batch of states ``[B, *state_shape]`` (only its shape is used).
        """
        y = jnp.asarray(y_example, jnp.float32)
        if y.ndim < 2:
            raise ValueError(f"y_example must be a batch [B, *state_shape], got shape {y.shape}")
        physical = {}
        for name, value in self._init_values().items():
            # a parameter may be a pytree (e.g. a Hamiltonian network's weights), or a function
            # key -> pytree drawn from the init key (so that it differs between seeds)
            if callable(value):
                value = value(jax.random.fold_in(key, 1))
            raw = jax.tree_util.tree_map(lambda v: jnp.asarray(v, jnp.float32), value)
            if self.reparam is not None and name in self.reparam:
                raw = jnp.asarray(self.reparam[name][1](raw), jnp.float32)
            physical[name] = raw
        net = {} if self.network is None else self.network.init(key, self._to_net(y))
        return {"physical": physical, "network": net}

    def physical_params(self, params: Mapping[str, PyTree]) -> dict[str, Array]:
        """The physical parameter values (raw parameters mapped through ``reparam``)."""
        out = {}
        for name, raw in params["physical"].items():
            out[name] = self.reparam[name][0](raw) if self.reparam and name in self.reparam else raw
        return out

    # -- the field --------------------------------------------------------------------

    def _to_net(self, y):
        if y.ndim > 2 and self.channels_last_network:
            return jnp.moveaxis(y, 1, -1)
        return y

    def _from_net(self, out):
        if out.ndim > 2 and self.channels_last_network:
            return jnp.moveaxis(out, -1, 1)
        return out

    def physical_field(self, params, y: Float[Array, "B ..."], t=0.0) -> Float[Array, "B ..."]:
        """``F_p(y)`` on a batch of states (zeros without physics)."""
        if self.physics is None:
            return jnp.zeros_like(y)
        f = self.physics.field if isinstance(self.physics, PhysicalFamily) else self.physics
        theta = self.physical_params(params)
        return jax.vmap(lambda s: f(t, s, theta))(y).astype(y.dtype)

    def augmentation(self, params, y: Float[Array, "B ..."]) -> Float[Array, "B ..."]:
        """``F_a(y)`` on a batch of states (zeros without a network)."""
        if self.network is None:
            return jnp.zeros_like(y)
        out = self._from_net(self.network.apply(params["network"], self._to_net(y)))
        if out.shape != y.shape:
            raise ValueError(f"the network maps states {y.shape} to {out.shape}; it must keep the shape")
        return out

    def field(self, params, y: Float[Array, "B ..."], t=0.0) -> Float[Array, "B ..."]:
        """``F_p(y) + F_a(y)`` on a batch of states."""
        return self.physical_field(params, y, t) + self.augmentation(params, y)

    def rollout(
        self, params, y0: Float[Array, "B ..."], times: Float[ArrayLike, " T"]
    ) -> Float[Array, "B T *state"]:
        """Integrates ``F`` from ``y0`` with ``substeps`` fixed steps per frame.

        Args:
            params: from :meth:`init`.
            y0: initial states ``[B, *state_shape]``.
            times: concrete, uniformly spaced save times ``[T]`` (``times[0]`` is ``y0``'s).

        Returns:
            ``[B, T, *state_shape]``, frame 0 equal to ``y0``.
        """
        ts = np.asarray(times, dtype=np.float64)
        if ts.ndim != 1 or ts.shape[0] < 2:
            raise ValueError(f"times must be a 1-D array of at least 2 save times, got shape {ts.shape}")
        gaps = np.diff(ts)
        if not np.all(gaps > 0) or np.max(np.abs(gaps - gaps[0])) > 1e-6 * gaps[0]:
            raise ValueError("times must be uniformly spaced and increasing (fixed steps per frame)")
        interval = float(gaps[0])
        f = lambda t, y, p: self.field(p, y, t)
        ys = integrate(f, y0, ts.astype(np.float32), solver=self.solver, dt0=interval / self.substeps,
                       args=params, backend="scan", unroll=self.unroll)
        return jnp.moveaxis(ys, 0, 1)


# -- losses ---------------------------------------------------------------------------


def norm_penalty(
    model: Aphynity, params, states: Float[Array, "N ..."], kind: str = "l2"
) -> Float[Array, ""]:
    """Empirical ``||F_a||^2`` on ground-truth states (the norm of thesis eq. 3.6, Ayed 2022).

    Args:
        model: the model.
        params: its parameters.
        states: ``[N, *state_shape]`` ground-truth states (all frames, flattened).
        kind: ``"l2"``: mean over states (and grid points) of the squared norm over
            channels (the channel axis is axis 1 of ``states``); ``"l2_normalized"``: mean of
            ``||F_a(X)||^2 / (||X|| + 1e-5)^2``, norms over channels (per grid point), as
            the released code.
    """
    if kind not in PENALTIES:
        raise ValueError(f"unknown penalty {kind!r}; allowed: {', '.join(PENALTIES)}")
    fa = model.augmentation(params, states)
    if kind == "l2":
        return jnp.mean(jnp.sum(fa**2, axis=1))
    x_norm = jnp.sqrt(jnp.sum(states**2, axis=1))
    return jnp.mean(jnp.sum(fa**2, axis=1) / (x_norm + 1e-5) ** 2)


def trajectory_mse(model: Aphynity, params, states: Float[Array, "B T *state"], times) -> Float[Array, ""]:
    """Mean squared gap between the rollout from ``states[:, 0]`` and ``states`` (frame 0 included)."""
    pred = model.rollout(params, states[:, 0], times)
    return jnp.mean((pred - states) ** 2)


def derivative_mse(model: Aphynity, params, states: Float[Array, "B T *state"], times) -> Float[Array, ""]:
    """Derivative supervision (eq. 3.3): ``F(X_k)`` against central differences, inner frames."""
    dt = float(np.mean(np.diff(np.asarray(times, np.float64))))
    target = (states[:, 2:] - states[:, :-2]) / (2 * dt)
    inner = states[:, 1:-1]
    flat = inner.reshape((-1,) + inner.shape[2:])
    pred = model.field(params, flat).reshape(inner.shape)
    return jnp.mean((pred - target) ** 2)


def make_loss(
    model: Aphynity, times, *, method: str = "aphynity", penalty: str = "l2"
) -> Callable[[PyTree, Array, Array], tuple[Any, dict]]:
    """The loss ``loss(params, batch [B, T, *state], key)`` for :func:`dynajax.train.make_step`.

    ``"aphynity"``, ``"non_adaptive"``: returns ``((||F_a||^2, L_traj), aux)``, the pair an
    :class:`~dynajax.train.Uzawa` step weighs; ``"derivative"``: the same with the
    derivative loss as the constraint; ``"vanilla"``: ``(L_traj, aux)`` (no norm term;
    also the Neural ODE and Param-only losses).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    if penalty not in PENALTIES:
        raise ValueError(f"unknown penalty {penalty!r}; allowed: {', '.join(PENALTIES)}")
    times = np.asarray(times, np.float64)

    def loss(params, batch, key):
        del key
        if method == "derivative":
            con = derivative_mse(model, params, batch, times)
        else:
            con = trajectory_mse(model, params, batch, times)
        if method == "vanilla":
            return con, {"traj_mse": con}
        flat = batch.reshape((-1,) + batch.shape[2:])
        pen = norm_penalty(model, params, flat, penalty)
        return (pen, con), {"penalty": pen}

    return loss


def evaluate_mse(
    model: Aphynity, params, states: Float[ArrayLike, "N T *state"], times, *, batch_size: int | None = None,
    per_trajectory: bool = False,
) -> Array:
    """Trajectory MSE of ``model`` on ``states`` (in batches of ``batch_size``; jit-able).

    Returns a scalar, or ``[N]`` with ``per_trajectory=True``. Batches must divide ``N``.
    """
    states = jnp.asarray(states, jnp.float32)
    n = states.shape[0]
    bs = n if batch_size is None else min(int(batch_size), n)
    if n % bs:
        raise ValueError(f"batch_size {bs} must divide the number of trajectories {n}")

    def one(batch):
        pred = model.rollout(params, batch[:, 0], times)
        return jnp.mean((pred - batch) ** 2, axis=tuple(range(1, batch.ndim)))

    errs = jax.lax.map(one, states.reshape((n // bs, bs) + states.shape[1:])).reshape(n)
    return errs if per_trajectory else jnp.mean(errs)


# -- training -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train a model (Algorithm 2 and its ablations).

    Attributes:
        method: ``"aphynity"`` (norm + adaptive multiplier), ``"non_adaptive"`` (norm, fixed
            ``lambda = lambda0``), ``"vanilla"`` (trajectory loss only; Neural ODE and
            Param-only use it too) or ``"derivative"`` (norm + adaptive multiplier on the
            derivative loss instead of the trajectory loss).
        penalty: ``"l2"`` or ``"l2_normalized"``.
        n_steps: Adam steps.
        lr: Adam learning rate (the code's ``tau1``).
        lr_physical: a separate Adam learning rate for the physical parameters (``None``:
            ``lr``, as the code). A larger one shortens the run (the code's ``omega0^2``
            starts at 0.2, the truth is 1.1, and Adam moves it by about ``lr`` per step).
        lambda0, tau2, n_iter: the multiplier's start, ascent rate and steps between
            updates (the code: 1, 1, 5 for the pendulum).
        batch_size: trajectories per step (``None``: all).
        chunk_size: steps per compiled chunk; validation runs after each.
        patience: early stopping (validations without improvement), or ``None``.
        val_batch_size: batch size of the validation rollouts (``None``: all at once).
        val_metric: what selects the best parameters: ``"mse"`` (the trajectory MSE
            over the validation split, the thesis's test metric) or ``"geomean_mse"`` (the
            geometric mean over validation trajectories of their MSE; one trajectory that
            diverges, e.g. a pendulum passing near its unstable equilibrium, cannot decide
            the selection alone; by the same token it can keep a checkpoint on which one
            trajectory blew up, so report the plain MSE beside it).
        schedule: learning-rate decay over ``n_steps``: ``"constant"`` (the code's),
            ``"cosine"`` (from the rate to ``final_lr_factor`` times it) or
            ``"exponential"`` (geometric, same end points).
        final_lr_factor: the rate at the last step relative to the first, in ``(0, 1]``.
    """

    method: str = "aphynity"
    penalty: str = "l2"
    n_steps: int = 5000
    lr: float = 1e-3
    lr_physical: float | None = None
    lambda0: float = 1.0
    tau2: float = 1.0
    n_iter: int = 5
    batch_size: int | None = None
    chunk_size: int = 250
    patience: int | None = None
    val_batch_size: int | None = None
    val_metric: str = "mse"
    schedule: str = "constant"
    final_lr_factor: float = 1e-2

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; allowed: {', '.join(METHODS)}")
        if self.penalty not in PENALTIES:
            raise ValueError(f"unknown penalty {self.penalty!r}; allowed: {', '.join(PENALTIES)}")
        if self.n_steps < 0 or self.lr <= 0 or self.n_iter < 1:
            raise ValueError("need n_steps >= 0, lr > 0 and n_iter >= 1")
        if self.lr_physical is not None and not self.lr_physical > 0:
            raise ValueError(f"lr_physical must be > 0 or None, got {self.lr_physical}")
        if self.val_metric not in VAL_METRICS:
            raise ValueError(f"unknown val_metric {self.val_metric!r}; allowed: {', '.join(VAL_METRICS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; allowed: {', '.join(SCHEDULES)}")
        if not 0 < self.final_lr_factor <= 1:
            raise ValueError(f"final_lr_factor must be in (0, 1], got {self.final_lr_factor}")

    def lr_factor(self, count: Array) -> Array:
        """The schedule's multiplier of the learning rate at step ``count`` (0-based)."""
        frac = jnp.clip(jnp.asarray(count, jnp.float32) / max(self.n_steps, 1), 0.0, 1.0)
        end = self.final_lr_factor
        if self.schedule == "cosine":
            return end + (1 - end) * 0.5 * (1 + jnp.cos(jnp.pi * frac))
        if self.schedule == "exponential":
            return jnp.asarray(end, jnp.float32) ** frac
        return jnp.ones((), jnp.float32)

    def optimizer(self, lr: ArrayLike | None = None, lr_physical: ArrayLike | None = None
                  ) -> optax.GradientTransformation:
        """Adam (with ``lr_physical`` on the ``"physical"`` parameters when given) and the schedule.

        The rates live in the optimiser *state* (``optax.inject_hyperparams``), so ``lr`` /
        ``lr_physical`` (default: the config's) may be traced values: ``init`` under ``vmap``
        gives every member its own rate while all members share one update function.
        """
        lr = self.lr if lr is None else lr
        lr_p = self.lr_physical if lr_physical is None else lr_physical
        adam = optax.inject_hyperparams(optax.adam)
        if self.lr_physical is None and lr_physical is None:
            base = adam(learning_rate=lr)
        else:
            base = optax.multi_transform(
                {"physical": adam(learning_rate=lr_p), "network": adam(learning_rate=lr)},
                lambda params: {k: jax.tree_util.tree_map(lambda _, k=k: k, v) for k, v in params.items()},
            )
        if self.schedule == "constant":
            return base
        return optax.chain(base, optax.scale_by_schedule(self.lr_factor))

    def uzawa(self) -> Uzawa | None:
        """The multiplier schedule of the method (``None`` for ``"vanilla"``)."""
        if self.method == "vanilla":
            return None
        tau = 0.0 if self.method == "non_adaptive" else self.tau2
        return Uzawa(lambda0=self.lambda0, tau=tau, every=self.n_iter, weight="constraint")


def train(
    model: Aphynity,
    train_states: Float[ArrayLike, "N T *state"],
    val_states: Float[ArrayLike, "M T *state"] | None,
    times,
    config: TrainConfig,
    *,
    keys: Array,
    lr: ArrayLike | None = None,
    lr_physical: ArrayLike | None = None,
    progress: bool = False,
) -> FitResult:
    """Trains ``model`` for every key in ``keys`` in one compiled program.

    ``lr`` / ``lr_physical`` (``[n_members]``, one per key) give every member its own Adam
    rates, so a learning-rate grid trains together with the seeds (repeat the keys across
    grid points and select the grid point on ``best_val``: :func:`select_on_validation`).

    Args:
        model: the model.
        train_states: training trajectories (cast to float32).
        val_states: validation trajectories: the best parameters (per seed) are those with
            the lowest validation trajectory MSE, evaluated every ``chunk_size`` steps.
        times: save times ``[T]``.
        config: the method and its hyperparameters.
        keys: PRNG keys ``[n_seeds]`` (network initialisation and minibatches).
        progress: show a progress bar.

    Returns:
        :class:`dynajax.train.FitResult` with a leading seed axis on every parameter.
    """
    train_states = jnp.asarray(train_states, jnp.float32)
    if train_states.ndim < 3:
        raise ValueError(f"train_states must be [N, T, *state], got shape {train_states.shape}")
    if jnp.ndim(keys) != 1:
        raise ValueError("keys must be a 1-D array of PRNG keys (one per seed)")
    n = int(np.shape(keys)[0])
    lrs = _member_rates("lr", lr, config.lr, n)
    lrs_p = _member_rates("lr_physical", lr_physical, config.lr_physical or config.lr, n)
    per_part = config.lr_physical is not None or lr_physical is not None
    # the update reads the rates from the state: these defaults only fix the structure
    optimizer = config.optimizer(lr_physical=lrs_p[0] if per_part else None)
    uzawa = config.uzawa()
    step = make_step(make_loss(model, times, method=config.method, penalty=config.penalty),
                     optimizer, uzawa=uzawa)
    example = train_states[: (config.batch_size or train_states.shape[0]), 0]

    def init_one(key, lr_m, lr_p_m):
        k_init, k_state = jax.random.split(key)
        opt = config.optimizer(lr_m, lr_p_m if per_part else None)
        return init_state(model.init(k_init, example), opt, key=k_state, uzawa=uzawa)

    state = jax.vmap(init_one)(keys, lrs, lrs_p)
    validate = None
    if val_states is not None:
        val = jnp.asarray(val_states, jnp.float32)
        geomean = config.val_metric == "geomean_mse"

        def validate(p):
            per = evaluate_mse(model, p, val, times, batch_size=config.val_batch_size, per_trajectory=geomean)
            return jnp.exp(jnp.mean(jnp.log(per))) if geomean else per
    return fit(step, state, train_states, n_steps=config.n_steps, chunk_size=config.chunk_size,
               batch_size=config.batch_size, validate=validate, patience=config.patience,
               seeds=True, progress=progress)


def _member_rates(name: str, value, default: float, n: int) -> Array:
    if value is None:
        return jnp.full((n,), default, jnp.float32)
    rates = np.asarray(value, np.float64)
    if rates.shape != (n,) or not np.all(rates > 0):
        raise ValueError(f"{name} must hold one positive rate per key, shape ({n},), got {rates.shape}")
    return jnp.asarray(rates, jnp.float32)


def select_on_validation(best_val: ArrayLike, n_grid: int) -> tuple[int, np.ndarray]:
    """The grid point with the lowest mean (over seeds) log validation loss.

    Args:
        best_val: ``[n_grid * n_seeds]`` best validation losses, grid-major (the layout of
            keys ``tile(seed_keys, n_grid)``).
        n_grid: number of grid points.

    Returns:
        ``(index, mean_log_val [n_grid])``; a grid point with a non-finite loss on any
        seed is never chosen unless all are.
    """
    v = np.asarray(best_val, np.float64)
    if v.ndim != 1 or n_grid < 1 or v.shape[0] % n_grid:
        raise ValueError(f"best_val must be 1-D with a multiple of n_grid={n_grid} entries, got {v.shape}")
    per = v.reshape(n_grid, -1)
    mean = np.where(np.all(np.isfinite(per), axis=1), np.log(np.maximum(per, 1e-300)).mean(axis=1), np.inf)
    return int(np.argmin(mean)), mean


@dataclasses.dataclass(frozen=True)
class GridResult:
    """The validation-selected point of a learning-rate grid (:func:`train_grid`).

    Attributes:
        index: the chosen grid point.
        point: its ``(lr, lr_physical)``.
        params: the best parameters of its members, leading axis one per key.
        best_val: ``[n_keys]`` their best validation losses.
        mean_log_val: ``[n_grid]`` the mean over keys of the log best validation loss per
            grid point (``inf`` where a member diverged).
    """

    index: int
    point: tuple[float, float | None]
    params: PyTree
    best_val: np.ndarray
    mean_log_val: np.ndarray


def train_grid(
    model: Aphynity,
    train_states: Float[ArrayLike, "N T *state"],
    val_states: Float[ArrayLike, "M T *state"],
    times,
    config: TrainConfig,
    grid: list[tuple[float, float | None]],
    *,
    keys: Array,
) -> GridResult:
    """Trains every ``(lr, lr_physical)`` of ``grid`` for every key in one program and keeps the
    grid point with the lowest mean log validation loss (:func:`select_on_validation`).

    Every key is trained at every grid point (the same initialisation and minibatches), so
    grid points are compared on paired seeds. ``lr_physical`` ``None`` everywhere trains all
    parameters at ``lr``; it must then be ``None`` for every point.

    Raises:
        ValueError: an empty grid, or ``lr_physical`` given for some points only.
    """
    if not grid:
        raise ValueError("grid must hold at least one (lr, lr_physical) point")
    separate = [p is not None for _, p in grid]
    if any(separate) and not all(separate):
        raise ValueError(f"lr_physical must be given for every grid point or for none, got {grid}")
    n = int(np.shape(keys)[0])
    lrs = np.repeat(np.asarray([lr for lr, _ in grid], np.float64), n)
    lrs_p = np.repeat(np.asarray([p for _, p in grid], np.float64), n) if all(separate) else None
    res = train(model, train_states, val_states, times, config, keys=jnp.concatenate([keys] * len(grid)),
                lr=lrs, lr_physical=lrs_p)
    index, mean = select_on_validation(res.best_val, len(grid))
    chosen = slice(index * n, (index + 1) * n)
    params = jax.tree_util.tree_map(lambda x: x[chosen], res.best_params)
    return GridResult(index, tuple(grid[index]), params, np.asarray(res.best_val)[chosen], mean)
