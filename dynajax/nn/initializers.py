"""Weight initialisers used by the reproduced papers, as jax initialisers.

Each function returns an initialiser ``init(key, shape, dtype=jnp.float32) -> Array``, the
signature flax's ``kernel_init`` / ``bias_init`` expect.

Kernels are stored the flax way: dense ``[in, out]``, convolution ``[*window, in, out]``.
The torch layouts are the transposes (``[out, in]``, ``[out, in, *window]``), so the
matrix that torch makes orthogonal (``[out, in * prod(window)]``) is the transpose of the
one made orthogonal here (``[prod(window) * in, out]``, up to a row permutation): the
distributions agree.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import linen as nn

__all__ = [
    "INITIALIZERS",
    "Initializer",
    "default_kernel_init",
    "get_initializer",
    "normal",
    "orthogonal",
    "zeros",
]

Initializer = Callable[..., jax.Array]
"""``init(key, shape, dtype=jnp.float32) -> Array``."""

default_kernel_init: Initializer = nn.initializers.lecun_normal()
"""flax's default kernel initialiser: truncated normal with variance ``1 / fan_in``."""

zeros: Initializer = nn.initializers.zeros
"""All zeros (flax's default bias initialiser)."""


def orthogonal(gain: float = 1.0) -> Initializer:
    """Orthogonal initialiser scaled by ``gain``, like torch's ``nn.init.orthogonal_(w, gain)``.

    The kernel is viewed as a matrix ``[prod(shape[:-1]), shape[-1]]`` (``[in, out]`` for a
    dense kernel). The smaller side is orthonormal times ``gain``: for ``in >= out``,
    ``W.T @ W = gain**2 * I_out``; for ``in < out``, ``W @ W.T = gain**2 * I_in``.
    Drawn from the Haar measure (QR of a Gaussian matrix with the sign fix).

    Args:
        gain: scale factor (APHYNITY uses 0.2).

    Returns:
        An initialiser ``(key, shape, dtype) -> Array``; ``shape`` needs at least 2 axes.
    """
    _check_gain(gain)
    return jax.nn.initializers.orthogonal(scale=gain, column_axis=-1)


def normal(gain: float = 1.0) -> Initializer:
    """Centred Gaussian with **standard deviation** ``gain``: ``w ~ N(0, gain**2)``.

    This is torch's ``nn.init.normal_(w, mean=0.0, std=gain)`` (LEADS: ``gain=0.05`` for the
    LV MLP, ``0.1`` for the GS ConvNet), i.e. no fan-in scaling and no truncation.

    Args:
        gain: the standard deviation.

    Returns:
        An initialiser ``(key, shape, dtype) -> Array`` for any shape.
    """
    _check_gain(gain)
    return jax.nn.initializers.normal(stddev=gain)


def _check_gain(gain) -> None:
    if not isinstance(gain, (int, float)) or not gain > 0:
        raise ValueError(f"gain must be a positive number, got {gain!r}")


INITIALIZERS: dict[str, Callable[[float], Initializer]] = {
    "orthogonal": orthogonal,
    "normal": normal,
    "default": lambda gain=1.0: default_kernel_init,
    "zeros": lambda gain=1.0: zeros,
}


def get_initializer(name: str | Initializer, gain: float = 1.0) -> Initializer:
    """Returns an initialiser by name (for configs), or ``name`` itself when it is callable.

    Args:
        name: ``"orthogonal"`` (:func:`orthogonal`), ``"normal"`` (:func:`normal`, std
            ``gain``), ``"default"`` (flax's lecun normal; ``gain`` ignored), ``"zeros"``,
            or an initialiser.
        gain: passed to ``orthogonal`` / ``normal``.

    Raises:
        ValueError: unknown name or non-positive gain.
    """
    if callable(name):
        return name
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; allowed: {', '.join(INITIALIZERS)}")
    return INITIALIZERS[name](gain)
