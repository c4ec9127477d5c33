"""Closed-form NTK / NNGP of fully connected networks, as composable layers (neural-tangents style).

A :class:`Layer` carries three things, like a ``neural_tangents.stax`` layer:

* ``init(key, in_dim) -> (out_dim, params)`` and ``apply(params, x) -> y``: the finite-width
  network (so the same description gives a finite discriminator and its infinite limit);
* ``kernel(k: Kernel) -> Kernel``: the infinite-width map on the covariances.

``Kernel`` holds ``nngp [n1, n2]``, ``ntk [n1, n2]``, the diagonal variances ``cov1 [n1]``,
``cov2 [n2]`` and the (static) feature width. The input kernel is ``nngp = x1 x2^T / d``,
``ntk = 0`` (neural-tangents' convention). :func:`kernel_fn` turns a layer into the
neural-tangents signature ``kernel_fn(x1, x2=None, get=None)``; everywhere a kernel is
accepted in ``gantk``, any callable with that signature works (e.g. an ``nt.stax`` kernel).

Numerical conventions copied from neural-tangents 0.6.5 (specs/gantk.md section 1.4):
``_sqrt`` has derivative 0 where its argument is ``<= 1e-30`` and clips negatives to 0;
``_arctan2(0, 0) = pi/2`` in the ReLU family, with a jvp whose denominator is
``max(x^2 + y^2, 1e-30)``. Hence gradients at coinciding points (``x1 == x2``, where
``q11 q22 - q12^2 = 0``) and at 0 for bias-free nets are finite.

Recursions (NTK parameterisation, ``sigma_w = W_std``, ``sigma_b = b_std``):
``Dense``: ``Sigma' = W_std^2 Sigma + b_std^2``, ``Theta' = Sigma' + W_std^2 Theta``;
standard parameterisation: ``Theta' = fan_in Sigma + W_std^2 Theta (+1 with a bias)``.
Activations: ``Sigma' = E[phi(u) phi(v)]``, ``Theta' = Theta E[phi'(u) phi'(v)]``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

__all__ = [
    "Kernel",
    "Layer",
    "Dense",
    "Relu",
    "LeakyRelu",
    "Abs",
    "ABRelu",
    "Erf",
    "Sigmoid_like",
    "Rbf",
    "Identity",
    "serial",
    "parallel",
    "FanOut",
    "FanInSum",
    "kernel_fn",
    "mlp",
    "rbf_kernel",
    "KERNELS",
    "get_kernel",
    "as_pair_kernel",
    "kernel_matrix",
    "weighted_sum_and_grad",
    "SIGMOID_LIKE_SCALE",
]

SIGMOID_LIKE_SCALE = 2.4020563531719796  # neural-tangents' Sigmoid_like: 0.5 erf(x / c) + 0.5
_TOL = 1e-30


# --------------------------------------------------------------------------- safe math
@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _sqrt(x: Array, tol: float = 0.0) -> Array:
    return jnp.sqrt(jnp.maximum(x, tol))


@_sqrt.defjvp
def _sqrt_jvp(tol, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    safe = _sqrt(x, max(tol, _TOL))
    return _sqrt(x, tol), jnp.where(x > max(tol, _TOL), x_dot / (2 * safe), 0.0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _arctan2(x: Array, y: Array, fill_zero: float | None = None) -> Array:
    if fill_zero is not None:
        return jnp.where((x == 0.0) & (y == 0.0), fill_zero, jnp.arctan2(x, y))
    return jnp.arctan2(x, y)


@_arctan2.defjvp
def _arctan2_jvp(fill_zero, primals, tangents):
    (x, y), (x_dot, y_dot) = primals, tangents
    denom = jnp.maximum(x**2 + y**2, _TOL)
    return _arctan2(x, y, fill_zero), x_dot * (y / denom) - y_dot * (x / denom)


# --------------------------------------------------------------------------- kernel state
class Kernel(NamedTuple):
    """Covariances of one (infinite-width) layer output for the pair of batches ``(x1, x2)``.

    Attributes:
        nngp: ``[n1, n2]`` NNGP covariance.
        ntk: ``[n1, n2]`` NTK.
        cov1: ``[n1]`` variances ``Sigma(x1_i, x1_i)``.
        cov2: ``[n2]`` variances ``Sigma(x2_j, x2_j)``.
        width: feature width of the (finite) representation, used by the standard
            parameterisation (static Python int).
        is_gaussian: whether the layer output is a mean-zero Gaussian process (true after a
            Dense layer); :func:`FanInSum` needs it to add covariances of branches.
    """

    nngp: Array
    ntk: Array
    cov1: Array
    cov2: Array
    width: int
    is_gaussian: bool = True

    def scale(self, a: float) -> "Kernel":
        """Kernel of ``a * f``: every covariance times ``a^2``."""
        v = a * a
        return self._replace(nngp=v * self.nngp, ntk=v * self.ntk, cov1=v * self.cov1, cov2=v * self.cov2)

    def shift(self, c: float) -> "Kernel":
        """Kernel of ``f + c`` with ``E[f] = 0``: covariances plus ``c^2`` (NTK unchanged)."""
        v = c * c
        return self._replace(nngp=v + self.nngp, cov1=v + self.cov1, cov2=v + self.cov2)


Kernels = Kernel | list  # a list of Kernels between FanOut and FanInSum


@dataclasses.dataclass(frozen=True)
class Layer:
    """A network layer and its infinite-width kernel map (see module docstring).

    Attributes:
        name: human-readable description.
        init: ``init(key, in_dim) -> (out_dim, params)``; dims are ints or lists of ints.
        apply: ``apply(params, x) -> y`` with ``x [n, in_dim]`` (or lists of those).
        kernel: ``kernel(Kernel) -> Kernel`` (or lists of those).
    """

    name: str
    init: Callable[[Array, Any], tuple[Any, Any]]
    apply: Callable[[Any, Any], Any]
    kernel: Callable[[Kernels], Kernels]

    def __call__(self, x1: ArrayLike, x2: ArrayLike | None = None, get: str | Sequence[str] | None = None):
        return kernel_fn(self)(x1, x2, get)


def _check_std(name: str, value: float | None, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if value is None or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0{' or None' if allow_none else ''}; got {value!r}")


def Dense(
    out_dim: int, W_std: float = 1.0, b_std: float | None = None, parameterization: str = "ntk"
) -> Layer:
    """Fully connected layer ``y = (W_std / sqrt(fan_in)) x W + b_std b`` (NTK) or ``x W + b`` (standard).

    Args:
        out_dim: output width (only used at finite width / by the standard parameterisation).
        W_std: weight standard deviation ``sigma_w``.
        b_std: bias standard deviation ``sigma_b``; ``None`` means no bias.
        parameterization: ``"ntk"`` (weights ``N(0, 1)`` rescaled in the forward pass) or
            ``"standard"`` (weights ``N(0, W_std^2 / fan_in)``, bias ``N(0, b_std^2)``).
    """
    if int(out_dim) != out_dim or out_dim < 1:
        raise ValueError(f"out_dim must be a positive integer; got {out_dim!r}")
    _check_std("W_std", W_std, allow_none=False)
    _check_std("b_std", b_std)
    if parameterization not in ("ntk", "standard"):
        raise ValueError(f"parameterization must be 'ntk' or 'standard'; got {parameterization!r}")
    out_dim = int(out_dim)
    bs = 0.0 if b_std is None else float(b_std)

    def init(key, in_dim):
        kw, kb = jax.random.split(key)
        w = jax.random.normal(kw, (in_dim, out_dim))
        b = jax.random.normal(kb, (out_dim,))
        if parameterization == "standard":
            w, b = w * (W_std / math.sqrt(in_dim)), b * bs
        return out_dim, (w, b)

    def apply(params, x):
        w, b = params
        if parameterization == "ntk":
            return (W_std / math.sqrt(x.shape[-1])) * (x @ w) + bs * b
        return x @ w + b

    def kernel(k: Kernel) -> Kernel:
        aff = lambda m: W_std**2 * m + bs**2  # noqa: E731
        if parameterization == "ntk":
            nngp = aff(k.nngp)
            ntk = nngp + W_std**2 * k.ntk
        else:
            ntk = k.width * k.nngp + W_std**2 * k.ntk + (1.0 if b_std is not None else 0.0)
            nngp = aff(k.nngp)
        return Kernel(nngp, ntk, aff(k.cov1), aff(k.cov2), out_dim, True)

    return Layer(f"Dense({out_dim}, W_std={W_std}, b_std={b_std}, {parameterization})", init, apply, kernel)


def _elementwise(name: str, fn: Callable[[Array], Array], kfn: Callable[[Kernel], Kernel]) -> Layer:
    return Layer(name, lambda key, d: (d, ()), lambda p, x: fn(x), lambda k: kfn(k)._replace(is_gaussian=False))


def ABRelu(a: float, b: float) -> Layer:
    """``phi(x) = a min(x, 0) + b max(x, 0)``; ReLU is ``(0, 1)``, Abs ``(-1, 1)``.

    Arc-cosine kernel: with ``s = sqrt(q11 q22 - q12^2)`` and ``theta = atan2(s, q12)``,
    ``E[phi phi] = (a-b)^2 s / (2 pi) + ((a^2+b^2)/2 - (a-b)^2 theta / (2 pi)) q12`` and
    ``E[phi' phi'] = (a^2+b^2)/2 - (a-b)^2 theta / (2 pi)`` (Cho & Saul 2009).
    """
    a, b = float(a), float(b)
    factor = (a - b) ** 2 / (2 * math.pi)

    def fn(x):
        return a * jnp.minimum(x, 0) + b * jnp.maximum(x, 0)

    def kernel(k: Kernel) -> Kernel:
        prod = k.cov1[:, None] * k.cov2[None, :]
        root = _sqrt(prod - k.nngp**2)
        angles = _arctan2(root, k.nngp, math.pi / 2)
        dot_sigma = (a * a + b * b) / 2 - factor * angles
        nngp = factor * root + dot_sigma * k.nngp
        diag = (a * a + b * b) / 2
        return k._replace(nngp=nngp, ntk=k.ntk * dot_sigma, cov1=diag * k.cov1, cov2=diag * k.cov2)

    return _elementwise(f"ABRelu({a}, {b})", fn, kernel)


def Relu() -> Layer:
    """ReLU ``max(x, 0)``."""
    return ABRelu(0.0, 1.0)


def LeakyRelu(alpha: float) -> Layer:
    """Leaky ReLU ``max(x, 0) + alpha min(x, 0)``."""
    return ABRelu(alpha, 1.0)


def Abs() -> Layer:
    """Absolute value ``|x|``."""
    return ABRelu(-1.0, 1.0)


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Layer:
    """``phi(x) = a erf(b x) + c``.

    With ``P = (1 + 2 q11)(1 + 2 q22)`` (on the ``b^2``-scaled covariances):
    ``E[erf erf] = (2/pi) arcsin(2 q12 / sqrt(P))``,
    ``E[erf' erf'] = (4/pi) / sqrt(P - 4 q12^2)`` (Williams 1997).
    """
    a, b, c = float(a), float(b), float(c)
    f2 = 2 / math.pi

    def fn(x):
        return a * jax.scipy.special.erf(b * x) + c

    def kernel(k: Kernel) -> Kernel:
        k = k.scale(b)
        prod = (1 + 2 * k.cov1)[:, None] * (1 + 2 * k.cov2)[None, :]
        root = _sqrt(prod - 4 * k.nngp**2)
        nngp = f2 * jnp.arctan2(2 * k.nngp, root)
        ntk = k.ntk * (2 * f2 / root)
        diag = lambda q: f2 * jnp.arctan2(q, jnp.sqrt(q + 0.25))  # noqa: E731
        return k._replace(nngp=nngp, ntk=ntk, cov1=diag(k.cov1), cov2=diag(k.cov2)).scale(a).shift(c)

    return _elementwise(f"Erf({a}, {b}, {c})", fn, kernel)


def Sigmoid_like() -> Layer:
    """neural-tangents' sigmoid surrogate ``0.5 erf(x / 2.4020563531719796) + 0.5``."""
    return Erf(0.5, 1.0 / SIGMOID_LIKE_SCALE, 0.5)


