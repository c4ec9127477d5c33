"""Fourier neural operator in 2-D (Li et al. 2021), channels last.

The complex spectral weights are stored as **real** parameters with a leading axis of 2
(real, imaginary parts). ``jax.grad`` of a real loss with respect to a complex parameter
is the *conjugate* of the descent direction and optax does not conjugate it, so complex
parameters trained with optax diverge in their imaginary parts; real storage avoids that.
:func:`as_complex` rebuilds the complex tensor (for a spectral-norm penalty, say).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Complex, Float

from dynajax.nn.activations import check_activation, get_activation

__all__ = ["FNO2d", "SpectralConv2d", "as_complex", "fno_weight_init"]


def as_complex(w: Float[Array, "2 ..."]) -> Complex[Array, "..."]:
    """``w[0] + 1j * w[1]``: the complex tensor of a real-stored spectral weight."""
    return jax.lax.complex(w[0], w[1])


def fno_weight_init(key, shape, dtype=jnp.float32) -> Float[Array, "2 m1 m2 c_in c_out"]:
    """Li et al.'s init: real and imaginary parts ``~ U[0, 1) / (c_in * c_out)``.

    ``shape`` is ``(2, m1, m2, c_in, c_out)``.
    """
    scale = 1.0 / (shape[-2] * shape[-1])
    return scale * jax.random.uniform(key, shape, dtype)


def _positive_int(name, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class SpectralConv2d(nn.Module):
    """Fourier layer: keep the lowest modes, multiply them by learned complex matrices.

    ``x -> irfft2(W . rfft2(x))`` over the two spatial axes, where ``W`` acts on the
    channels of each retained mode: rows ``[:modes1]`` and ``[-modes1:]`` of the first
    frequency axis (both signs) and columns ``[:modes2]`` of the half-spectrum axis; all other
    modes are zeroed. It commutes with periodic translations of the grid.

    Parameters ``weights1`` (positive first-axis modes) and ``weights2`` (negative ones),
    each real ``[2, modes1, modes2, c_in, out_channels]`` (see :func:`as_complex`).

    Attributes:
        out_channels: output channels.
        modes1: modes kept along ``H`` (per sign); needs ``2 * modes1 <= H``.
        modes2: modes kept along ``W``; needs ``modes2 <= W // 2 + 1``.
        kernel_init: initialiser of the real-stored weights (default :func:`fno_weight_init`).
    """

    out_channels: int
    modes1: int
    modes2: int
    kernel_init: Callable = fno_weight_init

    def __post_init__(self):
        _positive_int("out_channels", self.out_channels)
        _positive_int("modes1", self.modes1)
        _positive_int("modes2", self.modes2)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Float[Array, "... H W C_in"]) -> Float[Array, "... H W C_out"]:
        """Maps ``[..., H, W, C_in]`` to ``[..., H, W, out_channels]``."""
        if x.ndim < 3:
            raise ValueError(f"SpectralConv2d needs inputs [..., H, W, C], got shape {x.shape}")
        h, w, c_in = x.shape[-3:]
        m1, m2 = self.modes1, self.modes2
        if 2 * m1 > h or m2 > w // 2 + 1:
            raise ValueError(
                f"modes ({m1}, {m2}) do not fit a {h}x{w} grid: need 2 * modes1 <= H "
                f"(modes1 <= {h // 2}) and modes2 <= W // 2 + 1 (modes2 <= {w // 2 + 1})"
            )
        shape = (2, m1, m2, c_in, self.out_channels)
        w1 = as_complex(self.param("weights1", self.kernel_init, shape, jnp.float32))
        w2 = as_complex(self.param("weights2", self.kernel_init, shape, jnp.float32))

        x_ft = jnp.fft.rfft2(x, axes=(-3, -2))  # [..., H, W//2+1, C_in]
        w1 = w1.astype(x_ft.dtype)
        w2 = w2.astype(x_ft.dtype)
        top = jnp.einsum("...xyi,xyio->...xyo", x_ft[..., :m1, :m2, :], w1)
        bottom = jnp.einsum("...xyi,xyio->...xyo", x_ft[..., h - m1 :, :m2, :], w2)
        out_ft = jnp.zeros((*x.shape[:-3], h, w // 2 + 1, self.out_channels), x_ft.dtype)
        out_ft = out_ft.at[..., :m1, :m2, :].set(top)
        out_ft = out_ft.at[..., h - m1 :, :m2, :].set(bottom)
        return jnp.fft.irfft2(out_ft, s=(h, w), axes=(-3, -2)).astype(x.dtype)


class FNO2d(nn.Module):
    """Fourier neural operator (Li et al. 2021) on a periodic 2-D grid, channels last.

    Lift ``Dense(width)``; ``depth`` Fourier layers ``x <- act(SpectralConv2d(x) + Dense(x))``
    (a 1x1 conv is a dense map on channels; no activation after the last layer, as in the
    reference code); project ``Dense(fc_width) -> act -> Dense(out_channels)``. LEADS' NS
    network is ``FNO2d(modes=6, width=10, depth=4, out_channels=1, activation="swish")``.
    With ``append_grid=True`` the inputs get two channels of grid coordinates in ``[0, 1]``
    (``linspace(0, 1, n)`` as the reference code), which breaks translation equivariance.

    Attributes:
        modes: modes kept per spectral axis, an int or ``(modes1, modes2)``.
        width: channels of the Fourier layers.
        out_channels: output channels.
        depth: number of Fourier layers.
        fc_width: hidden width of the projection.
        activation: name or callable (default exact ``gelu``, as the reference code).
        append_grid: append ``(x, y)`` coordinates to the input channels.
    """

    modes: int | Sequence[int]
    width: int
    out_channels: int
    depth: int = 4
    fc_width: int = 128
    activation: str | Callable[[Array], Array] = "gelu"
    append_grid: bool = False

    def __post_init__(self):
        self._modes()
        _positive_int("width", self.width)
        _positive_int("out_channels", self.out_channels)
        _positive_int("depth", self.depth)
        _positive_int("fc_width", self.fc_width)
        check_activation(self.activation)
        super().__post_init__()

    def _modes(self) -> tuple[int, int]:
        modes = self.modes
        if isinstance(modes, numbers.Integral) and not isinstance(modes, bool):
            modes = (modes, modes)
        if not isinstance(modes, Sequence) or len(modes) != 2:
            raise ValueError(f"modes must be an int or a pair of ints, got {self.modes!r}")
        return _positive_int("modes1", modes[0]), _positive_int("modes2", modes[1])

    @nn.compact
    def __call__(self, x: Float[Array, "... H W C_in"]) -> Float[Array, "... H W C_out"]:
        """Maps ``[..., H, W, C_in]`` to ``[..., H, W, out_channels]``."""
        if x.ndim < 3:
            raise ValueError(f"FNO2d needs inputs [..., H, W, C], got shape {x.shape}")
        m1, m2 = self._modes()
        if self.append_grid:
            h, w = x.shape[-3:-1]
            gx, gy = jnp.meshgrid(
                jnp.linspace(0.0, 1.0, h, dtype=x.dtype),
                jnp.linspace(0.0, 1.0, w, dtype=x.dtype),
                indexing="ij",
            )
            grid = jnp.broadcast_to(jnp.stack([gx, gy], -1), (*x.shape[:-1], 2))
            x = jnp.concatenate([x, grid], axis=-1)
        x = nn.Dense(self.width, name="lift")(x)
        for i in range(self.depth):
            y = SpectralConv2d(self.width, m1, m2, name=f"SpectralConv2d_{i}")(x)
            x = y + nn.Dense(self.width, name=f"pointwise_{i}")(x)
            if i < self.depth - 1:
                x = get_activation(self.activation)(x)
        x = nn.Dense(self.fc_width, name="project_0")(x)
        x = get_activation(self.activation)(x)
        return nn.Dense(self.out_channels, name="project_1")(x)
