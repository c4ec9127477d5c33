"""Continuous-depth classifiers: a ResNet is forward Euler on ``du/dt = f(u, theta(t))``.

The network is ``x -> embed -> u(0) -> [ODE block on (0, T)] -> u(T) -> head -> logits`` with
the block's field a single layer with time-dependent weights (Haber & Ruthotto 2017, eq. 2.2)

.. math::  f(t, u; \\theta) = \\sigma(K(t) u + b(t)),

``K(t)``, ``b(t)`` linear interpolants between ``n_nodes`` equispaced nodes on ``[0, T]``
(``n_nodes = 1``: constant weights). The block is solved by :func:`dynajax.solve.integrate`
with ``n_steps`` fixed steps of any solver: ``solver="euler"`` makes it exactly a ResNet of
depth ``n_steps`` with step ``h = T / n_steps``. The gradient route is a parameter:

* ``adjoint="discretize"``: discretise-then-optimise, backpropagation through the solver
  steps (the fixed-step scan stores one state per step and recomputes the stages);
  the gradient of the discrete loss, exact to round-off;
* ``adjoint="backsolve"``: optimise-then-discretise, the continuous adjoint
  ``-dp/dt = (df/du)^T p`` solved backwards with the same solver and step, recomputing
  ``u(t)`` backwards (Chen et al. 2018). Constant memory in depth, but its gradient is the
  gradient of the discrete loss only up to ``O(h^order)``.

Parameters are a plain dict pytree; the field's weights travel through ``integrate``'s
``args`` so that both gradient routes differentiate them.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PyTree

from dynajax.nn.activations import get_activation
from dynajax.solve import SOLVERS, integrate

__all__ = ["ContinuousClassifier", "accuracy", "cross_entropy", "interp_weights"]

_ADJOINTS = ("discretize", "backsolve")


def interp_weights(nodes: Float[Array, "n_nodes ..."], t: Float[Array, ""], T: float) -> Float[Array, ...]:
    """Piecewise-linear interpolation in time of stacked weight nodes on ``[0, T]``.

    Args:
        nodes: ``[n_nodes, ...]`` weights at ``t_k = k T / (n_nodes - 1)``.
        t: scalar time (clipped to ``[0, T]``).
        T: final time.

    Returns:
        The weights at ``t``, shape ``nodes.shape[1:]``.
    """
    n = nodes.shape[0]
    if n == 1:
        return nodes[0]
    s = jnp.clip(t / T, 0.0, 1.0) * (n - 1)
    k = jnp.clip(jnp.floor(s).astype(jnp.int32), 0, n - 2)
    w = (s - k).astype(nodes.dtype)
    return (1 - w) * nodes[k] + w * nodes[k + 1]


def cross_entropy(logits: Float[Array, "b c"], labels: Int[Array, " b"]) -> Float[Array, ""]:
    """Mean softmax cross-entropy with integer labels."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def accuracy(logits: Float[Array, "b c"], labels: Int[Array, " b"]) -> Float[Array, ""]:
    """Fraction of correct argmax predictions."""
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


