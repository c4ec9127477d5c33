"""Spectral norm by power iteration with a persistent vector (Miyato et al. 2018).

A weight ``W`` of any shape is viewed as the matrix ``[prod(other axes), out]`` whose columns
index the output axis ``out_axis`` (last by default: the flax layout ``[in, out]`` of a dense
kernel, ``[*window, in, out]`` of a conv kernel, hence ``[prod(window) * in, out]``). Its
singular values are those of torch's ``[out, in * prod(window)]`` view.

The persistent state is ``u``, an estimate of the top **right** singular vector, shape
``[out]``. One iteration is ``v <- normalize(W u)``, ``u <- normalize(W^H v)``; after the
iterations ``v = normalize(W u)`` and ``sigma = Re(v^H W u)``, with ``u`` and ``v`` held
constant (``lax.stop_gradient``), so ``d sigma / d W = v u^H``: at convergence the gradient
of the top singular value. Complex weights are allowed (``sigma`` is the real part, as
LEADS does for FNO weights).
"""

from __future__ import annotations

import functools
import numbers

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Inexact, PRNGKeyArray, PyTree

from dynajax.nn.initializers import Initializer, default_kernel_init, zeros

__all__ = [
    "SNDense",
    "SpectralNorm",
    "as_matrix",
    "init_spectral_state",
    "init_u",
    "spectral_norm",
    "spectral_norms",
]


def as_matrix(w: Inexact[Array, "..."], out_axis: int = -1) -> Inexact[Array, "m out"]:
    """Moves ``out_axis`` last and flattens the rest: ``[prod(other axes), out]``.

    Raises:
        ValueError: ``w`` has fewer than 2 axes, or ``out_axis`` is out of range.
    """
    w = jnp.asarray(w)
    if w.ndim < 2:
        raise ValueError(f"a spectral norm needs a weight with at least 2 axes, got shape {w.shape}")
    if not -w.ndim <= out_axis < w.ndim:
        raise ValueError(f"out_axis={out_axis} is out of range for a weight of shape {w.shape}")
    w = jnp.moveaxis(w, out_axis, -1)
    return w.reshape(-1, w.shape[-1])


def _normalize(x, eps):
    return x / jnp.maximum(jnp.linalg.norm(x), eps)


def _check_n_iter(n_iter) -> int:
    if not isinstance(n_iter, numbers.Integral) or isinstance(n_iter, bool) or n_iter < 0:
        raise ValueError(f"n_iter must be a non-negative int, got {n_iter!r}")
    return int(n_iter)


def init_u(
    w: Inexact[Array, "..."], out_axis: int = -1, *, key: PRNGKeyArray
) -> Inexact[Array, " out"]:
    """A random unit vector ``[out]`` (complex for a complex ``w``) to start the iteration."""
    n = as_matrix(w, out_axis).shape[1]
    dtype = jnp.result_type(w)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        kr, ki = jax.random.split(key)
        real = jnp.finfo(dtype).dtype
        u = jax.lax.complex(jax.random.normal(kr, (n,), real), jax.random.normal(ki, (n,), real))
    else:
        u = jax.random.normal(key, (n,), dtype)
    return _normalize(u, 1e-12)


def spectral_norm(
    w: Inexact[Array, "..."],
    u: Inexact[Array, " out"],
    n_iter: int = 1,
    *,
    out_axis: int = -1,
    eps: float = 1e-12,
) -> tuple[Float[Array, ""], Inexact[Array, " out"]]:
    """Estimates the largest singular value of ``w`` by ``n_iter`` power iterations from ``u``.

    Args:
        w: weight of any shape with at least 2 axes, viewed as ``[prod(other axes), out]``.
        u: current estimate of the top right singular vector, shape ``[out]`` (from
            :func:`init_u` or a previous call). Never differentiated.
        n_iter: power iterations (``0`` evaluates ``sigma`` with ``u`` as is).
        out_axis: the axis of ``w`` that indexes the columns (default last, the flax layout).
        eps: floor on norms before dividing.

    Returns:
        ``(sigma, u_new)``: ``sigma`` a real scalar, differentiable with respect to ``w``
        (``d sigma / d w = v u^H`` with ``u``, ``v`` constant); ``u_new`` of shape ``[out]``,
        to carry to the next call (gradient-free).

    Raises:
        ValueError: ``w`` with fewer than 2 axes, ``u`` of the wrong shape, negative ``n_iter``.
    """
    n_iter = _check_n_iter(n_iter)
    mat = as_matrix(w, out_axis)
    if jnp.shape(u) != (mat.shape[1],):
        raise ValueError(
            f"u must have shape ({mat.shape[1]},) (the size of out_axis={out_axis} of w "
            f"{jnp.shape(w)}), got {jnp.shape(u)}"
        )
    u, v = _power_iteration(
        jax.lax.stop_gradient(mat), jax.lax.stop_gradient(jnp.asarray(u, mat.dtype)), n_iter, eps
    )
    sigma = jnp.real(jnp.vdot(v, mat @ u))
    return sigma, u


