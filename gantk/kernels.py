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

Numerical conventions copied from neural-tangents 0.6.5 (its ``_sqrt`` and ``_arctan2``):
``_sqrt`` has derivative 0 where its argument is ``<= 1e-30`` and clips negatives to 0;
``_arctan2(0, 0) = pi/2`` in the ReLU family, with a jvp whose denominator is
``max(x^2 + y^2, 1e-30)``. Hence gradients at coinciding points (``x1 == x2``, where
``q11 q22 - q12^2 = 0``) and at 0 for bias-free nets are finite. The arc-cosine layers
(ReLU family) carry their own jvp with the ``1/sqrt(q11 q22 - q12^2)`` terms cancelled
analytically (same values as neural-tangents', see ``_arccos_map_jvp``).

Speed (float32, XLA:CPU): XLA's ``atan2`` is a scalar libm call (~25-50 ns per element on
the 2-core box); angles here come from polynomials instead (``_atan2_poly``, ``_arccos_angle``,
<= 4e-7 absolute error, float64 keeps ``jnp.arctan2``), which made the 1000 x 1000 ReLU NTK
~10x faster. Every :class:`Layer` kernel is a function of ``(x1.x2/d, |x1|^2/d, |x2|^2/d)``,
so input gradients of ``sum_j v_j k(x_i, s_j)`` are two matrix products of ``[n, m]``
partial-derivative matrices with the data (:func:`kernel_partials`), never ``[n, m, d]``.

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

from dynajax import _validate  # the validation module of the distribution (dynajax and gantk)

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
    "Gelu",
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
    "is_dot_product_kernel",
    "kernel_partials",
    "contract_partials",
    "kernel_matrix",
    "weighted_sum_and_grad",
    "SIGMOID_LIKE_SCALE",
]

SIGMOID_LIKE_SCALE = 2.4020563531719796  # neural-tangents' Sigmoid_like: 0.5 erf(x / c) + 0.5
_TOL = 1e-30
_ARG_ULPS = 4.0  # rounding floor of q11 q22 - q12^2 in the arc-cosine jvp, in ulps of q11 q22


# --------------------------------------------------------------------------- safe math
@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _sqrt(x: Array, tol: float = 0.0) -> Array:
    return jnp.sqrt(jnp.maximum(x, tol))


@_sqrt.defjvp
def _sqrt_jvp(tol, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    safe = _sqrt(x, max(tol, _TOL))
    return _sqrt(x, tol), jnp.where(x > max(tol, _TOL), x_dot / (2 * safe), 0.0)


# Cephes' single-precision arctangent (atanf): reduction to |t| <= tan(pi/8), odd polynomial.
_ATAN_P = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1)


def _atan2_poly(y: Array, x: Array) -> Array:
    """``arctan2(y, x)`` from a polynomial: vectorises on XLA:CPU (~80x faster than its float32
    ``atan2``, which is a scalar libm call) with the same accuracy there (<= 3e-7 absolute)."""
    ay, ax = jnp.abs(y), jnp.abs(x)
    mn, mx = jnp.minimum(ay, ax), jnp.maximum(ay, ax)
    r = mn / jnp.where(mx > 0, mx, 1.0)
    big = r > 0.41421356237309503  # tan(pi/8): use atan(r) = pi/4 + atan((r-1)/(r+1))
    t = jnp.where(big, (r - 1) / (r + 1), r)
    z = t * t
    p = (((_ATAN_P[0] * z + _ATAN_P[1]) * z + _ATAN_P[2]) * z + _ATAN_P[3]) * z
    a = jnp.where(big, math.pi / 4, 0.0) + (t + t * p)
    a = jnp.where(ay > ax, math.pi / 2 - a, a)
    a = jnp.where(x < 0, math.pi - a, a)
    return jnp.copysign(a, y).astype(jnp.result_type(y, x))


