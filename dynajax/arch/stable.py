"""Stable architectures (Haber & Ruthotto 2017; Ruthotto & Haber 2020): residual networks
whose forward propagation ``y -> F(y)`` keeps ``||F(y + e) - F(y)|| / ||e||`` bounded with depth.

Every network here is a pure function of stacked per-layer weights (leading axis = layer) run
with ``lax.scan``; batches are rows, ``y: [batch, d]``.

* :func:`resnet_forward`: the standard ResNet ``y <- y + h sigma(K_j y + b_j)`` (forward Euler;
  unstable for general ``K``).
* :func:`antisymmetric_forward`: ``K_j = W_j - W_j^T - gamma I`` (Haber & Ruthotto eq. 3.4),
  whose eigenvalues have real part exactly ``-gamma``: the linearised flow neither grows nor
  (for ``gamma = 0``) decays.
* :func:`hamiltonian_forward`: a Hamiltonian network with the separable energy
  ``H(y, z) = 1^T A(K2 z + b2) + 1^T A(K1 y + b1)``, ``A' = sigma``, integrated by the
  Stormer-Verlet (leapfrog, kick-drift-kick) scheme

  .. math::
      z_{j+1/2} = z_j - \\tfrac h2 K_1^T\\sigma(K_1 y_j + b_1),\\quad
      y_{j+1} = y_j + h K_2^T\\sigma(K_2 z_{j+1/2} + b_2),\\quad
      z_{j+1} = z_{j+1/2} - \\tfrac h2 K_1^T\\sigma(K_1 y_{j+1} + b_1),

  symplectic and time-reversible for any weights (each substep is a shear whose Jacobian
  block ``K^T diag(sigma') K`` is symmetric). :func:`hamiltonian_reversible` has the same
  forward pass and a ``jax.custom_vjp`` backward pass that recomputes the activations
  backwards with the exact inverse step (:func:`leapfrog_inverse`) instead of storing them:
  memory independent of depth (Chang et al. 2018, Gomez et al. 2017).
* :func:`parabolic_forward` / :func:`hyperbolic_forward`: convolutional blocks
  ``Y <- Y - h K^T sigma(K Y + b)`` (heat-equation-like, a gradient step on a convex energy)
  and ``Y_{j+1} = 2 Y_j - Y_{j-1} - h^2 K^T sigma(K Y_j + b)`` (wave-like, reversible),
  Ruthotto & Haber 2020 eqs. (12) and (16), with ``K^T`` the adjoint of a same-padded
  convolution.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree

from dynajax import _validate
from dynajax.arch.continuous import cross_entropy
from dynajax.nn.activations import get_activation

__all__ = [
    "KINDS",
    "StableClassifier",
    "antisymmetric_forward",
    "antisymmetric_matrix",
    "conv2d",
    "conv2d_transpose",
    "growth_ratio",
    "hamiltonian_forward",
    "hamiltonian_reversible",
    "hyperbolic_forward",
    "init_layers",
    "leapfrog_inverse",
    "leapfrog_step",
    "parabolic_forward",
    "resnet_forward",
]

KINDS = ("resnet", "antisymmetric", "hamiltonian")


def _act(activation):
    return get_activation(activation) if isinstance(activation, str) else activation


def antisymmetric_matrix(W: Float[Array, "... d d"], gamma: float = 0.0) -> Float[Array, "... d d"]:
    """``W - W^T - gamma I``: eigenvalues ``-gamma + i omega`` (Haber & Ruthotto eq. 3.4)."""
    d = W.shape[-1]
    return W - jnp.swapaxes(W, -1, -2) - gamma * jnp.eye(d, dtype=W.dtype)


def init_layers(kind: str, depth: int, width: int, *, key: Array, scale: float = 1.0,
                dtype=jnp.float32) -> PyTree:
    """Stacked per-layer weights for ``kind`` in :data:`KINDS`.

    ``K`` entries are ``N(0, scale^2 / width)``, biases zero. ``resnet``/``antisymmetric``:
    ``{"K": [depth, d, d], "b": [depth, d]}``; ``hamiltonian``: also ``"K2"``, ``"b2"``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    depth, width = _validate.integer(depth, "depth"), _validate.integer(width, "width")
    k1, k2 = jax.random.split(key)
    std = scale / math.sqrt(width)
    p = {"K": std * jax.random.normal(k1, (depth, width, width), dtype),
         "b": jnp.zeros((depth, width), dtype)}
    if kind == "hamiltonian":
        p["K2"] = std * jax.random.normal(k2, (depth, width, width), dtype)
        p["b2"] = jnp.zeros((depth, width), dtype)
    return p


