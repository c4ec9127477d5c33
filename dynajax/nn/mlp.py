"""Multi-layer perceptron."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import flax.linen as nn
from jaxtyping import Array, Float

from dynajax.nn.activations import check_activation, get_activation
from dynajax.nn.initializers import Initializer, default_kernel_init, zeros

__all__ = ["MLP"]


class MLP(nn.Module):
    """Dense layers with an activation between them.

    ``MLP(features=(200, 200, 2))`` is ``Dense(200) -> act -> Dense(200) -> act -> Dense(2)``
    (APHYNITY's pendulum network with ``kernel_init=orthogonal(0.2)``). With
    ``activation="swish"`` every hidden layer gets its own :class:`~dynajax.nn.Swish`
    (own ``beta``), as LEADS does.

    Attributes:
        features: output width of each dense layer; the last is the output dimension.
        activation: a name accepted by :func:`~dynajax.nn.get_activation` or a callable,
            applied after every layer but the last.
        final_activation: optional activation after the last layer (``None``: linear output).
        use_bias: whether the dense layers have biases.
        kernel_init: kernel initialiser (default: flax's lecun normal).
        bias_init: bias initialiser (default: zeros).
    """

    features: Sequence[int]
    activation: str | Callable[[Array], Array] = "relu"
    final_activation: str | Callable[[Array], Array] | None = None
    use_bias: bool = True
    kernel_init: Initializer = default_kernel_init
    bias_init: Initializer = zeros

    def __post_init__(self):
        if len(self.features) == 0 or any(
            not isinstance(f, numbers.Integral) or isinstance(f, bool) or f < 1 for f in self.features
        ):
            raise ValueError(
                f"features must be a non-empty sequence of positive ints, got {self.features!r}"
            )
        check_activation(self.activation)
        check_activation(self.final_activation, "final_activation")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: Float[Array, "... d_in"]) -> Float[Array, "... d_out"]:
        """Maps ``[..., d_in]`` to ``[..., features[-1]]``."""
        n = len(self.features)
        for i, width in enumerate(self.features):
            x = nn.Dense(
                width,
                use_bias=self.use_bias,
                kernel_init=self.kernel_init,
                bias_init=self.bias_init,
                name=f"Dense_{i}",
            )(x)
            if i < n - 1:
                x = get_activation(self.activation)(x)
        if self.final_activation is not None:
            x = get_activation(self.final_activation)(x)
        return x
