"""The explicit adjoint of thesis chapter 1 (Thm 1.1, eqs. 1.7-1.8) for small ODEs.

For ``dX/dt = F_theta(X)`` on ``[0, T]`` and the cost (eq. 1.4, ``gamma = 0``)

.. math::

    J = \\alpha \\int_0^T j(t, X_t)\\,dt + \\beta j_T(X_T),

the multiplier ``lambda`` solves, backwards in time (eq. 1.8),

.. math::

    \\dot\\lambda_t = -(\\partial_X F_\\theta(X_t))^* \\lambda_t + \\alpha \\nabla_X j(t, X_t),
    \\qquad \\lambda_T = -\\beta \\nabla_X j_T(X_T),

and ``grad_theta J = -int_0^T <lambda_t, dF_theta(X_t)/dtheta> dt - <lambda_0, dg/dtheta>``
(eq. 1.7): ``lambda = -dJ/dX_t``, minus the usual adjoint state. :func:`adjoint_gradient`
integrates eq. 1.8 by hand (Heun's method backwards on the grid of a given trajectory, the
``theta``-integral by the trapezoid rule: second order in the grid step), so it can be fed
a perturbed trajectory to check Prop. 1.2's robustness. :func:`euler_objective` is the
discretise-then-optimise objective whose autodiff gradient converges to it at ``O(dt)``.
The vector field is ``field(theta, x) -> dx/dt`` on flat states ``[d]``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

__all__ = ["adjoint_gradient", "euler_objective", "trajectory"]

Field = Callable[[PyTree, Array], Array]


def _check_steps(n_steps) -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    return n_steps


def trajectory(field: Field, theta, x0: Float[Array, " d"], t1: float, n_steps: int,
               method: str = "rk4") -> Float[Array, "n_steps+1 d"]:
    """States on the uniform grid ``t_k = k t1 / n_steps`` by classic RK4 or explicit Euler."""
    n_steps = _check_steps(n_steps)
    if method not in ("rk4", "euler"):
        raise ValueError(f"unknown method {method!r}; allowed: 'rk4', 'euler'")
    h = t1 / n_steps
    f = lambda x: field(theta, x)

    def step(x, _):
        if method == "euler":
            x = x + h * f(x)
        else:
            k1 = f(x)
            k2 = f(x + 0.5 * h * k1)
            k3 = f(x + 0.5 * h * k2)
            k4 = f(x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return x, x

    _, xs = jax.lax.scan(step, x0, None, length=n_steps)
    return jnp.concatenate([x0[None], xs])


def adjoint_gradient(
    field: Field,
    theta,
    xs: Float[Array, "N+1 d"],
    t1: float,
    *,
    running: Callable[[Array, Array], Array] | None = None,
    terminal: Callable[[Array], Array] | None = None,
    alpha: float = 1.0,
    beta: float = 1.0,
) -> tuple[PyTree, Float[Array, "N+1 d"]]:
    """``(grad_theta J, lambda)`` from eqs. 1.7-1.8 along the trajectory ``xs`` (grid of ``t1``).

    Args:
        field: ``field(theta, x) -> dx/dt``.
        theta: parameters (pytree).
        xs: the forward trajectory on a uniform grid of ``[0, t1]`` (possibly perturbed).
        running: ``j(t, x) -> scalar`` (``None``: no running cost).
        terminal: ``j_T(x) -> scalar`` (``None``: no terminal cost).
        alpha, beta: weights of eq. 1.4.

    Returns:
        The gradient of ``J`` with respect to ``theta`` through ``F`` only (the initial-state
        term of eq. 1.7 is ``-<lambda_0, dg/dtheta>``: ``dJ/dX_0 = -lambda[0]``), and
        ``lambda`` on the grid ``[N + 1, d]``.
    """
    n = xs.shape[0] - 1
    _check_steps(int(n))
    h = t1 / n
    ts = jnp.linspace(0.0, t1, n + 1, dtype=xs.dtype)
    zero = lambda t, x: jnp.zeros((), x.dtype)
    grad_j = jax.grad(running if running is not None else zero, argnums=1)

    def rhs(t, x, lam):
        _, vjp = jax.vjp(lambda y: field(theta, y), x)
        return -vjp(lam)[0] + alpha * grad_j(t, x)

    def theta_term(x, lam):  # <lambda, dF/dtheta>
        _, vjp = jax.vjp(lambda th: field(th, x), theta)
        return vjp(lam)[0]

    lam_T = (-beta * jax.grad(terminal)(xs[-1])) if terminal is not None else jnp.zeros_like(xs[-1])

    def back(lam, k):  # Heun from t_{k+1} to t_k (backwards)
        g1 = rhs(ts[k + 1], xs[k + 1], lam)
        pred = lam - h * g1
        lam_k = lam - 0.5 * h * (g1 + rhs(ts[k], xs[k], pred))
        return lam_k, lam_k

    _, lams = jax.lax.scan(back, lam_T, jnp.arange(n - 1, -1, -1))
    lams = jnp.concatenate([lams[::-1], lam_T[None]])
    terms = jax.vmap(theta_term)(xs, lams)  # leading grid axis on every leaf
    w = jnp.full((n + 1,), h, xs.dtype).at[0].set(h / 2).at[-1].set(h / 2)
    grad = jax.tree_util.tree_map(lambda a: -jnp.tensordot(w, a, axes=1), terms)
    return grad, lams


def euler_objective(field: Field, theta, x0, t1: float, n_steps: int, *, running=None, terminal=None,
                    alpha: float = 1.0, beta: float = 1.0) -> Array:
    """Discretise-then-optimise ``J``: explicit Euler states, left Riemann sum of ``j``."""
    xs = trajectory(field, theta, x0, t1, n_steps, method="euler")
    h = t1 / n_steps
    J = jnp.zeros((), xs.dtype)
    if running is not None:
        ts = jnp.linspace(0.0, t1, n_steps + 1, dtype=xs.dtype)
        J = J + alpha * h * jnp.sum(jax.vmap(running)(ts[:-1], xs[:-1]))
    if terminal is not None:
        J = J + beta * terminal(xs[-1])
    return J