def Rbf(gamma: float = 1.0) -> Layer:
    """``phi(x) = sqrt(2) sin(sqrt(2 gamma) x + pi/4)``: ``E[phi phi] = exp(-gamma (q11 + q22 - 2 q12))``."""
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0; got {gamma!r}")
    gamma = float(gamma)

    def fn(x):
        return math.sqrt(2) * jnp.sin(math.sqrt(2 * gamma) * x + math.pi / 4)

    def kernel(k: Kernel) -> Kernel:
        s = k.cov1[:, None] + k.cov2[None, :]
        nngp = jnp.exp(gamma * (-s + 2 * k.nngp))
        return k._replace(
            nngp=nngp, ntk=k.ntk * 2 * gamma * nngp, cov1=jnp.ones_like(k.cov1), cov2=jnp.ones_like(k.cov2)
        )

    return _elementwise(f"Rbf({gamma})", fn, kernel)


def Identity() -> Layer:
    """The identity layer."""
    return Layer("Identity", lambda key, d: (d, ()), lambda p, x: x, lambda k: k)


def serial(*layers: Layer) -> Layer:
    """Composition ``layers[-1] o ... o layers[0]``."""
    if not layers or not all(isinstance(l, Layer) for l in layers):
        raise ValueError("serial needs at least one Layer and only Layers")

    def init(key, d):
        params = []
        for layer, k in zip(layers, jax.random.split(key, len(layers))):
            d, p = layer.init(k, d)
            params.append(p)
        return d, tuple(params)

    def apply(params, x):
        for layer, p in zip(layers, params):
            x = layer.apply(p, x)
        return x

    def kernel(k):
        for layer in layers:
            k = layer.kernel(k)
        return k

    return Layer("serial(" + ", ".join(l.name for l in layers) + ")", init, apply, kernel)


