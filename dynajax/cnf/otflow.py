"""OT-Flow: a continuous normalizing flow along the gradient of a potential, with a transport cost.

Onken, Wu Fung, Li and Ruthotto (AAAI 2021), Sec. 3. Data ``x ~ rho_0`` flow to the standard
Gaussian ``rho_1 = N(0, I_d)`` over ``t in [0, T]`` along

    dz/dt = -grad_x Phi(z, t),                                   z(0) = x,
    dl/dt = -tr(grad_x^2 Phi(z, t))      (= div of the velocity),  l(0) = 0,
    dL/dt = 1/2 |grad_x Phi(z, t)|^2     (kinetic energy),        L(0) = 0,
    dR/dt = |d_t Phi - 1/2 |grad_x Phi|^2|  (HJB residual),          R(0) = 0,

(paper eq. 10), all integrated together by :func:`dynajax.integrate` (RK4, ``n_steps`` fixed
steps, the paper's ``nt``). With ``C = -log rho_1(z(T)) - l(T)`` (the negative log-likelihood
of ``x`` under the model, in nats), the objective is

    J = E_{rho_0} [alpha_L L(T) + alpha_C C + alpha_R R(T)]        (paper eq. 9).

At the optimum of dynamic OT (Benamou and Brenier 2000) ``2 L(T) / T`` is ``W_2^2(rho_0,
rho_1)``; ``alpha_C`` weighs how closely the endpoint must match ``rho_1`` (a finite weight
leaves the map short of ``rho_1``), and the HJB penalty ``R`` steers ``Phi`` towards the
value function of the OT problem.

Log-densities: ``log rho_0^model(x) = log rho_1(z(T)) + l(T)``. Sampling runs the flow
backwards from ``z ~ rho_1`` (``reverse=True``); there ``l`` is the log-determinant of the
inverse map, and ``log rho_0^model(x) = log rho_1(z) - l``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from dynajax import _validate
from dynajax.cnf.potential import Params, Potential
from dynajax.solve import integrate
from dynajax.train import make_step
from dynajax.train.step import StepFn

__all__ = [
    "Characteristics",
    "OTFlowLoss",
    "characteristics",
    "otflow_log_density",
    "otflow_loss",
    "otflow_sample",
    "otflow_step",
    "standard_normal_logpdf",
]

# ``running(z [n, d], t, logdet [n]) -> (F [n], F_delta [n])``: a running cost per particle
# and its variational derivative (the right-hand side of the HJB equation); see dynajax.cnf.mfg.
RunningHook = Callable[[Array, Array, Array], tuple[Array, Array]]


class Characteristics(NamedTuple):
    """The state carried along the characteristics (each field ``[n]`` or ``[n, d]``;
    with ``path=True`` a leading axis ``[n_steps + 1]`` over the time grid).

    Attributes:
        z: positions.
        logdet: ``l``, the log-determinant of the map's Jacobian (of the inverse map when
            integrated with ``reverse=True``).
        kinetic: ``L``, the kinetic energy ``int 1/2 |v|^2 dt`` per particle.
        hjb: ``R``, the time integral of the absolute HJB residual.
        running: the time integral of the running cost (0 without a running cost).
    """

    z: Array
    logdet: Array
    kinetic: Array
    hjb: Array
    running: Array


class OTFlowLoss(NamedTuple):
    """Means over the batch of the three terms of the OT-Flow objective (all in nats or in
    squared units of ``x`` per unit time, as the paper)."""

    L: Array
    C: Array
    R: Array


def standard_normal_logpdf(z: Float[ArrayLike, "n d"]) -> Float[Array, " n"]:
    """``log N(z; 0, I_d)`` per row."""
    z = jnp.asarray(z)
    return -0.5 * jnp.sum(z * z, axis=-1) - 0.5 * z.shape[-1] * jnp.log(2.0 * jnp.pi)


def _grid(t_span, n_steps):
    t0, t1 = (float(v) for v in t_span)
    if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
        raise ValueError(f"t_span must be two finite times t0 < t1, got {t_span!r}")
    n_steps = _validate.integer(n_steps, "n_steps")
    return t0, t1, np.linspace(t0, t1, n_steps + 1), (t1 - t0) / n_steps


def characteristics(
    potential: Potential,
    params: Params,
    x: Float[ArrayLike, "n d"],
    *,
    t_span: tuple[float, float] = (0.0, 1.0),
    n_steps: int = 8,
    solver: str = "rk4",
    reverse: bool = False,
    running: RunningHook | None = None,
    path: bool = False,
) -> Characteristics:
    """Integrates positions, log-determinant, kinetic energy, HJB residual (and running cost).

    Args:
        potential: the sizes of ``Phi``; params: its parameters.
        x: starting points ``[n, d]`` (at ``t0``; at ``t1`` with ``reverse=True``).
        t_span: ``(t0, t1)``, ``t0 < t1``.
        n_steps: fixed steps of ``solver`` over the span (the paper's ``nt``).
        solver: a fixed-step solver name of :func:`dynajax.integrate`.
        reverse: run from ``t1`` back to ``t0`` (sampling); the accumulated ``logdet`` is then
            that of the inverse map and ``kinetic``/``hjb``/``running`` the same integrals.
        running: optional running cost ``(z, t, logdet) -> (F [n], F_delta [n])`` (mean-field
            games, :mod:`dynajax.cnf.mfg`): ``F`` is integrated into ``running`` and ``F_delta``
            enters the HJB residual ``|d_t Phi - 1/2 |grad Phi|^2 + F_delta|``.
        path: return the state at every step (leading axis ``[n_steps + 1]``) instead of the
            end state.

    Returns:
        :class:`Characteristics`.
    """
    x = _validate.points(x, "x")
    if x.shape[1] != potential.dim:
        raise ValueError(f"x has dimension {x.shape[1]}, the potential dim={potential.dim}")
    x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    t0, t1, ts, dt = _grid(t_span, n_steps)
    sign = -1.0 if reverse else 1.0

    def field(tau, y, p):
        t = t1 - tau + t0 if reverse else tau
        g, gt, lap = potential.grad_and_laplacian(p, y.z, t)
        kin = 0.5 * jnp.sum(g * g, axis=1)
        if running is None:
            f = fd = jnp.zeros_like(kin)
        else:
            f, fd = running(y.z, t, y.logdet)
        return Characteristics(
            z=-sign * g,
            logdet=-sign * lap,
            kinetic=kin,
            hjb=jnp.abs(gt - kin + fd),
            running=f,
        )

    zero = jnp.zeros(x.shape[:1], x.dtype)
    y0 = Characteristics(x, zero, zero, zero, zero)
    ys = integrate(field, y0, ts.astype(np.dtype(x.dtype)), solver=solver, dt0=dt, args=params)
    return ys if path else jax.tree_util.tree_map(lambda a: a[-1], ys)


def _alpha(alpha):
    if len(alpha) != 3:
        raise ValueError(f"alpha must be (alpha_L, alpha_C, alpha_R), got {alpha!r}")
    for name, a in zip(("alpha_L", "alpha_C", "alpha_R"), alpha):
        _validate.positive(a, name, strict=False)
    return alpha


def otflow_loss(
    potential: Potential,
    params: Params,
    x: Float[ArrayLike, "n d"],
    *,
    alpha: tuple[float, float, float] = (1.0, 100.0, 5.0),
    t_span: tuple[float, float] = (0.0, 1.0),
    n_steps: int = 8,
    solver: str = "rk4",
) -> tuple[Array, OTFlowLoss]:
    """The OT-Flow objective ``alpha_L L + alpha_C C + alpha_R R`` on a batch of data.

    Args:
        potential, params: the potential ``Phi``.
        x: data ``[n, d]`` (samples of ``rho_0``).
        alpha: ``(alpha_L, alpha_C, alpha_R)``, non-negative; the default ``(1, 100, 5)`` is the
            authors' setting for the 2-D toy problems.
        t_span, n_steps, solver: see :func:`characteristics`.

    Returns:
        ``(J, OTFlowLoss(L, C, R))``: the scalar objective and its three batch means
        (``C`` is the mean negative log-likelihood in nats).
    """
    a_l, a_c, a_r = _alpha(alpha)
    ch = characteristics(potential, params, x, t_span=t_span, n_steps=n_steps, solver=solver)
    L = jnp.mean(ch.kinetic)
    C = -jnp.mean(standard_normal_logpdf(ch.z) + ch.logdet)
    R = jnp.mean(ch.hjb)
    return a_l * L + a_c * C + a_r * R, OTFlowLoss(L, C, R)


def otflow_step(
    potential: Potential,
    optimizer,
    *,
    alpha: tuple[float, float, float] = (1.0, 100.0, 5.0),
    t_span: tuple[float, float] = (0.0, 1.0),
    n_steps: int = 8,
    solver: str = "rk4",
) -> StepFn:
    """The training step of :func:`otflow_loss` for :func:`dynajax.train.fit`.

    Args:
        potential: the potential's sizes; optimizer: an optax transformation.
        alpha, t_span, n_steps, solver: see :func:`otflow_loss`.

    Returns:
        ``step(state, batch [n, d]) -> (state, metrics)`` with metrics ``loss``, ``L``, ``C``
        and ``R`` (see :func:`dynajax.train.make_step`).
    """
    _alpha(alpha)

    def loss(params, batch, key):
        J, t = otflow_loss(potential, params, batch, alpha=alpha, t_span=t_span, n_steps=n_steps, solver=solver)
        return J, {"L": t.L, "C": t.C, "R": t.R}

    return make_step(loss, optimizer)


def otflow_log_density(
    potential: Potential,
    params: Params,
    x: Float[ArrayLike, "n d"],
    *,
    t_span: tuple[float, float] = (0.0, 1.0),
    n_steps: int = 8,
    solver: str = "rk4",
) -> Float[Array, " n"]:
    """``log rho_0^model(x) = log N(z(T); 0, I) + l(T)`` per point (nats)."""
    ch = characteristics(potential, params, x, t_span=t_span, n_steps=n_steps, solver=solver)
    return standard_normal_logpdf(ch.z) + ch.logdet


def otflow_sample(
    potential: Potential,
    params: Params,
    n: int,
    *,
    key: PRNGKeyArray,
    t_span: tuple[float, float] = (0.0, 1.0),
    n_steps: int = 8,
    solver: str = "rk4",
) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
    """Samples of the model by the inverse flow from ``z ~ N(0, I)``.

    Returns:
        ``(x [n, d], log rho_0^model(x) [n])``.
    """
    n = _validate.integer(n, "n")
    z = jax.random.normal(key, (n, potential.dim), jnp.float32)
    ch = characteristics(potential, params, z, t_span=t_span, n_steps=n_steps, solver=solver, reverse=True)
    return ch.z, standard_normal_logpdf(z) - ch.logdet