def resnet_forward(params: PyTree, y: Float[Array, "b d"], h: float,
                   activation: str | Callable = "tanh") -> Float[Array, "b d"]:
    """Standard ResNet ``y <- y + h sigma(K_j y + b_j)`` over the layers of ``params``."""
    act = _act(activation)

    def layer(y, p):
        return y + h * act(y @ p["K"].T + p["b"]), None

    return jax.lax.scan(layer, y, params)[0]


def antisymmetric_forward(params: PyTree, y: Float[Array, "b d"], h: float, gamma: float = 0.0,
                          activation: str | Callable = "tanh") -> Float[Array, "b d"]:
    """``y <- y + h sigma((W_j - W_j^T - gamma I) y + b_j)`` with ``params["K"]`` as ``W``."""
    act = _act(activation)

    def layer(y, p):
        A = antisymmetric_matrix(p["K"], gamma)
        return y + h * act(y @ A.T + p["b"]), None

    return jax.lax.scan(layer, y, params)[0]


def _grad_potential(K, b, y, act):
    # gradient of 1^T A(K y + b) with A' = act, row convention: act(y K^T + b) K
    return act(y @ K.T + b) @ K


def leapfrog_step(p: PyTree, y: Float[Array, "b d"], z: Float[Array, "b d"], h: float,
                  activation: str | Callable = "tanh") -> tuple[Array, Array]:
    """One Stormer-Verlet step of the Hamiltonian network (module docstring)."""
    act = _act(activation)
    z = z - 0.5 * h * _grad_potential(p["K"], p["b"], y, act)
    y = y + h * _grad_potential(p["K2"], p["b2"], z, act)
    z = z - 0.5 * h * _grad_potential(p["K"], p["b"], y, act)
    return y, z


def leapfrog_inverse(p: PyTree, y: Float[Array, "b d"], z: Float[Array, "b d"], h: float,
                     activation: str | Callable = "tanh") -> tuple[Array, Array]:
    """The exact inverse of :func:`leapfrog_step` (the substeps undone in reverse order)."""
    act = _act(activation)
    z = z + 0.5 * h * _grad_potential(p["K"], p["b"], y, act)
    y = y - h * _grad_potential(p["K2"], p["b2"], z, act)
    z = z + 0.5 * h * _grad_potential(p["K"], p["b"], y, act)
    return y, z


def hamiltonian_forward(params: PyTree, y: Float[Array, "b d"], z: Float[Array, "b d"] | None,
                        h: float, activation: str | Callable = "tanh") -> tuple[Array, Array]:
    """Leapfrog over every layer (plain autodiff stores each layer's activations).

    Args:
        params: stacked ``{"K", "b", "K2", "b2"}`` (see :func:`init_layers`).
        y: positions ``[b, d]``.
        z: momenta ``[b, d]`` (``None``: zeros, Haber & Ruthotto's choice).
        h: step.

    Returns:
        ``(y, z)`` after the last layer.
    """
    z = jnp.zeros_like(y) if z is None else z

    def layer(c, p):
        return leapfrog_step(p, *c, h, activation), None

    return jax.lax.scan(layer, (y, z), params)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _ham_rev(params, y, z, h, activation):
    return hamiltonian_forward(params, y, z, h, activation)