@dataclasses.dataclass(frozen=True)
class ContinuousClassifier:
    """Embedding, a neural-ODE block of width ``width`` and a linear head.

    Attributes:
        dim_in: input dimension.
        width: state dimension of the ODE block.
        n_classes: number of classes.
        T: final time of the block.
        n_steps: fixed steps of the solver (the depth; ``h = T / n_steps``).
        solver: a name in :data:`dynajax.solve.SOLVERS` (``"euler"``: a ResNet).
        adjoint: ``"discretize"`` or ``"backsolve"`` (see the module docstring).
        n_nodes: time nodes of the weights (1: constant in time).
        activation: name accepted by :func:`dynajax.nn.get_activation`.
        weight_scale: std of the field's ``K`` entries is ``weight_scale / sqrt(width)``.
    """

    dim_in: int
    width: int = 8
    n_classes: int = 2
    T: float = 1.0
    n_steps: int = 10
    solver: str = "euler"
    adjoint: str = "discretize"
    n_nodes: int = 1
    activation: str = "tanh"
    weight_scale: float = 1.0

    def __post_init__(self):
        for name in ("dim_in", "width", "n_classes", "n_steps", "n_nodes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")
        if not (isinstance(self.T, (int, float)) and self.T > 0 and math.isfinite(self.T)):
            raise ValueError(f"T must be a positive finite number, got {self.T!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; allowed: {', '.join(SOLVERS)}")
        if self.adjoint not in _ADJOINTS:
            raise ValueError(f"unknown adjoint {self.adjoint!r}; allowed: {', '.join(_ADJOINTS)}")
        get_activation(self.activation)

    @property
    def dt(self) -> float:
        """The step ``T / n_steps``."""
        return self.T / self.n_steps

    def init(self, key: Array, dtype=jnp.float32) -> PyTree:
        """Random parameters ``{"embed", "field", "head"}`` (each ``{"w", "b"}``)."""
        k1, k2, k3 = jax.random.split(key, 3)
        w, c = self.width, self.n_classes
        return {
            "embed": {"w": jax.random.normal(k1, (self.dim_in, w), dtype) / math.sqrt(self.dim_in),
                      "b": jnp.zeros((w,), dtype)},
            "field": {"w": self.weight_scale * jax.random.normal(k2, (self.n_nodes, w, w), dtype) / math.sqrt(w),
                      "b": jnp.zeros((self.n_nodes, w), dtype)},
            "head": {"w": jax.random.normal(k3, (w, c), dtype) / math.sqrt(w),
                     "b": jnp.zeros((c,), dtype)},
        }

    def field(self, t: Float[Array, ""], u: Float[Array, "b w"], theta: PyTree) -> Float[Array, "b w"]:
        """``sigma(u K(t) + b(t))`` for a batch of states ``u``."""
        K = interp_weights(theta["w"], t, self.T)
        b = interp_weights(theta["b"], t, self.T)
        return get_activation(self.activation)(u @ K + b)

    def flow(self, theta: PyTree, u0: Float[Array, "b w"], dt: float | Array | None = None) -> Float[Array, "b w"]:
        """``u(T)`` from ``u(0)`` through the ODE block (with the configured gradient route).

        ``dt`` overrides ``T / n_steps``; it may be traced (one compiled program for many
        step sizes), in which case the solve runs through diffrax rather than the fixed-step
        scan, with ``T / dt`` steps.
        """
        # numpy, not jnp: under jit a jnp constant is traced, and integrate needs concrete
        # save times to take its fixed-step scan path
        ts = np.asarray([0.0, self.T], dtype=np.dtype(u0.dtype))
        ys = integrate(self.field, u0, ts, solver=self.solver, dt0=self.dt if dt is None else dt,
                       args=theta, adjoint=self.adjoint)
        return ys[-1]

    def apply(self, params: PyTree, x: Float[Array, "b d"], dt: float | Array | None = None) -> Float[Array, "b c"]:
        """Logits ``[b, n_classes]`` for inputs ``[b, dim_in]`` (``dt``: see :meth:`flow`)."""
        if x.ndim != 2 or x.shape[-1] != self.dim_in:
            raise ValueError(f"x must be [batch, {self.dim_in}], got shape {x.shape}")
        u0 = x @ params["embed"]["w"] + params["embed"]["b"]
        uT = self.flow(params["field"], u0, dt)
        return uT @ params["head"]["w"] + params["head"]["b"]

    def loss(self, params: PyTree, x: Float[Array, "b d"], y: Int[Array, " b"],
             dt: float | Array | None = None) -> Float[Array, ""]:
        """Mean cross-entropy of :meth:`apply`."""
        return cross_entropy(self.apply(params, x, dt), y)