def _atan2_impl(y: Array, x: Array) -> Array:
    """``arctan2``: the polynomial in (at most) single precision, XLA's otherwise (exact float64 parity)."""
    if jnp.result_type(y, x) in (jnp.float32, jnp.float16, jnp.bfloat16):
        return _atan2_poly(y, x)
    return jnp.arctan2(y, x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _arctan2(x: Array, y: Array, fill_zero: float | None = None) -> Array:
    if fill_zero is not None:
        return jnp.where((x == 0.0) & (y == 0.0), fill_zero, _atan2_impl(x, y))
    return _atan2_impl(x, y)


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


# asin(x) = x + x^3 P(x^2) on [0, 0.7072]: weighted least-squares (Lawson) fit of degree 6,
# 5e-8 absolute error in float32 (the rounding level), no division.
_ASIN_P = (0.16666906, 0.07488484, 0.04650234, 0.01638842, 0.07697582, -0.09262591, 0.11132121)


def _asin_small(x: Array) -> Array:
    z = x * x
    p = _ASIN_P[-1]
    for c in _ASIN_P[-2::-1]:
        p = p * z + c
    return x + x * z * p


def _arccos_angle(root: Array, q: Array, inv: Array) -> Array:
    """``theta = atan2(root, q)`` in ``[0, pi]``, with ``inv = 1 / sqrt(q11 q22)`` (0 if that is 0).

    In single precision: ``sin theta = root * inv``, ``cos theta = q * inv`` and the arcsine of
    whichever is smaller than ``1/sqrt 2`` (well conditioned, a polynomial, no division). At
    ``root = q = 0`` it is ``pi / 2`` as in neural-tangents; at ``root = 0 < q`` it is 0.
    """
    if jnp.result_type(root) not in (jnp.float32, jnp.float16, jnp.bfloat16):
        return jnp.where((root == 0.0) & (q == 0.0), math.pi / 2, jnp.arctan2(root, q))
    sn, cs = root * inv, q * inv
    acs = jnp.abs(cs)
    small = sn < acs
    phi = jnp.where(small, _asin_small(jnp.minimum(sn, 1.0)), math.pi / 2 - _asin_small(jnp.minimum(acs, 1.0)))
    return jnp.where(cs < 0, math.pi - phi, phi)


def _arccos_primal(q, a, b, t, c0, factor):
    ia = jnp.where(a > 0, jax.lax.rsqrt(jnp.where(a > 0, a, 1.0)), 0.0)
    ib = jnp.where(b > 0, jax.lax.rsqrt(jnp.where(b > 0, b, 1.0)), 0.0)
    arg = a[:, None] * b[None, :] - q * q
    root = jnp.sqrt(jnp.maximum(arg, 0.0))
    theta = _arccos_angle(root, q, ia[:, None] * ib[None, :])
    dot = c0 - factor * theta
    return (factor * root + dot * q, t * dot), (arg, root, dot, ia, ib)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _arccos_map(q: Array, a: Array, b: Array, t: Array, c0: float, factor: float) -> tuple[Array, Array]:
    """One arc-cosine layer: ``(nngp, ntk) -> (E[phi phi], ntk E[phi' phi'])`` (see :func:`ABRelu`).

    ``q, t [n1, n2]``: NNGP and NTK; ``a [n1]``, ``b [n2]``: variances; ``c0 = (a^2 + b^2)/2``
    and ``factor = (a - b)^2 / (2 pi)`` of the activation.
    """
    return _arccos_primal(q, a, b, t, c0, factor)[0]


@functools.partial(_arccos_map.defjvp, symbolic_zeros=True)
def _arccos_map_jvp(c0, factor, primals, tangents):
    # Derivatives with the singular parts cancelled by hand (theta = arccos(q / sqrt(ab)),
    # root = sqrt(ab) sin theta):  d nngp'/dq = dot,  d nngp'/da = factor root / (2a),
    # d dot = (factor / root) (dq - q/2 (da/a + db/b)).  Only the NTK sees 1/root; it is 0
    # where q11 q22 - q12^2 <= 1e-30, which is neural-tangents' convention (its _sqrt and
    # _arctan2 jvps), so gradients at coinciding points are finite. Autodiff through the
    # primal instead cancels 1/root terms numerically, layer after layer.
    q, a, b, t = primals
    (q2, t2), (arg, root, dot, ia, ib) = _arccos_primal(q, a, b, t, c0, factor)
    qd, ad, bd, td = (None if isinstance(x, jax.custom_derivatives.SymbolicZero) else x for x in tangents)
    rel = 0.0  # da/a + db/b, [n1, 1], [1, n2] or [n1, n2]
    if ad is not None:
        rel = rel + (ad * ia * ia)[:, None]
    if bd is not None:
        rel = rel + (bd * ib * ib)[None, :]
    u = -0.5 * q * rel if qd is None else qd - 0.5 * q * rel
    # At coinciding inputs arg = q11 q22 - q12^2 is 0 only up to rounding: the variances and the
    # cross term come from different reductions, rounded as the compiler fuses them, and can
    # leave a few ulps of q11 q22, which 1/root would turn into a huge gradient. Below that
    # floor arg is rounding noise: treat it as 0.
    live = arg > _TOL + _ARG_ULPS * jnp.finfo(arg.dtype).eps * a[:, None] * b[None, :]
    dot_d = jnp.where(live, factor * jax.lax.rsqrt(jnp.where(live, arg, 1.0)), 0.0) * u
    q2d = factor * 0.5 * root * rel + (0.0 if qd is None else dot * qd)
    t2d = t * dot_d + (0.0 if td is None else td * dot)
    return (q2, t2), (jnp.broadcast_to(q2d, q2.shape).astype(q2.dtype), jnp.broadcast_to(t2d, t2.shape).astype(t2.dtype))


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
        nngp, ntk = _arccos_map(k.nngp, k.cov1, k.cov2, k.ntk, (a * a + b * b) / 2, factor)
        diag = (a * a + b * b) / 2
        return k._replace(nngp=nngp, ntk=ntk, cov1=diag * k.cov1, cov2=diag * k.cov2)

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
        nngp = f2 * _arctan2(2 * k.nngp, root)
        ntk = k.ntk * (2 * f2 / root)
        diag = lambda q: f2 * jnp.arctan2(q, jnp.sqrt(q + 0.25))  # noqa: E731
        return k._replace(nngp=nngp, ntk=ntk, cov1=diag(k.cov1), cov2=diag(k.cov2)).scale(a).shift(c)

    return _elementwise(f"Erf({a}, {b}, {c})", fn, kernel)


def _gelu_moments(a: Array, b: Array, c: Array) -> tuple[Array, Array]:
    """``(E[g(u) g(v)], E[g'(u) g'(v)])``, ``g(u) = u Phi(u)``, ``(u, v) ~ N(0, [[a, c], [c, b]])``.

    With ``Phi(u) = P(Z <= u)`` for an independent ``Z ~ N(0, 1)``, ``g(u) g(v) = u v 1{A >= 0}
    1{B >= 0}`` for ``A = u - Z_1``, ``B = v - Z_2`` of covariance ``S = [[s, c], [c, t]]``,
    ``s = a + 1``, ``t = b + 1``; Gaussian conditioning on ``(A, B)`` and the orthant moments of
    a bivariate normal give, with ``det = s t - c^2``, ``x = sqrt(det)``, ``theta = atan2(c, x)``
    (``= asin`` of the correlation of ``A`` and ``B``)::

        E[g g]   = c / 4 + (c theta + (c / s)(c / t) / x + (a / s)(b / t) x) / (2 pi)
        E[g' g'] = 1 / 4 + (theta + (c / x)(1 / s + 1 / t + 1 / det)) / (2 pi)

    the second being ``d E[g g] / dc`` (Price's theorem). Written this way the two
    ``O(sqrt(a))`` terms of ``E[g g]`` that cancel near ``c^2 = a b`` (coinciding inputs of
    large norm) depend on ``x`` with opposite first derivatives, so the rounding of ``det``
    (whose ``a b - c^2`` carries the rounding of ``a b``) does not reach ``E[g g]``, and nothing
    overflows before ``a b`` does.
    """
    s, t = a + 1.0, b + 1.0
    det = jnp.maximum(b * (a - c) + c * (b - c), 0.0) + (a + b + 1.0)  # s t - c^2, not lost to s t
    x = jnp.sqrt(det)
    theta = _arctan2(c, x)
    nngp = c / 4 + (c * theta + (c / s) * (c / t) / x + (a / s) * (b / t) * x) / (2 * math.pi)
    dot = 0.25 + (theta + (c / x) * (1 / s + 1 / t + 1 / det)) / (2 * math.pi)
    return nngp, dot


def Gelu() -> Layer:
    """GELU ``x Phi(x)`` (exact, erf-based; ``jax.nn.gelu(x, approximate=False)``).

    ``E[g g]`` and ``E[g' g']`` in closed form (:func:`_gelu_moments`, derived in its
    docstring), accurate in float32 for inputs of large norm. Verified against Monte-Carlo
    expectations, a wide network and float64 (tests).
    """

    def fn(x):
        return jax.nn.gelu(x, approximate=False)

    def kernel(k: Kernel) -> Kernel:
        nngp, dot = _gelu_moments(k.cov1[:, None], k.cov2[None, :], k.nngp)
        diag = lambda q: _gelu_moments(q, q, q)[0]  # noqa: E731
        return k._replace(nngp=nngp, ntk=k.ntk * dot, cov1=diag(k.cov1), cov2=diag(k.cov2))

    return _elementwise("Gelu", fn, kernel)


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
        raise ValueError(f"inputs x1, x2 must be [n1, d] and [n2, d] with the same d; got {x1.shape} and {x2.shape}")
    if not jnp.issubdtype(x1.dtype, jnp.floating):
        x1, x2 = x1.astype(jnp.float32), x2.astype(jnp.float32)
    for name, x in (("x1", x1), ("x2", x2)):
        _validate.finite(x, name, traced=False)
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
        activation: ``"relu"``, ``"sigmoid"`` (``Sigmoid_like``), ``"erf"``, ``"abs"``, ``"gelu"``,
            ``"leaky_relu"`` (slope 0.1), ``"identity"`` or a :class:`Layer`.
        depth: number of hidden layers (>= 1).
        width: finite width (ignored by the infinite-width kernel in NTK parameterisation).
        W_std: weight std of every Dense.
        b_std: bias std of the hidden Dense layers (``None``/0: no bias); the output has none.
        out_dim: output dimension.
        parameterization: ``"ntk"`` or ``"standard"``.
    """
    acts = {"relu": Relu, "sigmoid": Sigmoid_like, "erf": Erf, "abs": Abs, "gelu": Gelu,
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
    if int(width) != width or width < 1:
        raise ValueError(f"width must be a positive integer; got {width!r}")
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


# name -> (layer factory, which kernel): the architectures of the released GAN(TK)^2 code
# (Franceschi et al. 2022, ICML; Ayed 2022 thesis section 5.7.1).
KERNELS: dict[str, tuple[Callable[..., Layer], str]] = {
    "relu": (lambda width=128: mlp("relu", 3, width, 1.0, 1.0), "ntk"),
    "relu-nobias": (lambda width=128: mlp("relu", 3, width, 1.0, None), "ntk"),
    "sigmoid": (lambda width=128: mlp("sigmoid", 3, width, 1.0, 0.2), "ntk"),
    "erf": (lambda width=128: mlp("erf", 3, width, 1.0, 0.2), "ntk"),
    "abs": (lambda width=128: mlp("abs", 3, width, 1.0, 1.0), "ntk"),
    "gelu": (lambda width=128: mlp("gelu", 3, width, 1.0, 1.0), "ntk"),
    "rbf": (lambda width=128: rbf_kernel(0.5), "nngp"),
}


def get_kernel(name: str, width: int = 128) -> tuple[Layer, str]:
    """The named architecture of :data:`KERNELS` and which kernel (``"ntk"``/``"nngp"``) it uses."""
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}")
    factory, get = KERNELS[name]
    return factory(width), get


PairKernel = Callable[[Array, Array], Array]


def _resolve(kernel, get: str) -> tuple[Layer | None, str, Callable]:
    """``(layer or None, get, kernel_fn)`` of a kernel argument (see :func:`as_pair_kernel`)."""
    if isinstance(kernel, str):
        layer, get = get_kernel(kernel)
        return layer, get, kernel_fn(layer)
    if isinstance(kernel, Layer):
        layer, kernel = kernel, kernel_fn(kernel)
    elif callable(kernel) and isinstance(getattr(kernel, "layer", None), Layer):
        layer = kernel.layer
    elif callable(kernel):
        layer = None
    else:
        raise ValueError(
            f"kernel must be a name ({', '.join(KERNELS)}), a Layer or a callable "
            f"kernel_fn(x1, x2, get); got {kernel!r}"
        )
    if get not in _GETS:
        raise ValueError(f"get must be 'nngp' or 'ntk'; got {get!r}")
    return layer, get, kernel


def as_pair_kernel(kernel, get: str = "ntk") -> PairKernel:
    """Normalises a kernel argument to ``k(x1, x2) -> [n1, n2]``.

    Accepts a kernel name (:data:`KERNELS`, which fixes ``get``), a :class:`Layer`, or any
    callable with neural-tangents' signature ``kernel_fn(x1, x2, get)`` returning the
    ``[n1, n2]`` matrix (checked at the first call: a clear ``ValueError`` otherwise).
    """
    if getattr(kernel, "_gantk_pair", False):
        return kernel
    _, get, kfn = _resolve(kernel, get)

    def pk(x1, x2):
        out = kfn(x1, x2, get)
        shape = (x1.shape[0], x2.shape[0])
        if not hasattr(out, "shape") or tuple(out.shape) != shape:
            raise ValueError(
                f"kernel_fn(x1, x2, get={get!r}) must return a [{shape[0]}, {shape[1]}] array for x1 "
                f"{tuple(x1.shape)} and x2 {tuple(x2.shape)}; got {getattr(out, 'shape', type(out).__name__)}"
            )
        return out

    pk._gantk_pair = True
    return pk


def is_dot_product_kernel(kernel) -> bool:
    """Whether ``kernel`` is a :class:`Layer` (or its name / ``kernel_fn``): a function of
    ``(x1 . x2 / d, |x1|^2 / d, |x2|^2 / d)``, which :func:`kernel_partials` differentiates."""
    if isinstance(kernel, str | Layer):
        return True
    return callable(kernel) and isinstance(getattr(kernel, "layer", None), Layer)


def kernel_partials(kernel, x: ArrayLike, s: ArrayLike, *, get: str = "ntk") -> tuple[Array, Array, Array]:
    """A dot-product kernel and its two partial derivatives, in one elementwise pass.

    Every :class:`Layer` kernel is ``k(x, s) = F(q, a, b)`` with ``q = x.s / d``,
    ``a = |x|^2 / d``, ``b = |s|^2 / d``, so
    ``grad_x k(x, s) = (1/d) F_q s + (2/d) F_a x``: the input gradient of
    ``sum_j v_j k(x_i, s_j)`` is ``((F_q * v) @ s) / d + (2/d) x_i (F_a @ v)_i``, two matrix
    products and never an ``[n, m, d]`` tensor. ``F_q`` and ``F_a`` come from forward-mode
    derivatives of the layer recursion, fused by XLA with ``F`` itself.

    Args:
        kernel: a name, a :class:`Layer` or its :func:`kernel_fn` (:func:`is_dot_product_kernel`).
        x: ``[n, d]``.
        s: ``[m, d]``.
        get: ``"ntk"`` or ``"nngp"`` (ignored for names, which fix it).

    Returns:
        ``(F, F_q, F_a)``, each ``[n, m]``.
    """
    layer, get, _ = _resolve(kernel, get)
    if layer is None:
        raise ValueError("kernel_partials needs a Layer kernel (a name, a Layer or its kernel_fn)")
    x, s = _check_inputs(x, s)
    d = x.shape[1]
    q0 = x @ s.T / d
    a0, b0 = jnp.sum(x * x, 1) / d, jnp.sum(s * s, 1) / d

    def F(q, a):
        k = layer.kernel(Kernel(q, jnp.zeros_like(q), a, b0, d, False))
        if isinstance(k, list):
            raise ValueError("the network ends with several branches; close them with FanInSum")
        return getattr(k, get)

    k, k_q = jax.jvp(lambda q: F(q, a0), (q0,), (jnp.ones_like(q0),))
    k_a = jax.jvp(lambda a: F(q0, a), (a0,), (jnp.ones_like(a0),))[1]
    return k, k_q, k_a


def contract_partials(x: Array, s: Array, v: Array, k: Array, k_q: Array, k_a: Array
                      ) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
    """``f_i = sum_j k_ij v_j`` and ``grad_i = ((k_q * v) @ s) / d + (2/d) x_i (k_a @ v)_i``.

    The value and first-argument gradient of ``sum_j v_j k(x_i, s_j)`` from
    :func:`kernel_partials` (``x [n, d]``, ``s [m, d]``, ``v [m]``, the rest ``[n, m]``).
    """
    d = x.shape[1]
    return k @ v, ((k_q * v) @ s) / d + (2.0 / d) * x * (k_a @ v)[:, None]


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
    ``x`` are processed in blocks, so memory is ``O(block_size * len(s))``. For
    :class:`Layer` kernels the gradient is the closed form of :func:`kernel_partials` (two
    matrix products, one fused elementwise pass); other ``kernel_fn`` callables use autodiff.

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
    layer, get, _ = _resolve(kernel, get)
    pk = as_pair_kernel(kernel, get)
    x, s = _check_inputs(x, s)
    v = jnp.asarray(v, x.dtype)
    if v.shape != (s.shape[0],):
        raise ValueError(f"v must have shape [{s.shape[0]}]; got {v.shape}")
    s, v = jax.lax.stop_gradient(s), jax.lax.stop_gradient(v)

    def block(xb):
        if layer is not None:  # closed form of the first-argument gradient (kernel_partials)
            return contract_partials(xb, s, v, *kernel_partials(layer, xb, s, get=get))
        f, vjp = jax.vjp(lambda z: pk(z, s) @ v, xb)
        return f, vjp(jnp.ones_like(f))[0]

    if block_size is None or block_size >= x.shape[0]:
        return block(x)
    n = x.shape[0]
    xp, nb = _pad_rows(x, int(block_size))
    f, g = jax.lax.map(block, xp.reshape(nb, int(block_size), -1))
    return f.reshape(-1)[:n], g.reshape(-1, x.shape[1])[:n]
