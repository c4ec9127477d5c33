"""GP-flows: flows of the latent space that preserve the standard Gaussian, to straighten a flow.

Morel, Drumetz, Benaichouche, Courty and Rousseau (TMLR 2023, "Turning normalizing flows into
Monge maps with geodesic Gaussian preserving flows"). Given an invertible ``T`` pushing
``gamma = N(0, I_d)`` to the data, any map ``s`` with ``s # gamma = gamma`` gives
``(T o s) # gamma = T # gamma``: the same density, another map. By Brenier's polar
factorisation the optimal map is ``T o s`` for some such ``s``, so one learns ``s`` to lower
the transport cost ``E_gamma |z - T(s(z))|^2`` towards ``W_2^2(gamma, T # gamma)``.

Gaussian preservation by construction. ``s`` is the time-1 flow of an autonomous velocity
``v`` with ``div(gamma v) = 0``. For any antisymmetric matrix field ``A(x)`` (``A^T = -A``),

    gamma v = div(gamma A)   (row-wise: (gamma v)_i = sum_j d_j (gamma A_ij)),
    v(x) = div A(x) - A(x) x,

has ``div(gamma v) = sum_ij d_i d_j (gamma A_ij) = 0``. In 2-D, ``A = [[0, psi], [-psi, 0]]``
gives the stream-function form ``gamma v = curl(gamma psi) = (d_2, -d_1)(gamma psi)``; in
higher dimensions the network outputs the ``d(d-1)/2`` entries of ``A``
(:class:`AntisymmetricField` covers both). Along the flow ``d/dt log gamma(x(t)) + div v = div_gamma v =
div v - x . v = 0``, so the log-determinant of ``s`` equals ``log gamma(z) - log gamma(s(z))``
(zero with respect to the Gaussian density); RK4 keeps this up to its discretisation error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from dynajax import _validate
from dynajax.solve import integrate

__all__ = [
    "AntisymmetricField",
    "gaussian_divergence",
    "gp_flow",
    "gp_transport_cost",
]


class _MLP(nn.Module):
    hidden: Sequence[int]
    out: int

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = jnp.tanh(nn.Dense(h)(x))
        return nn.Dense(self.out, kernel_init=nn.initializers.normal(1e-2))(x)


def _velocity(entries: Callable[[Array], Array], d: int, x: Array) -> Array:
    """``v = div A - A x`` at one point ``x [d]``, ``A`` built from its upper entries."""
    iu = np.triu_indices(d, 1)

    def amat(y):
        a = jnp.zeros((d, d), y.dtype).at[iu].set(entries(y))
        return a - a.T

    a, jac = amat(x), jax.jacfwd(amat)(x)  # jac[i, j, k] = d_k A_ij
    return jnp.einsum("ijj->i", jac) - a @ x


@dataclasses.dataclass(frozen=True)
class AntisymmetricField:
    """Gaussian-preserving velocity ``v(x) = div A(x) - A(x) x``, ``A`` antisymmetric.

    An MLP (tanh, ``hidden`` widths, last layer initialised near zero, so ``v`` starts near 0)
    outputs the ``d(d-1)/2`` upper-triangular entries of ``A(x)``; ``div A`` comes from its
    Jacobian (forward mode, ``d`` JVPs per point). ``div(N(0, I) v) = 0`` holds exactly for
    any weights. In 2-D this is the stream-function form with ``psi = A_12``:
    ``v = (d_2 psi - psi x_2, -d_1 psi + psi x_1) = curl(gamma psi) / gamma``.

    Attributes:
        dim: dimension ``d >= 2``.
        hidden: hidden widths of the MLP.

    ``init(key=) -> params``; ``__call__(params, x [n, d]) -> v [n, d]``.
    """

    dim: int
    hidden: tuple[int, ...] = (64, 64)

    def __post_init__(self):
        if _validate.integer(self.dim, "dim") < 2:
            raise ValueError(f"a Gaussian-preserving field needs dim >= 2, got {self.dim}")

    @property
    def _mlp(self) -> _MLP:
        return _MLP(tuple(self.hidden), self.dim * (self.dim - 1) // 2)

    def init(self, *, key: PRNGKeyArray) -> dict:
        """Parameters of the MLP of ``A``."""
        return self._mlp.init(key, jnp.zeros((self.dim,), jnp.float32))

    def __call__(self, params: dict, x: Float[ArrayLike, "n d"]) -> Float[Array, "n d"]:
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [n, {self.dim}], got {x.shape}")
        mlp = self._mlp
        return jax.vmap(lambda xi: _velocity(lambda y: mlp.apply(params, y), self.dim, xi))(x)


def gaussian_divergence(v: Callable[[Array], Array], x: Float[ArrayLike, "n d"]) -> Float[Array, " n"]:
    """``div_gamma v = div v - x . v`` per point: zero for a field preserving ``N(0, I)``.

    Args:
        v: batched field ``[n, d] -> [n, d]`` (e.g. ``lambda x: field.apply(params, x)``).
        x: points ``[n, d]``.
    """
    x = _validate.points(x, "x")
    one = lambda xi: v(xi[None])[0]  # noqa: E731
    div = jax.vmap(lambda xi: jnp.trace(jax.jacfwd(one)(xi)))(x)
    return div - jnp.sum(x * v(x), axis=1)


def gp_flow(
    v: Callable[[Array], Array],
    z: Float[ArrayLike, "n d"],
    *,
    t1: float = 1.0,
    n_steps: int = 8,
    solver: str = "rk4",
    path: bool = False,
) -> Float[Array, "*steps n d"]:
    """``s(z)``: the time-``t1`` flow of the autonomous field ``v`` (batched ``[n, d] -> [n, d]``).

    Args:
        v: the velocity, e.g. ``lambda x: field.apply(params, x)``.
        z: starting points ``[n, d]``.
        t1: flow time (``> 0``; ``s`` of time ``-t1`` is the inverse: integrate ``-v``).
        n_steps: fixed steps of ``solver``.
        path: return the states ``[n_steps + 1, n, d]`` along the way.
    """
    z = _validate.points(z, "z")
    z = z.astype(jnp.result_type(z.dtype, jnp.float32))
    _validate.positive(t1, "t1")
    n_steps = _validate.integer(n_steps, "n_steps")
    ts = np.linspace(0.0, float(t1), n_steps + 1).astype(np.dtype(z.dtype))
    ys = integrate(lambda t, y, a: v(y), z, ts, solver=solver, dt0=float(t1) / n_steps)
    return ys if path else ys[-1]


def gp_transport_cost(
    T: Callable[[Array], Array], s_of_z: Float[ArrayLike, "n d"], z: Float[ArrayLike, "n d"]
) -> Array:
    """``E |z - T(s(z))|^2``, the transport cost of the map ``T o s`` (mean over the batch).

    Args:
        T: the normalizing flow's map, ``[n, d] -> [n, d]`` (log-determinant dropped).
        s_of_z: ``s(z)`` from :func:`gp_flow`; z: the Gaussian samples ``[n, d]``.
    """
    return jnp.mean(jnp.sum((jnp.asarray(z) - T(jnp.asarray(s_of_z))) ** 2, axis=1))