def FanOut(n: int) -> Layer:
    """Copies its input into ``n`` branches (to be followed by :func:`parallel`)."""
    if int(n) != n or n < 1:
        raise ValueError(f"FanOut needs a positive integer; got {n!r}")
    n = int(n)
    return Layer(f"FanOut({n})", lambda key, d: ([d] * n, ()), lambda p, x: [x] * n, lambda k: [k] * n)


def parallel(*layers: Layer) -> Layer:
    """Applies ``layers[i]`` to branch ``i``."""
    if not layers:
        raise ValueError("parallel needs at least one Layer")

    def _check(xs):
        if not isinstance(xs, list) or len(xs) != len(layers):
            raise ValueError(f"parallel of {len(layers)} layers needs {len(layers)} branches (use FanOut)")

    def init(key, ds):
        _check(ds)
        out = [l.init(k, d) for l, k, d in zip(layers, jax.random.split(key, len(layers)), ds)]
        return [o[0] for o in out], tuple(o[1] for o in out)

    def apply(params, xs):
        _check(xs)
        return [l.apply(p, x) for l, p, x in zip(layers, params, xs)]

    def kernel(ks):
        _check(ks)
        return [l.kernel(k) for l, k in zip(layers, ks)]

    return Layer("parallel(" + ", ".join(l.name for l in layers) + ")", init, apply, kernel)


