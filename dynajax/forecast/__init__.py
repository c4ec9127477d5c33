"""Learning dynamics from trajectories: APHYNITY, LEADS, partially observed (hidden-state) models.

Submodules: :mod:`~dynajax.forecast.aphynity` (physics + minimal neural correction, with
``TrainConfig``/``train``), :mod:`~dynajax.forecast.baselines` (Neural ODE, Param-only),
:mod:`~dynajax.forecast.hamiltonian` (Hamiltonian physical priors ``F_p = J grad H``),
:mod:`~dynajax.forecast.leads`, :mod:`~dynajax.forecast.leads_baselines` and
:mod:`~dynajax.forecast.leads_nets` (shared dynamics + per-environment corrections, their
protocols and networks), :mod:`~dynajax.forecast.hidden` and
:mod:`~dynajax.forecast.hidden_baselines` (hidden-state ODEs from partial observations), and
:mod:`~dynajax.forecast.adjoint` (the explicit continuous adjoint of thesis eq. 1.8).
"""

from dynajax.forecast import (
    adjoint,
    aphynity,
    baselines,
    hamiltonian,
    hidden,
    hidden_baselines,
    leads,
    leads_baselines,
    leads_nets,
)
from dynajax.forecast.aphynity import Aphynity, norm_penalty
from dynajax.forecast.baselines import neural_ode, param_only
from dynajax.forecast.hidden import ChannelProjection, HiddenModel, PointwiseLinear
from dynajax.forecast.leads import LeadsModel, fit_leads, make_model

__all__ = [
    "Aphynity",
    "ChannelProjection",
    "HiddenModel",
    "LeadsModel",
    "PointwiseLinear",
    "adjoint",
    "aphynity",
    "baselines",
    "fit_leads",
    "hamiltonian",
    "hidden",
    "hidden_baselines",
    "leads",
    "leads_baselines",
    "leads_nets",
    "make_model",
    "neural_ode",
    "norm_penalty",
    "param_only",
]
