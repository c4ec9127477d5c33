"""The OT-Flow potential ``Phi(x, t)``, its gradient and the exact trace of its Hessian.

Onken, Wu Fung, Li and Ruthotto (AAAI 2021, "OT-Flow: fast and accurate continuous normalizing
flows via optimal transport"), Sec. 3 ("Network and Potential"):

    Phi(s) = w^T N(s) + 1/2 s^T (A^T A) s + b^T s + c,        s = (x, t) in R^{d+1},

with ``A [r, d+1]`` (rank ``r = min(10, d)`` in the paper), ``b [d+1]``, ``c`` a scalar and
``N: R^{d+1} -> R^m`` a ResNet of ``n_layers = M`` layers and width ``m``:

    u_0 = sigma(K_0 s + b_0),    u_i = u_{i-1} + h sigma(K_i u_{i-1} + b_i),  i = 1..M-1,

``h = 1 / (M - 1)``, ``N(s) = u_{M-1}`` and the activation ``sigma(a) = log(exp(a) + exp(-a))``,
the antiderivative of ``tanh`` (so ``sigma' = tanh``, ``sigma'' = 1 - tanh^2``).

Conventions:

* Points come as a batch ``x [n, d]`` with one time ``t`` (a scalar) or one per point
  (``[n]``); ``Phi`` is dimensionless, ``t`` in the units of the flow's time interval.
* :meth:`Potential.grad` is the closed-form backward pass (paper eq. 12): ``z_{M} = w``,
  ``z_i = z_{i+1} + h K_i^T (tanh(a_i) * z_{i+1})``, ``grad_s (w^T N) = K_0^T (tanh(a_0) * z_1)``.
* :meth:`Potential.grad_and_laplacian` adds the exact trace of the ``x``-block of the Hessian
  (the time row and column are excluded), accumulated forward through the layers with the
  Jacobians ``J_i = d u_i / d x [m, d]`` (paper eqs. 13-15)::

      t_0 = sum_j sigma''(a_0)_j z_{1,j} |(K_0 E)_j|^2,            J_0 = diag(tanh a_0) K_0 E,
      t_i = h sum_j sigma''(a_i)_j z_{i+1,j} |(K_i J_{i-1})_j|^2,  J_i = J_{i-1} + h diag(tanh a_i) K_i J_{i-1},
      tr(grad_x^2 Phi) = sum_i t_i + |A E|_F^2,

  ``E`` the first ``d`` columns of the identity. The cost is ``O(n m^2 d)`` per layer. When
  ``d > m`` the layers carry the Gram matrices ``S_i = J_i J_i^T [m, m]`` instead
  (``|(K_i J_{i-1})_j|^2 = (K_i S_{i-1} K_i^T)_jj``), ``O(n m^3)`` per layer after one
  ``O(m^2 d)`` product: the same numbers, independent of ``d`` past the first layer.

The parameters are a plain dict (a pytree): they ``jit``, ``vmap`` over seeds and go straight
into :mod:`optax`; :class:`Potential` holds the sizes only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from dynajax import _validate

__all__ = ["Potential", "log_cosh"]

Params = dict


def log_cosh(a: ArrayLike) -> Array:
    """``sigma(a) = log(exp(a) + exp(-a))``, the antiderivative of ``tanh``, overflow-free."""
    a = jnp.asarray(a)
    m = jnp.abs(a)
    return m + jnp.log1p(jnp.exp(-2.0 * m))


def _dsigma2(a):
    th = jnp.tanh(a)
    return th, 1.0 - th * th


@dataclasses.dataclass(frozen=True)
class Potential:
    """Sizes of the OT-Flow potential (see the module docstring for the formula).

    Attributes:
        dim: space dimension ``d >= 1`` (the potential takes ``s = (x, t)`` in ``R^{d+1}``).
        width: ResNet width ``m >= 1``.
        n_layers: ResNet layers ``M >= 1`` (one opening layer and ``M - 1`` residual ones).
        rank: rank ``r`` of the quadratic term ``A^T A``; ``None`` = ``min(10, d)`` (the paper).
    """

    dim: int
    width: int = 32
    n_layers: int = 2
    rank: int | None = None

    def __post_init__(self):
        _validate.integer(self.dim, "dim")
        _validate.integer(self.width, "width")
        _validate.integer(self.n_layers, "n_layers")
        if self.rank is not None:
            _validate.integer(self.rank, "rank")

    @property
    def r(self) -> int:
        """The rank of ``A`` in use."""
        return min(10, self.dim) if self.rank is None else self.rank

    @property
    def h(self) -> float:
        """ResNet step ``1 / (M - 1)`` (1 when there is no residual layer)."""
        return 1.0 / max(self.n_layers - 1, 1)

    # ------------------------------------------------------------------ parameters
    def init(self, *, key: PRNGKeyArray, dtype=jnp.float32) -> Params:
        """Random parameters: ``K_i`` uniform in ``+-1/sqrt(fan_in)`` (PyTorch's ``Linear``
        default, as the authors' code), ``b_i`` likewise, ``w = 1``, ``A`` Xavier-uniform,
        ``b = 0``, ``c = 0``.

        Returns:
            ``{"K0" [m, d+1], "b0" [m], "K" [M-1, m, m], "bK" [M-1, m], "w" [m],
            "A" [r, d+1], "b" [d+1], "c" []}``.
        """
        return _init(self, key, jnp.dtype(dtype))

    def _init(self, key, dtype) -> Params:
        d1, m, nres = self.dim + 1, self.width, self.n_layers - 1
        k0, kb0, kk, kbk, ka = jax.random.split(key, 5)
        u = lambda k, shape, fan: jax.random.uniform(k, shape, dtype, -1.0, 1.0) / jnp.sqrt(fan)  # noqa: E731
        lim = jnp.sqrt(6.0 / (self.r + d1))
        return {
            "K0": u(k0, (m, d1), d1),
            "b0": u(kb0, (m,), d1),
            "K": u(kk, (nres, m, m), m),
            "bK": u(kbk, (nres, m), m),
            "w": jnp.ones((m,), dtype),
            "A": jax.random.uniform(ka, (self.r, d1), dtype, -lim, lim),
            "b": jnp.zeros((d1,), dtype),
            "c": jnp.zeros((), dtype),
        }

    # ------------------------------------------------------------------ evaluation
    # (a jitted twin of _init is defined below the class)
    def _s(self, x, t):
        x = _validate.points(x, "x")
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [n, {self.dim}] (the potential's dim), got {x.shape}")
        t = jnp.asarray(_validate.finite(t, "t", traced=False), x.dtype)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
            raise ValueError(f"t must be a scalar or have shape [{x.shape[0]}], got {t.shape}")
        t = jnp.broadcast_to(t, x.shape[:1])
        return jnp.concatenate([x, t[:, None]], axis=1)

    def _forward(self, p, s):
        """Pre-activations ``a_i [n, m]`` and states ``u_i [n, m]`` of every layer."""
        a = s @ p["K0"].T + p["b0"]
        u = log_cosh(a)
        acts, us = [a], [u]
        for i in range(self.n_layers - 1):
            a = u @ p["K"][i].T + p["bK"][i]
            u = u + self.h * log_cosh(a)
            acts.append(a)
            us.append(u)
        return acts, us

    def _backward(self, p, acts):
        """``z_1, ..., z_M`` (``z_M = w``) and ``grad_s (w^T N) [n, d+1]``."""
        z = jnp.broadcast_to(p["w"], acts[0].shape)
        zs = [z]
        for i in range(self.n_layers - 1, 0, -1):
            z = z + self.h * (jnp.tanh(acts[i]) * z) @ p["K"][i - 1]
            zs.append(z)
        zs = zs[::-1]  # zs[i] = z_{i+1}: the adjoint entering layer i
        return zs, (jnp.tanh(acts[0]) * zs[0]) @ p["K0"]

    def __call__(self, params: Params, x: Float[ArrayLike, "n d"], t: Float[ArrayLike, "*n"]) -> Float[Array, " n"]:
        """``Phi(x, t) [n]``."""
        s = self._s(x, t)
        _, us = self._forward(params, s)
        quad = 0.5 * jnp.sum((s @ params["A"].T) ** 2, axis=1)
        return us[-1] @ params["w"] + quad + s @ params["b"] + params["c"]

    def grad(self, params: Params, x: Float[ArrayLike, "n d"], t: Float[ArrayLike, "*n"]) -> tuple[Float[Array, "n d"], Float[Array, " n"]]:
        """``(grad_x Phi [n, d], d_t Phi [n])`` by the closed-form backward pass."""
        g, _ = self._grad_s(params, self._s(x, t))
        return g[:, : self.dim], g[:, self.dim]

    def _grad_s(self, p, s):
        acts, _ = self._forward(p, s)
        zs, gn = self._backward(p, acts)
        ata = p["A"].T @ p["A"]
        return gn + s @ ata + p["b"], (acts, zs)

    def grad_and_laplacian(
        self, params: Params, x: Float[ArrayLike, "n d"], t: Float[ArrayLike, "*n"]
    ) -> tuple[Float[Array, "n d"], Float[Array, " n"], Float[Array, " n"]]:
        """``(grad_x Phi [n, d], d_t Phi [n], tr(grad_x^2 Phi) [n])``, the trace exact.

        The trace is the closed form of the module docstring (Onken et al. 2021, eqs. 13-15),
        computed with the gradient in one forward and one backward sweep.
        """
        p, d, h = params, self.dim, self.h
        s = self._s(x, t)
        g, (acts, zs) = self._grad_s(p, s)
        k0e = p["K0"][:, :d]  # [m, d]
        th, dd = _dsigma2(acts[0])
        tr = (dd * zs[0]) @ jnp.sum(k0e * k0e, axis=1)
        if d <= self.width:
            # carry the Jacobians J_i [n, m, d]: O(n m^2 d) per layer
            jac = th[:, :, None] * k0e[None]
            for i in range(1, self.n_layers):
                kj = jnp.einsum("jk,nkd->njd", p["K"][i - 1], jac)
                th, dd = _dsigma2(acts[i])
                tr = tr + h * jnp.sum(dd * zs[i] * jnp.sum(kj * kj, axis=2), axis=1)
                jac = jac + h * th[:, :, None] * kj
        else:
            # d > m: carry the Gram matrices S_i = J_i J_i^T [n, m, m] instead, O(n m^3) per
            # layer: |(K_i J_{i-1})_j|^2 = (K_i S_{i-1} K_i^T)_jj and
            # S_i = (I + h D_i K_i) S_{i-1} (I + h D_i K_i)^T with D_i = diag(tanh a_i)
            gram = th[:, :, None] * (k0e @ k0e.T)[None] * th[:, None, :]
            for i in range(1, self.n_layers):
                K = p["K"][i - 1]
                ks = jnp.einsum("jk,nkl->njl", K, gram)  # K S
                ksk = jnp.einsum("njl,kl->njk", ks, K)  # K S K^T
                th, dd = _dsigma2(acts[i])
                tr = tr + h * jnp.sum(dd * zs[i] * jnp.diagonal(ksk, axis1=1, axis2=2), axis=1)
                dks = th[:, :, None] * ks
                gram = gram + h * (dks + jnp.swapaxes(dks, 1, 2)) + h * h * th[:, :, None] * ksk * th[:, None, :]
        tr = tr + jnp.sum(p["A"][:, :d] ** 2)
        return g[:, :d], g[:, d], tr


_init = jax.jit(Potential._init, static_argnums=(0, 2))
