"""The APHYNITY baselines as thin variants of :class:`dynajax.forecast.aphynity.Aphynity`.

* :func:`neural_ode`: ``F = F_a`` only (a network as the whole field), trajectory loss;
* :func:`param_only`: ``F = F_p`` only ("Param ODE/PDE"), trajectory loss;
* the ablations of thesis Tables 3.5 / 3.6 are training methods of the full model, chosen
  with :class:`~dynajax.forecast.aphynity.TrainConfig`: ``method="vanilla"`` (augmentation
  without norm minimisation), ``"derivative"`` (derivative supervision) and
  ``"non_adaptive"`` (fixed ``lambda``). :data:`ABLATIONS` names them.

Neural ODE and Param-only train with ``method="vanilla"`` (no ``F_a`` norm to minimise, or
no network at all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import flax.linen as nn

from dynajax.forecast.aphynity import Aphynity, Reparam
from dynajax.systems.base import PhysicalFamily

__all__ = ["ABLATIONS", "neural_ode", "param_only"]

# display name -> TrainConfig.method
ABLATIONS: dict[str, str] = {
    "APHYNITY": "aphynity",
    "vanilla augmentation (no norm minimisation)": "vanilla",
    "derivative supervision": "derivative",
    "non-adaptive optimisation": "non_adaptive",
}


def neural_ode(network: nn.Module, **options) -> Aphynity:
    """A Neural ODE: the network is the whole field (``options`` as :class:`Aphynity`)."""
    if network is None:
        raise ValueError("neural_ode needs a network")
    return Aphynity(physics=None, network=network, **options)


def param_only(
    physics: PhysicalFamily | Callable,
    *,
    physics_init: Mapping[str, float] | None = None,
    reparam: Reparam | None = None,
    **options,
) -> Aphynity:
    """The physical model alone ("Param ODE/PDE"), trained on trajectories."""
    if physics is None:
        raise ValueError("param_only needs a physical model")
    return Aphynity(physics=physics, network=None, physics_init=physics_init, reparam=reparam, **options)
