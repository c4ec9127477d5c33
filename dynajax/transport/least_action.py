"""Least-action training of residual networks (thesis ch. 4): ResNets as transport maps.

A network is split as ``f = F o T o phi`` (encoder ``phi``, task head ``F``) and the transport
``T`` is ``K`` residual (forward-Euler) blocks ``x_{k+1} = x_k + dt v_k(x_k)``. Least-action
training penalises the kinetic energy of ``T`` while fitting the task (eq. 4.8 / 4.12):

* :class:`ResidualFlow`: ``K`` blocks with stacked parameters (one ``lax.scan`` over blocks),
  the forward map with its states / residuals, and the reversed-Euler inverse
  ``y_k = y_{k+1} - dt v_k(y_{k+1})`` (Prop. 4.5).
* :func:`transport_penalty`: ``sum_k ||r_k||^2`` with the reductions of the thesis
  (``"sum"``: over points too, §4.9.1), of the released LAP code (``"mean"``: per-element
  mean per block, i.e. ``"sum" / (B d)``) and per point (``"batch_mean"``: ``"sum" / B``).
  A ``cost`` hook replaces the squared norm (see :func:`quadratic_cost`,
  :func:`histogram_cost`).
* Weight schedules: the Uzawa multiplier of LAP-Net (Algorithm 3) is
  :func:`lap_uzawa` (a :class:`dynajax.train.Uzawa` with ``weight="objective"``: minimise
  ``L + C / lambda``, ``lambda += tau L`` every ``s`` steps); :func:`linear_decay` is the
  ``lambda_i`` of the translation experiments (Algorithm 4); the fixed-weight "Reg."
  variant is ``L + lam * C`` (:func:`regularized_loss`).
* Unpaired domain translation: :func:`udt_loss` = kinetic energy + ``D(T#alpha, beta) /
  lambda`` with an MMD discriminator (:func:`mmd_discrepancy`).
* Classification with a transport flow (thesis §4.6, §4.9): :func:`classifier_step` (CE,
  CE + ``lam C`` or LAP), :func:`accuracy_evaluator` (for
  :func:`dynajax.train.scan_fit`, which records it during training) and :func:`select_by_validation`;
  :func:`scale_kernels` sets an initialisation gain after ``init``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PyTree

from dynajax.nn.activations import get_activation
from dynajax.nn.conv import BatchStatNorm
from dynajax.nn.initializers import Initializer, default_kernel_init
from dynajax.train import Uzawa, make_step
from dynajax.transport.ot import mmd2

__all__ = [
    "REDUCTIONS",
    "ResidualFlow",
    "VelocityMLP",
    "accuracy_evaluator",
    "classifier_step",
    "histogram_cost",
    "lap_uzawa",
    "linear_decay",
    "mmd_discrepancy",
    "quadratic_cost",
    "regularized_loss",
    "scale_kernels",
    "select_by_validation",
    "transport_penalty",
    "udt_loss",
]

REDUCTIONS = ("sum", "mean", "batch_mean", "norm")

Cost = Callable[[Array], Array]
"""``cost(r) -> [...]``: cost of residuals ``r [..., d]`` per point (last axis reduced)."""


class VelocityMLP(nn.Module):
    """The velocity ``v_k`` of one block: ``Dense -> [BN] -> act -> ... -> Dense`` to ``d``.

    Attributes:
        hidden: hidden widths.
        activation: name (see :mod:`dynajax.nn.activations`) or callable.
        kernel_init: initialiser of every kernel (e.g. ``orthogonal(gain)``).
        batch_norm: batch-statistics normalisation after each hidden dense layer (the
            statistics of the current input: evaluate on whole clouds).
    """

    hidden: Sequence[int] = (64,)
    activation: str | Callable = "tanh"
    kernel_init: Initializer = default_kernel_init
    batch_norm: bool = False

    @nn.compact
    def __call__(self, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        act = get_activation(self.activation)
        h = x
        for w in self.hidden:
            h = nn.Dense(w, kernel_init=self.kernel_init)(h)
            if self.batch_norm:
                h = BatchStatNorm(use_scale=False, use_bias=False)(h)
            h = act(h)
        return nn.Dense(x.shape[-1], kernel_init=self.kernel_init)(h)


@dataclasses.dataclass(frozen=True)
class ResidualFlow:
    """``K`` Euler blocks ``x_{k+1} = x_k + dt v_k(x_k)`` with stacked block parameters.

    Attributes:
        block: a linen module ``[n, d] -> [n, d]`` (the velocity of one block).
        n_blocks: ``K >= 1``.
        dt: Euler step (``1`` = a standard residual block; ``1 / K`` = unit total time).
    """

    block: nn.Module
    n_blocks: int = 9
    dt: float = 1.0

    def __post_init__(self):
        if not isinstance(self.n_blocks, (int, np.integer)) or self.n_blocks < 1:
            raise ValueError(f"n_blocks must be an int >= 1, got {self.n_blocks!r}")
        if not (isinstance(self.dt, (int, float)) and self.dt > 0):
            raise ValueError(f"dt must be a positive number, got {self.dt!r}")

    def init(self, key: Array, x: Float[Array, "n d"]) -> PyTree:
        """Parameters of the ``K`` blocks, stacked along a leading axis ``[K, ...]``."""
        keys = jax.random.split(key, self.n_blocks)
        return jax.vmap(lambda k: self.block.init(k, x)["params"])(keys)

    def velocity(self, params: PyTree, k: Array, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        """``v_k(x)`` of block ``k`` (traced integer allowed)."""
        p = jax.tree_util.tree_map(lambda a: a[k], params)
        return self.block.apply({"params": p}, x)

    def residuals(
        self, params: PyTree, x: Float[Array, "n d"]
    ) -> tuple[Float[Array, "n d"], Float[Array, "K n d"], Float[Array, "K1 n d"]]:
        """Forward map.

        Returns:
            ``(T(x) [n, d], residuals r_k = dt v_k(x_k) [K, n, d], states [K + 1, n, d])``.
        """

        def step(z, p):
            r = self.dt * self.block.apply({"params": p}, z)
            return z + r, (r, z + r)

        tx, (res, sts) = jax.lax.scan(step, x, params)
        return tx, res, jnp.concatenate([x[None], sts], axis=0)

    def __call__(self, params: PyTree, x: Float[Array, "n d"]) -> Float[Array, "n d"]:
        """``T(x)``, ``[n, d]``."""
        return self.residuals(params, x)[0]

    def inverse(self, params: PyTree, y: Float[Array, "n d"]) -> Float[Array, "n d"]:
        """Reversed Euler flow ``y_k = y_{k+1} - dt v_k(y_{k+1})``, ``k = K-1 .. 0`` (Prop. 4.5).

        Its error as an inverse of ``T`` is ``O(dt^2 |v| Lip(v))`` per block.
        """
        rev = jax.tree_util.tree_map(lambda a: a[::-1], params)

        def step(z, p):
            return z - self.dt * self.block.apply({"params": p}, z), None

        return jax.lax.scan(step, y, rev)[0]


def quadratic_cost(r: Float[Array, "*batch d"]) -> Float[Array, "*batch"]:
    """``||r||^2`` per point (the default, p = 2)."""
    return jnp.sum(r**2, axis=-1)


def histogram_cost(
    centers: Float[Array, " b"], bandwidth: float
) -> Cost:
    """Example of a non-Euclidean cost hook: squared distance between soft histograms.

    Each point's coordinates are binned into a soft (Gaussian-kernel) histogram over
    ``centers``; the cost of a residual is the squared difference of the histograms of
    ``x + r`` and ``x``, which only sees *which values* are present, not where. Used as
    ``transport_penalty(res, states=..., cost=histogram_cost(...))``.

    Returns:
        ``cost(x, y) -> [...]``, a two-point cost (pass the states).
    """
    centers = jnp.asarray(centers)
    if centers.ndim != 1 or centers.shape[0] < 2:
        raise ValueError(f"centers must be a 1-D array of >= 2 bin centres, got {centers.shape}")
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")

    def hist(z):
        w = jnp.exp(-0.5 * ((z[..., None] - centers) / bandwidth) ** 2)
        return jnp.mean(w, axis=-2)  # [..., b]

    def cost(x, y):
        return jnp.sum((hist(y) - hist(x)) ** 2, axis=-1)

    return cost


def transport_penalty(
    residuals: Float[Array, "K n d"],
    reduction: str = "sum",
    *,
    cost: Cost | None = None,
    states: Float[Array, "K1 n d"] | None = None,
) -> Float[Array, ""]:
    """Transport (kinetic) penalty ``sum_k sum_x c(r_k(x))`` of a residual flow.

    Args:
        residuals: block increments ``r_k = x_{k+1} - x_k``, ``[K, n, d]``.
        reduction: ``"sum"`` (thesis §4.9.1 / eq. 4.12: sum over blocks and points),
            ``"batch_mean"`` (sum over blocks, mean over points: ``"sum" / n``) or
            ``"mean"`` (released LAP code: per block the mean over points x features,
            summed over blocks: ``"sum" / (n d)``) or ``"norm"`` (the authors' 2-D script:
            ``sum_k sqrt(sum_x c(r_k(x)))``, a Frobenius norm per block, not squared).
        cost: per-point cost of a residual, ``cost(r [..., d]) -> [...]``
            (:func:`quadratic_cost` by default); with ``states`` a two-point cost
            ``cost(x_k, x_{k+1})`` (e.g. :func:`histogram_cost`).
        states: the points through the blocks ``[K + 1, n, d]`` (two-point costs only).

    Returns:
        Scalar penalty.
    """
    if residuals.ndim != 3:
        raise ValueError(f"residuals must have shape [K, n, d], got {residuals.shape}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if states is not None:
        if cost is None:
            raise ValueError("states are only used with a two-point cost(x, y)")
        if states.shape != (residuals.shape[0] + 1, *residuals.shape[1:]):
            raise ValueError(f"states {states.shape} do not match residuals {residuals.shape}")
        c = cost(states[:-1], states[1:])
    else:
        c = (quadratic_cost if cost is None else cost)(residuals)
    if reduction == "norm":
        # sqrt with a zero-safe gradient (the identity flow has zero residuals)
        per_block = jnp.sum(c, axis=1)
        safe = jnp.where(per_block > 0, per_block, 1.0)
        return jnp.sum(jnp.where(per_block > 0, jnp.sqrt(safe), 0.0))
    total = jnp.sum(c)
    n, d = residuals.shape[1], residuals.shape[2]
    if reduction == "sum":
        return total
    if reduction == "batch_mean":
        return total / n
    return total / (n * d)


def linear_decay(step: Array, n_steps: int, start: float = 1.0, end: float = 1e-3) -> Array:
    """``lambda_i = max(start - i d, end)`` reaching ``end`` at step ``n_steps`` (Algorithm 4)."""
    if n_steps < 1 or not start >= end > 0:
        raise ValueError(f"need n_steps >= 1 and start >= end > 0, got {n_steps}, {start}, {end}")
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / n_steps, 0.0, 1.0)
    return start + (end - start) * frac


def lap_uzawa(lambda0: float = 5.0, tau: float = 1.0, s: int = 5) -> Uzawa:
    """The LAP-Net multiplier (Algorithm 3): minimise ``L + C / lambda``; ``lambda += tau L``
    every ``s`` steps (from the minibatch loss, as the released code). Thesis values:
    MNIST (5, 1, 5), CIFAR10 (0.1, 0.1, 50), CIFAR100 ResNeXt (1, 0.1, 5).

    Use with :func:`dynajax.train.make_step`, the loss returning ``(C, L)``.
    """
    return Uzawa(lambda0=lambda0, tau=tau, every=s, weight="objective")


def regularized_loss(task_loss: Array, penalty: Array, lam: float) -> Array:
    """The fixed-weight "Reg." variant: ``L + lam * C``."""
    return task_loss + lam * penalty


def mmd_discrepancy(bandwidths: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0)):
    """A kernel discriminator ``D(x, y) = MMD^2`` (multi-bandwidth RBF, biased)."""
    bw = tuple(float(b) for b in bandwidths)
    return lambda x, y: mmd2(x, y, bw)


def udt_loss(
    flow: ResidualFlow,
    params: PyTree,
    x: Float[Array, "n d"],
    y: Float[Array, "m d"],
    lam: Array,
    discrepancy: Callable[[Array, Array], Array],
    *,
    penalty: bool = True,
) -> tuple[Array, dict[str, Array]]:
    """Translation loss (Algorithm 4): ``KE(T) + D(T#alpha, beta) / lambda``.

    The kinetic energy is ``sum_k E||r_k||^2 / dt`` (eq. 4.12 per point, scaled so that it
    is the Benamou-Brenier action when ``K dt = 1``). With ``penalty=False`` the loss is
    ``D`` alone (the CycleGAN-like baseline).

    Returns:
        ``(loss, {"kinetic": ..., "discrepancy": ...})``.
    """
    tx, res, _ = flow.residuals(params, x)
    ke = transport_penalty(res, "batch_mean") / flow.dt
    dis = discrepancy(tx, y)
    loss = ke + dis / lam if penalty else dis
    return loss, {"kinetic": ke, "discrepancy": dis}


# ---------------------------------------------------------------------------------------
# Classification with a transport flow: f = F o T o phi, ``fwd(params, x) -> (logits
# [n, C], residuals [K, n, d], states [K + 1, n, d])``.

Forward = Callable[[PyTree, Array], tuple[Array, Array, Array]]


def scale_kernels(params: PyTree, gain: float | Array) -> PyTree:
    """``params`` with every leaf whose path contains ``kernel`` multiplied by ``gain``.

    ``orthogonal(g) = g orthogonal(1)`` and ``normal(g) = g normal(1)``, so initialising at
    gain 1 and scaling gives any gain, also a traced one (one program for a gain sweep).
    Biases and normalisation parameters are left as they are.
    """
    return jax.tree_util.tree_map_with_path(
        lambda p, a: a * gain if "kernel" in jax.tree_util.keystr(p) else a, params
    )


def classifier_step(
    fwd: Forward,
    optimizer: optax.GradientTransformation,
    *,
    uzawa: Uzawa | None = None,
    lam: float = 0.0,
    reduction: str = "mean",
):
    """The training step of a classifier with a transport penalty ``C`` on its flow.

    Without ``uzawa`` the loss is ``CE + lam * C`` (``lam = 0``: the plain ResNet; ``lam >
    0``: the fixed-weight "Reg." variant); with ``uzawa`` (e.g. :func:`lap_uzawa`) it is
    LAP-Net (Algorithm 3: minimise ``CE + C / lambda``, ``lambda`` updated from ``CE``).
    ``C = transport_penalty(residuals, reduction)``; the batch is ``{"x": [n, ...], "y":
    [n]}`` (integer labels). Pass the same ``uzawa`` to :func:`dynajax.train.init_state`.

    Returns:
        ``step(state, batch) -> (state, {"loss", "ce", "transport", ...})``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if uzawa is not None and lam != 0.0:
        raise ValueError(f"a fixed weight lam (got {lam}) and a LAP multiplier exclude each other")

    def terms(params, batch):
        logits, res, _ = fwd(params, batch["x"])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return ce, transport_penalty(res, reduction)

    if uzawa is None:
        def loss_fn(params, batch, key):
            ce, pen = terms(params, batch)
            return regularized_loss(ce, pen, lam), {"ce": ce, "transport": pen}

        return make_step(loss_fn, optimizer)

    def loss_uzawa(params, batch, key):
        ce, pen = terms(params, batch)
        return (pen, ce), {"ce": ce, "transport": pen}

    return make_step(loss_uzawa, optimizer, uzawa=uzawa)


def accuracy_evaluator(fwd: Forward, val: tuple[Array, Array], test: tuple[Array, Array]):
    """``eval_fn(params) -> {"val_acc", "test_acc", "test_transport"}`` (scalars).

    Accuracies are fractions on the validation and test sets ``(x [n, ...], y [n])``; the
    test transport is the thesis diagnostic ``sum_k E_x||r_k(x)||^2`` on the test set.
    """
    (xv, yv), (xt, yt) = val, test

    def eval_fn(params):
        logits_v, _, _ = fwd(params, xv)
        logits_t, res_t, _ = fwd(params, xt)
        return {"val_acc": jnp.mean(jnp.argmax(logits_v, -1) == yv),
                "test_acc": jnp.mean(jnp.argmax(logits_t, -1) == yt),
                "test_transport": transport_penalty(res_t, "batch_mean")}

    return eval_fn


def select_by_validation(evals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-run accuracies (percent) and transport from evaluations ``[runs, n_evals]``.

    Args:
        evals: ``val_acc``, ``test_acc`` (fractions) and ``test_transport``, each ``[runs,
            n_evals]`` (e.g. the stacked evaluations of :func:`dynajax.train.scan_fit`).

    Returns:
        ``test_acc`` (at the evaluation of best validation accuracy, non-finite ones never
        picked), ``max_test_acc`` (best test accuracy over training: test-selected, the
        thesis protocol), ``final_test_acc`` and ``test_transport`` (at the
        validation-selected evaluation), each ``[runs]``.
    """
    val = np.nan_to_num(np.asarray(evals["val_acc"], np.float64), nan=-1.0)
    test = np.asarray(evals["test_acc"], np.float64)
    best = np.argmax(val, axis=1)
    rows = np.arange(val.shape[0])
    return {
        "test_acc": 100 * test[rows, best],
        "max_test_acc": 100 * np.nanmax(test, axis=1),
        "final_test_acc": 100 * test[:, -1],
        "test_transport": np.asarray(evals["test_transport"], np.float64)[rows, best],
    }