def FanInSum() -> Layer:
    """Sums its branches: covariances (and NTKs) of independent branches add up."""

    def init(key, ds):
        if len(set(ds)) != 1:
            raise ValueError(f"FanInSum needs branches of equal width; got {ds}")
        return ds[0], ()

    def kernel(ks):
        if not all(k.is_gaussian for k in ks):
            raise ValueError(
                "FanInSum adds covariances, which is exact only for independent mean-zero Gaussian "
                "branches: end every branch with a Dense layer"
            )
        return Kernel(
            sum(k.nngp for k in ks), sum(k.ntk for k in ks), sum(k.cov1 for k in ks), sum(k.cov2 for k in ks),
            ks[0].width, True,
        )

    return Layer("FanInSum", init, lambda p, xs: sum(xs), kernel)


# --------------------------------------------------------------------------- evaluation
_GETS = ("nngp", "ntk")


def _check_get(get) -> tuple[str, ...] | str:
    if get is None:
        return _GETS
    if isinstance(get, str):
        if get not in _GETS:
            raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them; got {get!r}")
        return get
    get = tuple(get)
    if not get or any(g not in _GETS for g in get):
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them; got {get!r}")
    return get


def _check_inputs(x1, x2):
    x1 = jnp.asarray(x1)
    x2 = x1 if x2 is None else jnp.asarray(x2)
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[1] != x2.shape[1]:
        raise ValueError(f"inputs must be [n1, d] and [n2, d] with the same d; got {x1.shape} and {x2.shape}")
    if not jnp.issubdtype(x1.dtype, jnp.floating):
        x1, x2 = x1.astype(jnp.float32), x2.astype(jnp.float32)
    return x1, x2


