"""The networks of ``f`` and every ``g_e`` in the LEADS experiments (Yin et al. 2021, Sec. 4).

* Lotka-Volterra and the linear ODE: dense fields on ``[..., d]`` (:func:`mlp_field`,
  :func:`linear_field`).
* Gray-Scott and Navier-Stokes: grid fields on channels-first states ``[..., C, H, W]``, as
  the datasets store them (:class:`GridField` around a channels-last :class:`~dynajax.nn.ConvNet`
  or :class:`~dynajax.nn.FNO2d`; :func:`conv_field`, :func:`fno_field`).

Every function returns a flax module mapping a state to a derivative of the same shape, as
:class:`dynajax.forecast.leads.LeadsModel` expects.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from dynajax.nn import MLP, ConvNet, FNO2d, normal

__all__ = ["GridField", "mlp_field", "linear_field", "conv_field", "fno_field"]


class GridField(nn.Module):
    """Wraps a channels-last grid network for channels-first states ``[..., C, H, W]``.

    Attributes:
        inner: a network ``[N, H, W, C] -> [N, H, W, C]``.
        scale: output multiplier (LEADS' Gray-Scott network uses ``1e-3``).
    """

    inner: nn.Module
    scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        lead = x.shape[:-3]
        y = jnp.moveaxis(x, -3, -1).reshape((-1, *x.shape[-2:], x.shape[-3]))
        out = self.inner(y)
        return self.scale * jnp.moveaxis(out.reshape((*lead, *out.shape[1:])), -1, -3)


def mlp_field(dim: int, width: int = 64, depth: int = 3, init_std: float = 0.05) -> MLP:
    """LEADS' Lotka-Volterra network: MLP ``dim-width x depth-dim``, Swish (learnable ``beta``),
    ``N(0, init_std^2)`` weights (``2-64-64-64-2``, ``N(0, 0.05)`` in the paper)."""
    if min(dim, width, depth) < 1:
        raise ValueError(f"dim, width and depth must be >= 1, got {dim}, {width}, {depth}")
    return MLP((width,) * depth + (dim,), activation="swish", kernel_init=normal(init_std))


def linear_field(dim: int, init_std: float = 0.05) -> nn.Dense:
    """A linear map ``R^dim -> R^dim`` without bias (the linear-ODE check, thesis Table 3.11)."""
    return nn.Dense(dim, use_bias=False, kernel_init=normal(init_std))


def conv_field(channels: int = 2, width: int = 64, init_std: float = 0.1, scale: float = 1e-3) -> GridField:
    """LEADS' Gray-Scott network: 4 circular 3x3 convolutions (``width`` channels), Swish,
    ``N(0, init_std^2)`` weights, output multiplied by ``scale``."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    conv = ConvNet((width, width, width, channels), padding="circular", activation="swish",
                   kernel_init=normal(init_std))
    return GridField(conv, scale=scale)


def fno_field(channels: int = 1, width: int = 10, modes: int = 6) -> GridField:
    """LEADS' Navier-Stokes network: FNO2d (4 Fourier layers, fc 128, Swish, grid channels)."""
    if width < 1 or modes < 1:
        raise ValueError(f"width and modes must be >= 1, got {width}, {modes}")
    return GridField(FNO2d(modes=modes, width=width, out_channels=channels, depth=4, fc_width=128,
                           activation="swish", append_grid=True))
