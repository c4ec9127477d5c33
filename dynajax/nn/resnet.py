"""Residual blocks ``x + dt * f(x)``: one explicit-Euler step of ``dx/dt = f(x)``."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import flax.linen as nn
from jaxtyping import Array, Float

from dynajax.nn.activations import check_activation
from dynajax.nn.conv import PADDINGS, ConvNet, _kernel_tuple
from dynajax.nn.initializers import Initializer, default_kernel_init
from dynajax.nn.mlp import MLP

__all__ = ["ConvResidualBlock", "MLPResidualBlock", "Residual"]


def _check_dt(dt) -> None:
    if not isinstance(dt, numbers.Real) or isinstance(dt, bool):
        raise ValueError(f"dt must be a real number, got {dt!r}")


class Residual(nn.Module):
    """Wraps any shape-preserving module ``f`` into ``x -> x + dt * f(x)``.

    Attributes:
        f: a linen module (or callable) with output shaped like its input.
        dt: step size multiplying the residual branch.
    """

    f: nn.Module | Callable[[Array], Array]
    dt: float = 1.0

    def __post_init__(self):
        _check_dt(self.dt)
        super().__post_init__()

    def __call__(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """Returns ``x + dt * f(x)``, shaped like ``x``."""
        fx = self.f(x)
        if fx.shape != x.shape:
            raise ValueError(
                f"the residual branch must preserve the shape: f(x) has shape {fx.shape}, "
                f"x has shape {x.shape}"
            )
        return x + self.dt * fx


class MLPResidualBlock(nn.Module):
    """``x + dt * MLP((*hidden, d))(x)`` for ``x`` of shape ``[..., d]``.

    Attributes:
        hidden: widths of the hidden layers of the branch (may be empty: one dense layer).
        activation: name or callable between the branch's layers.
        dt: step size.
        kernel_init: initialiser of the branch's kernels.
    """

    hidden: Sequence[int] = (64,)
    activation: str | Callable[[Array], Array] = "relu"
    dt: float = 1.0
    kernel_init: Initializer = default_kernel_init

    def __post_init__(self):
        _check_dt(self.dt)
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Float[Array, "... d"]) -> Float[Array, "... d"]:
        """Maps ``[..., d]`` to ``[..., d]``."""
        branch = MLP(
            (*self.hidden, x.shape[-1]),
            activation=self.activation,
            kernel_init=self.kernel_init,
            name="branch",
        )
        return x + self.dt * branch(x)


class ConvResidualBlock(nn.Module):
    """``x + dt * ConvNet((*hidden, C))(x)`` for channels-last ``x`` ``[..., *spatial, C]``.

    Attributes:
        hidden: channels of the hidden convolutions of the branch (may be empty).
        kernel_size: as :class:`~dynajax.nn.ConvNet` (int: 2-D).
        padding: ``"zeros"``, ``"circular"`` or ``"reflect"``.
        activation: name or callable between the branch's convolutions.
        dt: step size.
        kernel_init: initialiser of the branch's kernels.
    """

    hidden: Sequence[int] = (16,)
    kernel_size: int | Sequence[int] = 3
    padding: str = "zeros"
    activation: str | Callable[[Array], Array] = "relu"
    dt: float = 1.0
    kernel_init: Initializer = default_kernel_init

    def __post_init__(self):
        _check_dt(self.dt)
        _kernel_tuple(self.kernel_size)
        if self.padding not in PADDINGS:
            raise ValueError(f"unknown padding {self.padding!r}; allowed: {', '.join(PADDINGS)}")
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Float[Array, "... *spatial C"]) -> Float[Array, "... *spatial C"]:
        """Maps ``[..., *spatial, C]`` to the same shape."""
        branch = ConvNet(
            (*self.hidden, x.shape[-1]),
            kernel_size=self.kernel_size,
            padding=self.padding,
            activation=self.activation,
            kernel_init=self.kernel_init,
            name="branch",
        )
        return x + self.dt * branch(x)
