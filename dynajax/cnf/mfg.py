"""Mean-field games and control by the Lagrangian method, with the OT-Flow potential.

Ruthotto, Osher, Li, Nurbekyan and Wu Fung (PNAS 2020, "A machine learning framework for
solving high-dimensional mean field game and mean field control problems"). Agents start at
``x ~ rho_0`` and move with ``v = -grad_x Phi``; the potential minimises

    J = E_{rho_0} [ int_0^T ( 1/2 |v|^2 + F(z, rho(z, t)) ) dt + G(z(T), rho(T)) ]
        + alpha_1 E int_0^T |d_t Phi - 1/2 |grad Phi|^2 + F_delta| dt      (HJB residual)
        + alpha_2 E |Phi(z(T), T) - G_delta(z(T))|                         (terminal condition)

(paper eqs. 5-6 and 10-11), where ``F_delta`` and ``G_delta`` are the variational derivatives
of the mean-field costs: the HJB equation is ``-d_t Phi + 1/2 |grad Phi|^2 = F_delta`` with
``Phi(., T) = G_delta``. Densities along the characteristics come for free from the
log-determinant ``l``: ``log rho(z(t), t) = log rho_0(x) - l(t)``.

Costs are small closures ``(z [n, d], t, log_rho [n]) -> (value [n], delta [n])`` (running) and
``(z [n, d], log_rho [n]) -> (value [n], delta [n])`` (terminal): ``value`` is each agent's
share, whose batch mean is the cost, and ``delta`` its variational derivative at the agent.

Dynamic OT (Benamou and Brenier 2000) is the special case with no running cost and the
terminal cost ``alpha_G KL(rho(T) || rho_1)`` (:func:`kl_terminal`); with ``rho_1`` the
standard Gaussian this is OT-Flow (:mod:`dynajax.cnf.otflow`), up to the entropy of
``rho_0``, a constant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from dynajax import _validate
from dynajax.cnf.otflow import characteristics
from dynajax.cnf.potential import Params, Potential

__all__ = [
    "MFGTerms",
    "entropy_congestion",
    "interaction",
    "kl_terminal",
    "mfg_objective",
    "obstacle",
    "quadratic_terminal",
]

RunningCost = Callable[[Array, Array, Array], tuple[Array, Array]]
TerminalCost = Callable[[Array, Array], tuple[Array, Array]]


class MFGTerms(NamedTuple):
    """Batch means of the terms of the MFG objective.

    Attributes:
        kinetic: ``E int 1/2 |v|^2 dt``.
        running: ``E int F dt`` (sum of the running costs).
        terminal: ``E G`` (the terminal cost).
        hjb: ``E int |HJB residual| dt``.
        hjb_terminal: ``E |Phi(z(T), T) - G_delta|``.
    """

    kinetic: Array
    running: Array
    terminal: Array
    hjb: Array
    hjb_terminal: Array


# ------------------------------------------------------------------------------ running costs
def obstacle(Q: Callable[[Array], Array], weight: float = 1.0) -> RunningCost:
    """Preference / obstacle cost ``F = weight E Q(z)``; ``F_delta = weight Q``.

    Args:
        Q: ``[n, d] -> [n]``, e.g. a Gaussian bump over an obstacle (high inside).
        weight: ``lambda_P >= 0``.
    """
    _validate.positive(weight, "weight", strict=False)

    def cost(z, t, log_rho):
        q = weight * Q(z)
        return q, q

    return cost


def entropy_congestion(weight: float = 1.0) -> RunningCost:
    """Congestion by entropy, ``F = weight E_rho log rho``; ``F_delta = weight (log rho + 1)``.

    Agents avoid crowded places (``log rho`` large); needs the densities along the paths.
    """
    _validate.positive(weight, "weight", strict=False)

    def cost(z, t, log_rho):
        return weight * log_rho, weight * (log_rho + 1.0)

    return cost


def interaction(weight: float = 1.0, bandwidth: float = 1.0) -> RunningCost:
    """Interaction cost ``F = weight/2 E_{x,y} K(x, y)``, ``K`` Gaussian of ``bandwidth``.

    ``F_delta(z) = weight E_y K(z, y)``: each agent pays for its neighbours (the batch is the
    empirical ``rho``), an ``O(n^2)`` cost per step.
    """
    _validate.positive(weight, "weight", strict=False)
    _validate.positive(bandwidth, "bandwidth")

    def cost(z, t, log_rho):
        sq = jnp.sum((z[:, None, :] - z[None, :, :]) ** 2, axis=-1)
        k = jnp.mean(jnp.exp(-sq / (2.0 * bandwidth**2)), axis=1)
        return 0.5 * weight * k, weight * k

    return cost


# ----------------------------------------------------------------------------- terminal costs
def kl_terminal(log_rho1: Callable[[Array], Array], weight: float = 1.0) -> TerminalCost:
    """``G = weight KL(rho(T) || rho_1)``; ``G_delta = weight (log rho - log rho_1 + 1)``.

    Args:
        log_rho1: ``[n, d] -> [n]``, the target's normalised log-density.
        weight: ``alpha_G > 0`` (dynamic OT in the limit of a large weight).
    """
    _validate.positive(weight, "weight")

    def cost(z, log_rho):
        g = log_rho - log_rho1(z)
        return weight * g, weight * (g + 1.0)

    return cost


def quadratic_terminal(target: Float[ArrayLike, " d"], weight: float = 1.0) -> TerminalCost:
    """``G = weight/2 E |z - target|^2`` (a common destination); ``G_delta`` the same."""
    target = _validate.finite(jnp.asarray(target, jnp.float32), "target", traced=False)
    _validate.positive(weight, "weight", strict=False)

    def cost(z, log_rho):
        g = 0.5 * weight * jnp.sum((z - target) ** 2, axis=1)
        return g, g

    return cost


# ------------------------------------------------------------------------------ the objective
def mfg_objective(
    potential: Potential,
    params: Params,
    x: Float[ArrayLike, "n d"],
    log_rho0: Float[ArrayLike, " n"],
    *,
    terminal: TerminalCost,
    running: Sequence[RunningCost] = (),
    alpha_hjb: tuple[float, float] = (1.0, 1.0),
    t_span: tuple[float, float] = (0.0, 1.0),
    n_steps: int = 8,
    solver: str = "rk4",
) -> tuple[Array, MFGTerms]:
    """The Lagrangian MFG objective (module docstring) on a batch of agents.

    Args:
        potential, params: the potential ``Phi`` (:class:`~dynajax.cnf.Potential`).
        x: starting positions ``[n, d]``, samples of ``rho_0``.
        log_rho0: ``log rho_0(x) [n]`` (normalised; needed by density-dependent costs).
        terminal: the terminal cost (:func:`kl_terminal`, :func:`quadratic_terminal`).
        running: running costs besides the kinetic energy (:func:`obstacle`,
            :func:`entropy_congestion`, :func:`interaction`); their sum is ``F``.
        alpha_hjb: ``(alpha_1, alpha_2)``, weights of the HJB residual and of the terminal
            condition, non-negative.
        t_span, n_steps, solver: see :func:`dynajax.cnf.characteristics`.

    Returns:
        ``(J, MFGTerms)``.
    """
    x = _validate.points(x, "x")
    log_rho0 = jnp.asarray(log_rho0, jnp.result_type(x.dtype, jnp.float32))
    if log_rho0.shape != x.shape[:1]:
        raise ValueError(f"log_rho0 must have shape [{x.shape[0]}] (one per agent), got {log_rho0.shape}")
    if len(alpha_hjb) != 2:
        raise ValueError(f"alpha_hjb must be (alpha_1, alpha_2), got {alpha_hjb!r}")
    a1 = _validate.positive(alpha_hjb[0], "alpha_hjb[0]", strict=False)
    a2 = _validate.positive(alpha_hjb[1], "alpha_hjb[1]", strict=False)
    running = tuple(running)

    hook = None
    if running:
        def hook(z, t, logdet):
            outs = [c(z, t, log_rho0 - logdet) for c in running]
            return sum(o[0] for o in outs), sum(o[1] for o in outs)

    ch = characteristics(potential, params, x, t_span=t_span, n_steps=n_steps, solver=solver, running=hook)
    g, g_delta = terminal(ch.z, log_rho0 - ch.logdet)
    phi_T = potential(params, ch.z, t_span[1])
    terms = MFGTerms(
        kinetic=jnp.mean(ch.kinetic),
        running=jnp.mean(ch.running),
        terminal=jnp.mean(g),
        hjb=jnp.mean(ch.hjb),
        hjb_terminal=jnp.mean(jnp.abs(phi_T - g_delta)),
    )
    J = terms.kinetic + terms.running + terms.terminal + a1 * terms.hjb + a2 * terms.hjb_terminal
    return J, terms