def kernel_fn(layer: Layer) -> Callable:
    """The neural-tangents-style ``kernel_fn(x1, x2=None, get=None)`` of ``layer``.

    Returns a function mapping ``x1 [n1, d]``, ``x2 [n2, d]`` (``None``: ``x1``) to the
    ``[n1, n2]`` matrix for ``get="nngp"`` / ``"ntk"``, or a tuple in the order of a tuple
    ``get`` (``None`` means ``("nngp", "ntk")``).
    """

    def fn(x1, x2=None, get=None):
        get = _check_get(get)
        x1, x2 = _check_inputs(x1, x2)
        d = x1.shape[1]
        nngp = x1 @ x2.T / d
        k0 = Kernel(nngp, jnp.zeros_like(nngp), jnp.sum(x1 * x1, 1) / d, jnp.sum(x2 * x2, 1) / d, d, False)
        k = layer.kernel(k0)
        if isinstance(k, list):
            raise ValueError("the network ends with several branches; close them with FanInSum")
        return getattr(k, get) if isinstance(get, str) else tuple(getattr(k, g) for g in get)

    fn.layer = layer
    return fn


def mlp(
    activation: str | Layer = "relu",
    depth: int = 3,
    width: int = 128,
    W_std: float = 1.0,
    b_std: float | None = 1.0,
    out_dim: int = 1,
    parameterization: str = "ntk",
) -> Layer:
    """gantk2's discriminator: ``Dense(width) -> [act -> Dense(width)] x (depth-1) -> act -> Dense(out_dim, no bias)``.

    Args:
        activation: ``"relu"``, ``"sigmoid"`` (``Sigmoid_like``), ``"erf"``, ``"abs"``,
            ``"leaky_relu"`` (slope 0.1), ``"identity"`` or a :class:`Layer`.
        depth: number of hidden layers (>= 1).
        width: finite width (ignored by the infinite-width kernel in NTK parameterisation).
        W_std: weight std of every Dense.
        b_std: bias std of the hidden Dense layers (``None``/0: no bias); the output has none.
        out_dim: output dimension.
        parameterization: ``"ntk"`` or ``"standard"``.
    """
    acts = {"relu": Relu, "sigmoid": Sigmoid_like, "erf": Erf, "abs": Abs,
            "leaky_relu": lambda: LeakyRelu(0.1), "identity": Identity}
    if isinstance(activation, str):
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)} or a Layer; got {activation!r}")
        act = acts[activation]
    elif isinstance(activation, Layer):
        act = lambda: activation  # noqa: E731
    else:
        raise ValueError(f"activation must be a name or a Layer; got {activation!r}")
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be a positive integer; got {depth!r}")
    layers = [Dense(width, W_std, b_std, parameterization)]
    for _ in range(int(depth) - 1):
        layers += [act(), Dense(width, W_std, b_std, parameterization)]
    layers += [act(), Dense(out_dim, W_std, None, parameterization)]
    return serial(*layers)


def rbf_kernel(gamma: float = 0.5) -> Layer:
    """gantk2's RBF baseline: NNGP of ``Dense -> Rbf(gamma) -> Dense`` = ``exp(-2 gamma ||x-y||^2 / (2 d))``.

    With ``gamma = 0.5``: ``k(x, y) = exp(-||x - y||^2 / (2 d))`` (use ``get="nngp"``).
    """
    return serial(Dense(1, 1.0, None), Rbf(gamma), Dense(1, 1.0, None))


# name -> (layer factory, which kernel). The gantk2 architectures (specs/gantk.md 1.5).
KERNELS: dict[str, tuple[Callable[..., Layer], str]] = {
    "relu": (lambda width=128: mlp("relu", 3, width, 1.0, 1.0), "ntk"),
    "relu-nobias": (lambda width=128: mlp("relu", 3, width, 1.0, None), "ntk"),
    "sigmoid": (lambda width=128: mlp("sigmoid", 3, width, 1.0, 0.2), "ntk"),
    "erf": (lambda width=128: mlp("erf", 3, width, 1.0, 0.2), "ntk"),
    "abs": (lambda width=128: mlp("abs", 3, width, 1.0, 1.0), "ntk"),
    "rbf": (lambda width=128: rbf_kernel(0.5), "nngp"),
}