def _ham_rev_fwd(params, y, z, h, activation):
    out = hamiltonian_forward(params, y, z, h, activation)
    return out, (params, out)  # only the final state: activations are recomputed


def _ham_rev_bwd(h, activation, res, ct):
    params, last = res

    def back(carry, p):
        state, cot = carry
        prev = leapfrog_inverse(p, *state, h, activation)
        _, vjp = jax.vjp(lambda q, y, z: leapfrog_step(q, y, z, h, activation), p, *prev)
        gp, gy, gz = vjp(cot)
        return (prev, (gy, gz)), gp

    (_, (gy, gz)), gparams = jax.lax.scan(back, (last, ct), params, reverse=True)
    return gparams, gy, gz


_ham_rev.defvjp(_ham_rev_fwd, _ham_rev_bwd)


def hamiltonian_reversible(params: PyTree, y: Float[Array, "b d"], z: Float[Array, "b d"] | None,
                           h: float, activation: str = "tanh") -> tuple[Array, Array]:
    """:func:`hamiltonian_forward` whose backward pass recomputes activations backwards.

    The gradient equals plain autodiff's up to the round-off of the inverse recomputation;
    memory for the backward pass does not grow with depth. ``activation`` must be a name
    (it is a static argument of the ``custom_vjp``).
    """
    if not isinstance(activation, str):
        raise ValueError("hamiltonian_reversible needs the activation by name (a static argument)")
    z = jnp.zeros_like(y) if z is None else z
    return _ham_rev(params, y, z, float(h), activation)


# -- convolutional blocks -------------------------------------------------------------------------


