"""Convolutional network on channels-last grids, with zero, circular or reflect padding."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Array, Float

from dynajax.nn.activations import check_activation, get_activation
from dynajax.nn.initializers import Initializer, default_kernel_init, zeros

__all__ = ["PADDINGS", "BatchStatNorm", "ConvNet"]

# our name (torch's ``padding_mode``) -> flax ``padding``. flax's CIRCULAR / REFLECT pad the
# input with ``jnp.pad(mode="wrap"/"reflect")`` by ((k-1)//2, k//2) and run a VALID conv;
# SAME pads with zeros by the same amounts. Output spatial shape = input spatial shape.
PADDINGS: dict[str, str] = {"zeros": "SAME", "circular": "CIRCULAR", "reflect": "REFLECT"}

_NORMS = (None, "batch")


def _kernel_tuple(kernel_size) -> tuple[int, ...]:
    if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
        ks = (int(kernel_size),) * 2
    elif isinstance(kernel_size, Sequence) and not isinstance(kernel_size, str):
        ks = tuple(kernel_size)
    else:
        ks = ()
    if len(ks) not in (1, 2) or any(
        not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1 for k in ks
    ):
        raise ValueError(
            "kernel_size must be a positive int (2-D) or a tuple of 1 or 2 positive ints "
            f"(1-D or 2-D), got {kernel_size!r}"
        )
    return tuple(int(k) for k in ks)


class BatchStatNorm(nn.Module):
    """Batch normalisation that always uses the statistics of the current input.

    This is torch's ``BatchNorm2d(track_running_stats=False)``, which APHYNITY's ConvNet
    uses inside the vector field: mean and (biased) variance over every axis but the last
    (channels), so the output depends on the whole batch, at training and at evaluation.
    No running averages, hence no mutable collection.

    Attributes:
        epsilon: added to the variance (torch: 1e-5).
        use_scale, use_bias: learnable per-channel affine map (init 1 and 0).
    """

    epsilon: float = 1e-5
    use_scale: bool = True
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: Float[Array, "... C"]) -> Float[Array, "... C"]:
        """Normalises ``[..., C]`` over all axes but the last."""
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        y = (x - mean) / jnp.sqrt(var + self.epsilon)
        if self.use_scale:
            y = y * self.param("scale", nn.initializers.ones, (x.shape[-1],), x.dtype)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (x.shape[-1],), x.dtype)
        return y


class ConvNet(nn.Module):
    """Stacked stride-1 convolutions that keep the grid shape, channels last.

    ``ConvNet(features=(16, 16, 2), padding="zeros", norm="batch", use_bias=False)`` is
    APHYNITY's reaction-diffusion network; ``ConvNet((64, 64, 64, 2), padding="circular",
    activation="swish", kernel_init=normal(0.1))`` is LEADS' Gray-Scott network.

    The spatial dimension (1-D or 2-D) is that of ``kernel_size``: an int means a square 2-D
    kernel, a 1-tuple a 1-D kernel. Inputs are ``[..., H, W, C]`` (2-D) or ``[..., L, C]``
    (1-D), with any number of leading batch axes (none included).

    Attributes:
        features: output channels of each convolution; the last is the output channels.
        kernel_size: ``k`` (2-D ``k x k``), ``(k,)`` (1-D) or ``(kh, kw)`` (2-D).
        padding: ``"zeros"``, ``"circular"`` (periodic domain) or ``"reflect"``.
        activation: name or callable, applied after every conv (and norm) but the last.
        final_activation: optional activation after the last conv.
        norm: ``None`` or ``"batch"`` (:class:`BatchStatNorm` after every conv but the last).
        use_bias: whether the convolutions have biases.
        kernel_init, bias_init: initialisers (kernels are ``[*window, in, out]``).
    """

    features: Sequence[int]
    kernel_size: int | Sequence[int] = 3
    padding: str = "zeros"
    activation: str | Callable[[Array], Array] = "relu"
    final_activation: str | Callable[[Array], Array] | None = None
    norm: str | None = None
    use_bias: bool = True
    kernel_init: Initializer = default_kernel_init
    bias_init: Initializer = zeros

    def __post_init__(self):
        if len(self.features) == 0 or any(
            not isinstance(f, numbers.Integral) or isinstance(f, bool) or f < 1
            for f in self.features
        ):
            raise ValueError(
                f"features must be a non-empty sequence of positive ints, got {self.features!r}"
            )
        _kernel_tuple(self.kernel_size)
        if self.padding not in PADDINGS:
            raise ValueError(
                f"unknown padding {self.padding!r}; allowed: {', '.join(PADDINGS)}"
            )
        if self.norm not in _NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; allowed: None, 'batch'")
        check_activation(self.activation)
        check_activation(self.final_activation, "final_activation")
        super().__post_init__()

    @property
    def spatial_ndim(self) -> int:
        """1 or 2, the length of the kernel-size tuple."""
        return len(_kernel_tuple(self.kernel_size))

    @nn.compact
    def __call__(self, x: Float[Array, "... *spatial C_in"]) -> Float[Array, "... *spatial C_out"]:
        """Maps ``[..., *spatial, C_in]`` to ``[..., *spatial, features[-1]]``."""
        ks = _kernel_tuple(self.kernel_size)
        if x.ndim < len(ks) + 1:
            raise ValueError(
                f"a {len(ks)}-D ConvNet needs inputs [..., {'H, W' if len(ks) == 2 else 'L'}, C] "
                f"with at least {len(ks) + 1} axes, got shape {x.shape}"
            )
        n = len(self.features)
        for i, width in enumerate(self.features):
            x = nn.Conv(
                width,
                kernel_size=ks,
                padding=PADDINGS[self.padding],
                use_bias=self.use_bias,
                kernel_init=self.kernel_init,
                bias_init=self.bias_init,
                name=f"Conv_{i}",
            )(x)
            if i < n - 1:
                if self.norm == "batch":
                    x = BatchStatNorm(name=f"BatchStatNorm_{i}")(x)
                x = get_activation(self.activation)(x)
        if self.final_activation is not None:
            x = get_activation(self.final_activation)(x)
        return x
