"""Infinite-width (NTK) and finite-width discriminators of GAN(TK)^2 (thesis section 5.5-5.6).

Training set: fake points ``X [N, d]`` and real points ``Y [M, d]``, support ``S = X u Y``
(``m = N + M``) with weights ``w = 1/(2N)`` (fake), ``1/(2M)`` (real), ``W = diag(w)``,
labels ``rho = -1`` (fake), ``+1`` (real).

An infinite-width discriminator trained for a time ``tau`` from ``f_0`` is
``f_tau(x) = f_0(x) + sum_s k(x, s) coef_s`` (Corollary 5.1): :class:`KernelDiscriminator`
stores ``S`` and ``coef``. Closed forms (Franceschi et al. 2022, ICML; Ayed 2022 thesis, Props 5.8-5.10):

* IPM (Prop 5.8): ``coef = tau [1/N on fake, -1/M on real]``: ``f_tau = tau * witness``.
* LSGAN (Prop 5.9): ``coef = 4 tau W phi(4 tau K W)(rho - F_0)``, ``phi(z) = (1 - e^-z)/z``,
  evaluated without inverse by ``method``: ``"eigh"`` (of ``W^1/2 K W^1/2``), ``"krylov"``
  (Lanczos with full reorthogonalisation, matrix-free) or ``"rk4"`` (the linear ODE
  ``u' = -4 K W u``, ``v' = u``: ``coef = 4 W v(tau)``).
* Any loss (Theorem 5.1): RK4 on ``F' = K W g(F)``, ``G' = g(F)``: ``coef = W G_tau``.

Finite width: :class:`FiniteDiscriminator`, an MLP (:func:`gantk.kernels.mlp`) in NTK
parameterisation, optionally antisymmetric (Zhang et al. 2020: ``f = (g_1 - g_2)/sqrt 2``
with equal initial parameters, so ``f_0 = 0`` and the NTK is unchanged), trained by
full-batch SGD on ``-L(f)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from gantk import kernels as K
from gantk.losses import Loss, functional_gradient, get_loss

__all__ = [
    "Support",
    "make_support",
    "KernelDiscriminator",
    "phi",
    "ipm",
    "lsgan",
    "any_loss",
    "gan",
    "infinite",
    "evaluate",
    "particle_gradient",
    "FiniteDiscriminator",
    "LSGAN_METHODS",
]

LSGAN_METHODS = ("krylov", "eigh", "rk4")


class Support(NamedTuple):
    """The discriminator's training set ``S = X u Y``.

    Attributes:
        points: ``[m, d]`` fake points then real points.
        weights: ``[m]`` ``1/(2N)`` on fake, ``1/(2M)`` on real.
        rho: ``[m]`` ``-1`` on fake, ``+1`` on real.
        is_fake: ``[m]`` boolean mask.
    """

    points: Array
    weights: Array
    rho: Array
    is_fake: Array


def make_support(x_fake: ArrayLike, x_real: ArrayLike) -> Support:
    """Builds :class:`Support` from fake ``[N, d]`` and real ``[M, d]`` points."""
    x_fake, x_real = jnp.asarray(x_fake), jnp.asarray(x_real)
    if x_fake.ndim != 2 or x_real.ndim != 2 or x_fake.shape[1] != x_real.shape[1]:
        raise ValueError(f"fake and real points must be [N, d] and [M, d]; got {x_fake.shape}, {x_real.shape}")
    if x_fake.shape[0] == 0 or x_real.shape[0] == 0:
        raise ValueError("fake and real point sets must be non-empty")
    n, m = x_fake.shape[0], x_real.shape[0]
    dt = jnp.result_type(x_fake.dtype, x_real.dtype, jnp.float32)
    is_fake = jnp.arange(n + m) < n
    return Support(
        jnp.concatenate([x_fake, x_real]).astype(dt),
        jnp.where(is_fake, 1.0 / (2 * n), 1.0 / (2 * m)).astype(dt),
        jnp.where(is_fake, -1.0, 1.0).astype(dt),
        is_fake,
    )


class KernelDiscriminator(NamedTuple):
    """``f(x) = f_0(x) + sum_s k(x, s) coef_s`` (``f_0`` is the caller's; 0 in gantk's flows).

    Attributes:
        points: ``[m, d]`` support ``S``.
        coef: ``[m]`` coefficients.
        F: ``[m]`` discriminator values on ``S`` at the end of training (including ``F_0``).
    """

    points: Array
    coef: Array
    F: Array


def phi(z: ArrayLike) -> Array:
    """``phi(z) = (1 - exp(-z)) / z`` with ``phi(0) = 1``, accurate near 0 (uses ``expm1``)."""
    z = jnp.asarray(z)
    small = jnp.abs(z) < 1e-4
    zs = jnp.where(small, 1.0, z)
    return jnp.where(small, 1.0 - z / 2 + z * z / 6, -jnp.expm1(-zs) / zs)


def _gram(kernel, points, get, block_size):
    return K.kernel_matrix(kernel, points, points, get=get, block_size=block_size)


def ipm(kernel, x_fake: ArrayLike, x_real: ArrayLike, tau: float = 1.0, *, get: str = "ntk",
        with_values: bool = False, block_size: int | None = None) -> KernelDiscriminator:
    """Infinite-width IPM discriminator ``f_tau = tau f*``, ``f* = mean_i k(., x_i) - mean_j k(., y_j)``.

    Args:
        kernel: a kernel name, :class:`gantk.kernels.Layer` or ``kernel_fn(x1, x2, get)``.
        x_fake: ``[N, d]``.
        x_real: ``[M, d]``.
        tau: training time ``tau >= 0``.
        get: ``"ntk"`` or ``"nngp"`` (ignored for names, which fix it).
        with_values: also compute ``F = f_tau(S)`` (one ``m x m`` kernel); otherwise ``F`` is empty.
        block_size: row block of kernel evaluations.
    """
    _check_tau(tau)
    sup = make_support(x_fake, x_real)
    coef = tau * jnp.where(sup.is_fake, 1.0 / x_fake.shape[0], -1.0 / x_real.shape[0]).astype(sup.points.dtype)
    F = _gram(kernel, sup.points, get, block_size) @ coef if with_values else jnp.zeros((0,), coef.dtype)
    return KernelDiscriminator(sup.points, coef, F)


def _check_tau(tau):
    if isinstance(tau, (int, float, np.floating)) and not (np.isfinite(tau) and tau >= 0):
        raise ValueError(f"tau must be a finite number >= 0; got {tau!r}")


def _lanczos_phi(matvec, b: Array, t: float, k: int) -> Array:
    """``phi(t B) b`` for symmetric PSD ``B`` (given by ``matvec``) from a ``k``-step Lanczos basis."""
    m = b.shape[0]
    beta0 = jnp.linalg.norm(b)
    q0 = b / jnp.where(beta0 > 0, beta0, 1.0)
    eps = jnp.finfo(b.dtype).eps

    def body(j, state):
        Q, alpha, beta = state
        q = Q[j]
        w = matvec(q)
        a = q @ w
        w = w - a * q - jnp.where(j > 0, beta[j - 1], 0.0) * Q[jnp.maximum(j - 1, 0)]
        for _ in range(2):  # full reorthogonalisation (rows of Q beyond j are still 0)
            w = w - Q.T @ (Q @ w)
        bj = jnp.linalg.norm(w)
        ok = bj > 100 * eps * jnp.maximum(beta0, 1.0)
        Q = Q.at[j + 1].set(jnp.where(ok, w / jnp.where(ok, bj, 1.0), 0.0))
        return Q, alpha.at[j].set(a), beta.at[j].set(jnp.where(ok, bj, 0.0))

    Q = jnp.zeros((k + 1, m), b.dtype).at[0].set(q0)
    Q, alpha, beta = jax.lax.fori_loop(0, k, body, (Q, jnp.zeros(k, b.dtype), jnp.zeros(k, b.dtype)))
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    lam, V = jnp.linalg.eigh(T)
    y = V @ (phi(t * jnp.maximum(lam, 0.0)) * V[0])
    return beta0 * (Q[:k].T @ y)


def lsgan(
    kernel,
    x_fake: ArrayLike,
    x_real: ArrayLike,
    tau: float = 1.0,
    *,
    F0: ArrayLike | None = None,
    method: str = "krylov",
    krylov_dim: int = 40,
    rk4_steps: int | None = None,
    get: str = "ntk",
    gram: ArrayLike | None = None,
    block_size: int | None = None,
) -> KernelDiscriminator:
    """Infinite-width LSGAN discriminator in closed form (Prop 5.9), no matrix inverse.

    ``F_tau = rho + exp(-4 tau K W)(F_0 - rho)`` on ``S`` and
    ``f_tau(x) = f_0(x) + 4 tau k(x, S) W phi(4 tau K W)(rho - F_0)``.

    Args:
        kernel, x_fake, x_real, get, block_size: as in :func:`ipm`.
        tau: training time.
        F0: ``[m]`` initial discriminator values on ``S`` (``None``: 0).
        method: ``"krylov"`` (default, matrix-free Lanczos), ``"eigh"`` or ``"rk4"``. Lanczos
            with full reorthogonalisation cannot diverge; on the 2-D sets at N = M = 500 and
            ``tau`` in {1, 10} (``4 tau lambda_max`` up to 130), 16 steps already agree with a
            float64 ``eigh`` to <= 2e-5 relative in float32 (the kernel spectra decay fast),
            and it is the fastest exact method measured (benchmarks/gantk.py).
        krylov_dim: Lanczos steps (capped at ``m``).
        rk4_steps: RK4 steps of the ``"rk4"`` method; ``None`` (default) picks
            ``ceil(tau * 4 max_i sum_j |K_ij| w_j)`` (Gershgorin bound on the spectral radius of
            ``4 K W``) at run time, so the explicit scheme is stable and accurate for any ``tau``.
        gram: precomputed ``K(S, S) [m, m]`` (optional).
    """
    _check_tau(tau)
    if method not in LSGAN_METHODS:
        raise ValueError(f"method must be one of {LSGAN_METHODS}; got {method!r}")
    sup = make_support(x_fake, x_real)
    m, dt = sup.points.shape[0], sup.points.dtype
    Kss = _gram(kernel, sup.points, get, block_size) if gram is None else jnp.asarray(gram, dt)
    F0 = jnp.zeros(m, dt) if F0 is None else jnp.asarray(F0, dt)
    if Kss.shape != (m, m) or F0.shape != (m,):
        raise ValueError(f"gram must be [{m}, {m}] and F0 [{m}]; got {Kss.shape}, {F0.shape}")
    r = sup.rho - F0
    sw = jnp.sqrt(sup.weights)
    if method == "eigh":
        lam, V = jnp.linalg.eigh(sw[:, None] * Kss * sw[None, :])
        coef = 4 * tau * sw * (V @ (phi(4 * tau * jnp.maximum(lam, 0.0)) * (V.T @ (sw * r))))
    elif method == "krylov":
        def mv(v):
            return sw * (Kss @ (sw * v))
        coef = 4 * tau * sw * _lanczos_phi(mv, sw * r, 4 * tau, min(int(krylov_dim), m))
    else:
        if rk4_steps is None:
            # RK4 is stable for h * lambda <= 2.78 on the negative real axis; Gershgorin bounds
            # lambda_max(4 K W) <= 4 max_i sum_j |K_ij| w_j. One unit of h * lambda_max per step
            # keeps every mode accurate (its damping e^-1 within 2 %, and fast modes decay).
            lam = 4.0 * jnp.max(jnp.abs(Kss) @ sup.weights)
            n_steps = jnp.maximum(jnp.ceil(tau * lam), 8).astype(jnp.int32)
        else:
            n_steps = int(rk4_steps)
        h = tau / n_steps

        def f(state):
            u, _ = state
            return -4.0 * (Kss @ (sup.weights * u)), u

        def step(_, state):
            k1 = f(state)
            k2 = f(jax.tree.map(lambda s, d: s + 0.5 * h * d, state, k1))
            k3 = f(jax.tree.map(lambda s, d: s + 0.5 * h * d, state, k2))
            k4 = f(jax.tree.map(lambda s, d: s + h * d, state, k3))
            return jax.tree.map(lambda s, a, b, c, e: s + h / 6 * (a + 2 * b + 2 * c + e), state, k1, k2, k3, k4)

        _, v = jax.lax.fori_loop(0, n_steps, step, (r, jnp.zeros_like(r)))
        coef = 4 * sup.weights * v
    return KernelDiscriminator(sup.points, coef, F0 + Kss @ coef)


def any_loss(
    loss: str | Loss,
    kernel,
    x_fake: ArrayLike,
    x_real: ArrayLike,
    tau: float = 1.0,
    *,
    F0: ArrayLike | None = None,
    steps: int = 100,
    get: str = "ntk",
    gram: ArrayLike | None = None,
    block_size: int | None = None,
) -> KernelDiscriminator:
    """Infinite-width discriminator for any loss (Theorem 5.1): RK4 on the training points.

    Solves ``F' = K W g(F)``, ``G' = g(F)`` with ``g(F) = rho1 a'(F) - rho2 b'(F)`` from
    ``F(0) = F_0``, ``G(0) = 0`` with ``steps`` RK4 steps; ``coef = W G_tau``.
    """
    _check_tau(tau)
    loss = get_loss(loss)
    sup = make_support(x_fake, x_real)
    m, dt = sup.points.shape[0], sup.points.dtype
    Kss = _gram(kernel, sup.points, get, block_size) if gram is None else jnp.asarray(gram, dt)
    F0 = jnp.zeros(m, dt) if F0 is None else jnp.asarray(F0, dt)
    h = tau / steps

    def f(state):
        F, _ = state
        g = functional_gradient(loss, F, sup.is_fake)
        return Kss @ (sup.weights * g), g

    def step(state, _):
        k1 = f(state)
        k2 = f(jax.tree.map(lambda s, d: s + 0.5 * h * d, state, k1))
        k3 = f(jax.tree.map(lambda s, d: s + 0.5 * h * d, state, k2))
        k4 = f(jax.tree.map(lambda s, d: s + h * d, state, k3))
        return jax.tree.map(lambda s, a, b, c, e: s + h / 6 * (a + 2 * b + 2 * c + e), state, k1, k2, k3, k4), None

    (F, G), _ = jax.lax.scan(step, (F0, jnp.zeros_like(F0)), None, length=int(steps))
    return KernelDiscriminator(sup.points, sup.weights * G, F)


def gan(kernel, x_fake, x_real, tau: float = 1.0, **kw) -> KernelDiscriminator:
    """Original (non-saturating) GAN discriminator at infinite width: :func:`any_loss` with ``"gan"``.

    Time is the thesis's (the released code's ``inf_vanilla`` runs at half this speed).
    """
    return any_loss("gan", kernel, x_fake, x_real, tau, **kw)


def infinite(loss: str | Loss, kernel, x_fake, x_real, tau: float = 1.0, **kw) -> KernelDiscriminator:
    """Dispatches to :func:`ipm`, :func:`lsgan` (closed forms) or :func:`any_loss`."""
    name = loss if isinstance(loss, str) else loss.name
    if name == "ipm":
        return ipm(kernel, x_fake, x_real, tau, **kw)
    if name == "lsgan":
        return lsgan(kernel, x_fake, x_real, tau, **kw)
    return any_loss(loss, kernel, x_fake, x_real, tau, **kw)


def evaluate(disc: KernelDiscriminator, kernel, x: ArrayLike, *, get: str = "ntk",
             block_size: int | None = None) -> tuple[Float[Array, " n"], Float[Array, "n d"]]:
    """``f(x) [n]`` and ``grad_x f(x) [n, d]`` (``f_0 = 0``; support and coefficients frozen)."""
    return K.weighted_sum_and_grad(kernel, x, disc.points, disc.coef, get=get, block_size=block_size)


def particle_gradient(loss: str | Loss, disc: KernelDiscriminator, kernel, x: ArrayLike, *,
                      get: str = "ntk", block_size: int | None = None) -> Float[Array, "n d"]:
    """``grad_x c(f(x)) = c'(f(x)) grad_x f(x)`` at the particles ``x [n, d]``."""
    loss = get_loss(loss)
    f, g = evaluate(disc, kernel, x, get=get, block_size=block_size)
    dc = jax.vmap(jax.grad(loss.c))(f)
    return dc[:, None] * g