def conv2d(K: Float[Array, "kh kw c c"], Y: Float[Array, "b H W c"]) -> Float[Array, "b H W c"]:
    """Same-padded, stride-1 convolution, channels last (NHWC, HWIO)."""
    return jax.lax.conv_general_dilated(Y, K, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv2d_transpose(K: Float[Array, "kh kw c c"], Y: Float[Array, "b H W c"]) -> Float[Array, "b H W c"]:
    """The adjoint ``K^T`` of :func:`conv2d` (``<K x, y> = <x, K^T y>``)."""
    return jax.linear_transpose(functools.partial(conv2d, K), Y)(Y)[0]


def parabolic_forward(params: PyTree, Y: Float[Array, "b H W c"], h: float,
                      activation: str | Callable = "tanh") -> Float[Array, "b H W c"]:
    """``Y <- Y - h K_j^T sigma(K_j Y + b_j)``; ``params = {"K": [L, kh, kw, c, c], "b": [L, c]}``.

    With a non-decreasing ``sigma`` this is a gradient step on a convex energy, so it is
    non-expansive when ``h max(sigma') ||K_j||^2 <= 2`` (Ruthotto & Haber 2020, Thm. 1).
    """
    act = _act(activation)

    def layer(Y, p):
        return Y - h * conv2d_transpose(p["K"], act(conv2d(p["K"], Y) + p["b"])), None

    return jax.lax.scan(layer, Y, params)[0]


def hyperbolic_forward(params: PyTree, Y: Float[Array, "b H W c"], h: float,
                       Y_prev: Float[Array, "b H W c"] | None = None,
                       activation: str | Callable = "tanh") -> tuple[Array, Array]:
    """``Y_{j+1} = 2 Y_j - Y_{j-1} - h^2 K_j^T sigma(K_j Y_j + b_j)`` (``Y_{-1} = Y_0`` by default).

    Returns ``(Y_{L-1}, Y_L)``; the scheme is reversible: swapping the pair and running the
    layers in reverse order recovers ``(Y_0, Y_{-1})`` (leapfrog in time).
    """
    act = _act(activation)
    Y_prev = Y if Y_prev is None else Y_prev

    def layer(c, p):
        Yp, Yc = c
        Yn = 2 * Yc - Yp - h**2 * conv2d_transpose(p["K"], act(conv2d(p["K"], Yc) + p["b"]))
        return (Yc, Yn), None

    return jax.lax.scan(layer, (Y_prev, Y), params)[0]


# -- diagnostics and a classifier ---------------------------------------------------------------


def growth_ratio(F: Callable[[Array], Array], y: Float[Array, "b d"],
                 eps: float = 1e-4, n_dirs: int = 4, *, key: Array) -> Float[Array, ""]:
    """Mean over the batch of the largest ``||F(y + e) - F(y)|| / ||e||`` over ``n_dirs`` random
    perturbations of norm ``eps`` per example: the forward-stability constant ``M`` of
    Haber & Ruthotto (2017) measured empirically.
    """
    e = jax.random.normal(key, (n_dirs, *y.shape), y.dtype)
    e = eps * e / jnp.linalg.norm(e, axis=-1, keepdims=True)
    Fy = F(y)
    diff = jax.vmap(lambda ei: F(y + ei) - Fy)(e)
    ratio = jnp.linalg.norm(diff, axis=-1) / eps  # [n_dirs, b]
    return jnp.mean(jnp.max(ratio, axis=0))


@dataclasses.dataclass(frozen=True)
class StableClassifier:
    """Opening layer, a deep block of ``kind`` (:data:`KINDS`) and a linear head.

    Attributes:
        kind: ``"resnet"``, ``"antisymmetric"`` or ``"hamiltonian"``.
        dim_in, width, n_classes: sizes.
        depth: number of layers of the block; ``h`` its step.
        gamma: damping of the antisymmetric layers.
        reversible: Hamiltonian only: use :func:`hamiltonian_reversible`.
        scale: init scale of the block's weights.
    """

    kind: str
    dim_in: int
    width: int = 8
    n_classes: int = 2
    depth: int = 16
    h: float = 0.1
    gamma: float = 0.01
    reversible: bool = False
    scale: float = 1.0
    activation: str = "tanh"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        if self.reversible and self.kind != "hamiltonian":
            raise ValueError("reversible=True needs kind='hamiltonian'")
        if not self.h > 0:
            raise ValueError(f"h must be > 0, got {self.h}")

    def init(self, key: Array, dtype=jnp.float32) -> PyTree:
        k1, k2, k3 = jax.random.split(key, 3)
        return {
            "open": {"w": jax.random.normal(k1, (self.dim_in, self.width), dtype) / math.sqrt(self.dim_in),
                     "b": jnp.zeros((self.width,), dtype)},
            "block": init_layers(self.kind, self.depth, self.width, key=k2, scale=self.scale, dtype=dtype),
            "head": {"w": jax.random.normal(k3, (self.width, self.n_classes), dtype) / math.sqrt(self.width),
                     "b": jnp.zeros((self.n_classes,), dtype)},
        }

    def embed(self, params: PyTree, x: Float[Array, "b d_in"]) -> Float[Array, "b w"]:
        return jnp.tanh(x @ params["open"]["w"] + params["open"]["b"])

    def block(self, block_params: PyTree, y: Float[Array, "b w"]) -> Float[Array, "b w"]:
        """The deep part ``F``: positions after the last layer."""
        if self.kind == "resnet":
            return resnet_forward(block_params, y, self.h, self.activation)
        if self.kind == "antisymmetric":
            return antisymmetric_forward(block_params, y, self.h, self.gamma, self.activation)
        fwd = hamiltonian_reversible if self.reversible else hamiltonian_forward
        return fwd(block_params, y, None, self.h, self.activation)[0]

    def apply(self, params: PyTree, x: Float[Array, "b d_in"]) -> Float[Array, "b c"]:
        y = self.block(params["block"], self.embed(params, x))
        return y @ params["head"]["w"] + params["head"]["b"]

    def loss(self, params: PyTree, x: Float[Array, "b d_in"], y: Int[Array, " b"]) -> Float[Array, ""]:
        return cross_entropy(self.apply(params, x), y)