@functools.partial(jax.jit, static_argnames=("n_iter",))
def _power_iteration(m, u, n_iter, eps):
    # jitted at module level so that eager calls reuse one compiled loop per shape
    def step(_, u):
        v = _normalize(m @ u, eps)
        return _normalize(m.conj().T @ v, eps)

    u = jax.lax.fori_loop(0, n_iter, step, u)
    v = _normalize(m @ u, eps)
    return jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)


def init_spectral_state(
    weights: PyTree[Inexact[Array, "..."]], out_axis: int = -1, *, key: PRNGKeyArray
) -> PyTree[Inexact[Array, " out"]]:
    """One random unit ``u`` per leaf of ``weights`` (a pytree holding only weight arrays).

    For a penalty ``sum_l sigma_l ** 2`` over selected weights (LEADS), pick the kernels out of
    the params (not biases, not Swish ``beta``), then carry this state across steps.
    """
    leaves, treedef = jax.tree_util.tree_flatten(weights)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree_util.tree_unflatten(
        treedef, [init_u(w, out_axis, key=k) for k, w in zip(keys, leaves)]
    )


def spectral_norms(
    weights: PyTree[Inexact[Array, "..."]],
    state: PyTree[Inexact[Array, " out"]],
    n_iter: int = 1,
    *,
    out_axis: int = -1,
    eps: float = 1e-12,
) -> tuple[PyTree[Float[Array, ""]], PyTree[Inexact[Array, " out"]]]:
    """:func:`spectral_norm` leaf by leaf: returns ``(sigmas, new_state)``, two pytrees."""
    pairs = jax.tree_util.tree_map(
        lambda w, u: spectral_norm(w, u, n_iter, out_axis=out_axis, eps=eps), weights, state
    )
    outer = jax.tree_util.tree_structure(weights)
    inner = jax.tree_util.tree_structure((0, 0))
    sigmas, new_state = jax.tree_util.tree_transpose(outer, inner, pairs)
    return sigmas, new_state


class SpectralNorm(nn.Module):
    """Returns ``sigma(W)`` for a weight passed in, keeping ``u`` in a variable collection.

    ``u`` lives in ``variables[collection]["u"]`` (default collection ``"spectral"``),
    initialised from the ``"params"`` rng at ``init``. Each call runs ``n_iter`` power
    iterations from the stored ``u``; the new ``u`` is written back only when the collection
    is mutable (``apply(..., mutable=["spectral"])``), so evaluation with an immutable
    collection is deterministic. Unlike ``flax.linen.SpectralNorm`` (which wraps a layer and
    rescales all its params), this module only measures the weight it is given.

    Attributes:
        n_iter: power iterations per call.
        out_axis: the output axis of the weight (default last).
        eps: floor on norms.
        collection: name of the variable collection holding ``u``.
    """

    n_iter: int = 1
    out_axis: int = -1
    eps: float = 1e-12
    collection: str = "spectral"

    def __post_init__(self):
        _check_n_iter(self.n_iter)
        super().__post_init__()

    @nn.compact
    def __call__(self, w: Inexact[Array, "..."]) -> Float[Array, ""]:
        """Returns the scalar estimate of the largest singular value of ``w``."""
        u = self.variable(
            self.collection, "u", lambda: init_u(w, self.out_axis, key=self.make_rng("params"))
        )
        sigma, u_new = spectral_norm(
            w, u.value, self.n_iter, out_axis=self.out_axis, eps=self.eps
        )
        if self.is_mutable_collection(self.collection):
            u.value = u_new
        return sigma


class SNDense(nn.Module):
    """Dense layer whose kernel is divided by its spectral norm (GAN critics, Miyato 2018).

    ``y = x @ (W / sigma(W)) + b`` with ``sigma`` from :class:`SpectralNorm` (submodule
    ``"sn"``; ``u`` in the ``collection`` variables, updated when mutable).

    Attributes:
        features: output width.
        use_bias: add a bias.
        kernel_init, bias_init: initialisers of ``W`` ``[in, features]`` and ``b``.
        n_iter: power iterations per call.
        eps: floor on norms.
        collection: variable collection of the power-iteration vector.
    """

    features: int
    use_bias: bool = True
    kernel_init: Initializer = default_kernel_init
    bias_init: Initializer = zeros
    n_iter: int = 1
    eps: float = 1e-12
    collection: str = "spectral"

    def __post_init__(self):
        if (
            not isinstance(self.features, numbers.Integral)
            or isinstance(self.features, bool)
            or self.features < 1
        ):
            raise ValueError(f"features must be a positive int, got {self.features!r}")
        _check_n_iter(self.n_iter)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Float[Array, "... d_in"]) -> Float[Array, "... features"]:
        """Maps ``[..., d_in]`` to ``[..., features]``."""
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        sigma = SpectralNorm(self.n_iter, eps=self.eps, collection=self.collection, name="sn")(
            kernel
        )
        y = x @ (kernel / sigma).astype(x.dtype)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(x.dtype)
        return y
