"""flax.linen building blocks: MLP, ConvNet, FNO2d, residual blocks, a zero-started gate, Swish(beta),
spectral norm.

Everything here is a ``flax.linen`` module or a pure function; modules keep all state in
their variables (``params``, and ``spectral`` for the power-iteration vectors). Arrays are
channels-last: ``[..., d]`` for MLPs, ``[..., H, W, C]`` (or ``[..., L, C]``) for grids.
"""

from dynajax.nn.activations import ACTIVATIONS, Swish, get_activation, swish_beta
from dynajax.nn.conv import PADDINGS, BatchStatNorm, ConvNet
from dynajax.nn.fno import FNO2d, SpectralConv2d, as_complex, fno_weight_init
from dynajax.nn.gate import ZeroGated
from dynajax.nn.initializers import (
    INITIALIZERS,
    Initializer,
    default_kernel_init,
    get_initializer,
    normal,
    orthogonal,
    zeros,
)
from dynajax.nn.mlp import MLP
from dynajax.nn.resnet import ConvResidualBlock, MLPResidualBlock, Residual
from dynajax.nn.spectral_norm import (
    SNDense,
    SpectralNorm,
    as_matrix,
    init_spectral_state,
    init_u,
    spectral_norm,
    spectral_norms,
)

__all__ = [
    # activations
    "ACTIVATIONS",
    "Swish",
    "get_activation",
    "swish_beta",
    # initialisers
    "INITIALIZERS",
    "Initializer",
    "default_kernel_init",
    "get_initializer",
    "normal",
    "orthogonal",
    "zeros",
    # networks
    "MLP",
    "PADDINGS",
    "BatchStatNorm",
    "ConvNet",
    "FNO2d",
    "SpectralConv2d",
    "as_complex",
    "fno_weight_init",
    "ConvResidualBlock",
    "MLPResidualBlock",
    "Residual",
    "ZeroGated",
    # spectral norm
    "SNDense",
    "SpectralNorm",
    "as_matrix",
    "init_spectral_state",
    "init_u",
    "spectral_norm",
    "spectral_norms",
]
