"""Continuous-depth and stable architectures, physics-informed losses, implicit representations.

* :mod:`~dynajax.arch.continuous`: neural-ODE classifiers (ResNet = forward Euler) with both
  gradient routes (discretise-then-optimise, continuous adjoint).
* :mod:`~dynajax.arch.stable`: antisymmetric and Hamiltonian (leapfrog, reversible backward)
  networks, parabolic and hyperbolic convolutional blocks, the forward growth ratio.
* :mod:`~dynajax.arch.pinn`: differential operators, PINN residual / boundary / data losses,
  the Deep Ritz energy, samplers on the unit ball.
* :mod:`~dynajax.arch.mfn`: Fourier and Gabor multiplicative filter networks.
* :mod:`~dynajax.arch.divfree`: divergence penalty, stream-function velocities, spectral
  divergence and energy spectrum of gridded 2-D fields.
* :mod:`~dynajax.arch.superres`: interpolation baselines (periodic cubic, GP) and error
  metrics of velocity-field super-resolution from scattered samples.
* :mod:`~dynajax.arch.memory`: activation memory kept for reverse mode (:func:`stored_bytes`).
"""

from dynajax.arch.continuous import (
    ContinuousClassifier,
    accuracy,
    cross_entropy,
    interp_weights,
)
from dynajax.arch.divfree import (
    divergence_penalty,
    energy_spectrum,
    spectral_curl,
    spectral_divergence,
    stream_velocity,
)
from dynajax.arch.memory import stored_bytes
from dynajax.arch.mfn import FILTERS, MFN
from dynajax.arch.pinn import (
    ball_volume,
    boundary_loss,
    data_loss,
    deep_ritz_energy,
    divergence,
    gradient,
    hessian,
    laplacian,
    pinn_loss,
    residual_loss,
    sample_ball,
    sample_sphere,
    sphere_area,
)
from dynajax.arch.stable import (
    KINDS,
    StableClassifier,
    antisymmetric_forward,
    antisymmetric_matrix,
    conv2d,
    conv2d_transpose,
    growth_ratio,
    hamiltonian_forward,
    hamiltonian_reversible,
    hyperbolic_forward,
    init_layers,
    leapfrog_inverse,
    leapfrog_step,
    parabolic_forward,
    resnet_forward,
)
from dynajax.arch.superres import field_errors, grid_points, periodic_cubic, periodic_gp

__all__ = [
    # continuous
    "ContinuousClassifier",
    "accuracy",
    "cross_entropy",
    "interp_weights",
    # memory
    "stored_bytes",
    # stable
    "KINDS",
    "StableClassifier",
    "antisymmetric_forward",
    "antisymmetric_matrix",
    "conv2d",
    "conv2d_transpose",
    "growth_ratio",
    "hamiltonian_forward",
    "hamiltonian_reversible",
    "hyperbolic_forward",
    "init_layers",
    "leapfrog_inverse",
    "leapfrog_step",
    "parabolic_forward",
    "resnet_forward",
    # pinn
    "ball_volume",
    "boundary_loss",
    "data_loss",
    "deep_ritz_energy",
    "divergence",
    "gradient",
    "hessian",
    "laplacian",
    "pinn_loss",
    "residual_loss",
    "sample_ball",
    "sample_sphere",
    "sphere_area",
    # mfn
    "FILTERS",
    "MFN",
    # divergence-free
    "divergence_penalty",
    "energy_spectrum",
    "spectral_curl",
    "spectral_divergence",
    "stream_velocity",
    # super-resolution
    "field_errors",
    "grid_points",
    "periodic_cubic",
    "periodic_gp",
]
