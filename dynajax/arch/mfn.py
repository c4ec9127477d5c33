"""Multiplicative filter networks (Fathony et al. 2021): implicit representations ``x -> u(x)``.

.. math::
    z_1 = g(x; \\theta_1), \\qquad z_{i+1} = (W_i z_i + b_i) \\odot g(x; \\theta_{i+1}),
    \\qquad u(x) = W_{out} z_k + b_{out},

with no activation between layers: the filters do all the non-linearity. Fourier filters
``g(x) = sin(Omega x + phi)`` make ``u`` a linear combination of sinusoids whose frequencies
are sums of the filters' (so ``k`` filters reach ``k`` times the first filter's band);
Gabor filters ``g(x) = exp(-gamma/2 ||x - mu||^2) sin(Omega x + phi)`` localise them.

Initialisation follows the paper: ``Omega`` rows scaled by ``input_scale / sqrt(k)`` (Fourier)
or drawn ``N(0, 1) * input_scale * sqrt(gamma)`` with ``gamma ~ Gamma(alpha / k, beta)``
(Gabor), phases ``U(-pi, pi)``, centres ``mu`` uniform on ``domain``, hidden weights
``U(-sqrt(weight_scale / hidden), +sqrt(...))``.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["FILTERS", "MFN"]

FILTERS = ("fourier", "gabor")


class MFN(nn.Module):
    """A Fourier or Gabor multiplicative filter network.

    Attributes:
        hidden: width of every hidden layer.
        n_filters: number of filters ``k`` (``k - 1`` multiplicative layers), >= 1.
        out: output dimension.
        filter: ``"fourier"`` or ``"gabor"``.
        input_scale: frequency scale of the filters (radians per unit of ``x``).
        weight_scale: scale of the hidden linear layers' uniform init.
        alpha, beta: Gamma-prior shape/rate of the Gabor widths ``gamma``.
        domain: ``(lo, hi)`` box where Gabor centres are drawn.
    """

    hidden: int = 64
    n_filters: int = 4
    out: int = 1
    filter: str = "fourier"
    input_scale: float = 32.0
    weight_scale: float = 1.0
    alpha: float = 6.0
    beta: float = 1.0
    domain: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        if self.filter not in FILTERS:
            raise ValueError(f"unknown filter {self.filter!r}; allowed: {', '.join(FILTERS)}")
        for name in ("hidden", "n_filters", "out"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not self.input_scale > 0:
            raise ValueError(f"input_scale must be > 0, got {self.input_scale}")
        super().__post_init__()

    def _filter(self, i: int, x: Array) -> Array:
        d, k, H = x.shape[-1], self.n_filters, self.hidden
        phi = self.param(f"phi_{i}", lambda key: jax.random.uniform(key, (H,), x.dtype, -math.pi, math.pi))
        if self.filter == "fourier":
            scale = self.input_scale / math.sqrt(k)
            omega = self.param(
                f"omega_{i}", lambda key: scale * jax.random.uniform(key, (d, H), x.dtype, -1.0, 1.0)
            )
            return jnp.sin(x @ omega + phi)
        lo, hi = self.domain

        def gamma_init(key):
            return jax.random.gamma(key, self.alpha / k, (H,), x.dtype) / self.beta

        gamma = self.param(f"gamma_{i}", gamma_init)
        mu = self.param(f"mu_{i}", lambda key: jax.random.uniform(key, (H, d), x.dtype, lo, hi))

        def omega_init(key):
            # Omega ~ N(0, 1) * input_scale * sqrt(gamma): wider bumps get lower frequencies
            return self.input_scale * jax.random.normal(key, (d, H), x.dtype) * jnp.sqrt(gamma)[None, :] / math.sqrt(k)

        omega = self.param(f"omega_{i}", omega_init)
        dist2 = jnp.sum((x[..., None, :] - mu) ** 2, axis=-1)
        return jnp.exp(-0.5 * jnp.abs(gamma) * dist2) * jnp.sin(x @ omega + phi)

    @nn.compact
    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... out"]:
        """Maps points ``[..., d]`` to ``[..., out]``."""
        bound = math.sqrt(self.weight_scale / self.hidden)
        uni = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)
        z = self._filter(0, x)
        for i in range(1, self.n_filters):
            z = nn.Dense(self.hidden, kernel_init=uni, name=f"linear_{i}")(z) * self._filter(i, x)
        return nn.Dense(self.out, kernel_init=uni, name="out")(z)