# --------------------------------------------------------------------------- finite width
@dataclasses.dataclass(frozen=True)
class FiniteDiscriminator:
    """A finite-width MLP discriminator ``R^d -> R`` (NTK parameterisation).

    Attributes:
        layer: the network (e.g. ``gantk.kernels.get_kernel("relu", width=128)[0]``), output dim 1.
        antisymmetric: ``f = (g(theta1) - g(theta2)) / sqrt 2`` with ``theta1 = theta2`` at init.
    """

    layer: K.Layer
    antisymmetric: bool = True

    def init(self, key: Array, in_dim: int):
        """Parameters: ``(theta1, theta2)`` if antisymmetric, else ``theta``."""
        out, p = self.layer.init(key, in_dim)
        if out != 1:
            raise ValueError(f"the discriminator network must output 1 value; got {out}")
        return (p, p) if self.antisymmetric else p

    def apply(self, params, x: Array) -> Float[Array, " n"]:
        """``f(x) [n]``."""
        if self.antisymmetric:
            return (self.layer.apply(params[0], x) - self.layer.apply(params[1], x))[:, 0] / math.sqrt(2.0)
        return self.layer.apply(params, x)[:, 0]

    def sgd_step(self, loss: str | Loss, params, x_fake: Array, x_real: Array, lr: float):
        """One full-batch SGD step ascending ``L(f) = mean a(f(fake)) - mean b(f(real))``."""
        loss = get_loss(loss)

        def neg(p):
            return -loss.discriminator_objective(self.apply(p, x_fake), self.apply(p, x_real))

        g = jax.grad(neg)(params)
        return jax.tree.map(lambda p, d: p - lr * d, params, g)

    def particle_gradient(self, loss: str | Loss, params, x: Array) -> Float[Array, "n d"]:
        """``grad_x c(f(x))`` at the particles ``x [n, d]``."""
        loss = get_loss(loss)
        return jax.grad(lambda z: jnp.sum(loss.c(self.apply(params, z))))(x)