def get_kernel(name: str, width: int = 128) -> tuple[Layer, str]:
    """The named architecture of :data:`KERNELS` and which kernel (``"ntk"``/``"nngp"``) it uses."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
    factory, get = KERNELS[name]
    return factory(width), get


PairKernel = Callable[[Array, Array], Array]


def as_pair_kernel(kernel, get: str = "ntk") -> PairKernel:
    """Normalises a kernel argument to ``k(x1, x2) -> [n1, n2]``.

    Accepts a kernel name (:data:`KERNELS`, which fixes ``get``), a :class:`Layer`, or any
    callable with neural-tangents' signature ``kernel_fn(x1, x2, get)``.
    """
    if isinstance(kernel, str):
        layer, get = get_kernel(kernel)
        kernel = kernel_fn(layer)
    elif isinstance(kernel, Layer):
        kernel = kernel_fn(kernel)
    if not callable(kernel):
        raise ValueError(f"kernel must be a name, a Layer or a kernel_fn(x1, x2, get); got {kernel!r}")
    if get not in _GETS:
        raise ValueError(f"get must be 'nngp' or 'ntk'; got {get!r}")
    if getattr(kernel, "_gantk_pair", False):
        return kernel

    def pk(x1, x2):
        return kernel(x1, x2, get)

    pk._gantk_pair = True
    return pk


def _pad_rows(x: Array, block: int) -> tuple[Array, int]:
    n = x.shape[0]
    nb = -(-n // block)
    return jnp.concatenate([x, jnp.broadcast_to(x[:1], (nb * block - n, x.shape[1]))]), nb


def kernel_matrix(kernel, x1: ArrayLike, x2: ArrayLike | None = None, *, get: str = "ntk",
                  block_size: int | None = None) -> Float[Array, "n1 n2"]:
    """``[k(x1_i, x2_j)]``, evaluated in row blocks of ``block_size`` (``None``: at once).

    Blocking bounds the intermediate memory of deep kernels to ``O(block_size * n2)``.
    """
    pk = as_pair_kernel(kernel, get)
    x1, x2 = _check_inputs(x1, x2)
    if block_size is None or block_size >= x1.shape[0]:
        return pk(x1, x2)
    if int(block_size) != block_size or block_size < 1:
        raise ValueError(f"block_size must be a positive integer or None; got {block_size!r}")
    n = x1.shape[0]
    xp, nb = _pad_rows(x1, int(block_size))
    out = jax.lax.map(lambda xb: pk(xb, x2), xp.reshape(nb, int(block_size), -1))
    return out.reshape(nb * int(block_size), -1)[:n]


def weighted_sum_and_grad(
    kernel, x: ArrayLike, s: ArrayLike, v: ArrayLike, *, get: str = "ntk", block_size: int | None = None
) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
    """``f(x_i) = sum_j k(x_i, s_j) v_j`` and its gradient in ``x_i`` (first argument only).

    This is the witness / discriminator evaluation of every infinite-width loss. Rows of
    ``x`` are processed in blocks, so memory is ``O(block_size * len(s))``.

    Args:
        kernel: see :func:`as_pair_kernel`.
        x: query points ``[n, d]``.
        s: support points ``[m, d]`` (treated as constants).
        v: weights ``[m]``.
        get: ``"ntk"`` or ``"nngp"``.
        block_size: rows per block (``None``: all at once).

    Returns:
        ``(f [n], grad [n, d])``.
    """
    pk = as_pair_kernel(kernel, get)
    x, s = _check_inputs(x, s)
    v = jnp.asarray(v, x.dtype)
    if v.shape != (s.shape[0],):
        raise ValueError(f"v must have shape [{s.shape[0]}]; got {v.shape}")
    s, v = jax.lax.stop_gradient(s), jax.lax.stop_gradient(v)

    def block(xb):
        f, vjp = jax.vjp(lambda z: pk(z, s) @ v, xb)
        return f, vjp(jnp.ones_like(f))[0]

    if block_size is None or block_size >= x.shape[0]:
        return block(x)
    n = x.shape[0]
    xp, nb = _pad_rows(x, int(block_size))
    f, g = jax.lax.map(block, xp.reshape(nb, int(block_size), -1))
    return f.reshape(-1)[:n], g.reshape(-1, x.shape[1])[:n]
