"""Continuous flows with a transport cost: OT-Flow, mean-field games and GP-flows.

* :mod:`~dynajax.cnf.potential`: the OT-Flow potential ``Phi(x, t)`` with its gradient and the
  exact trace of its Hessian in closed form (Onken et al. 2021).
* :mod:`~dynajax.cnf.trace`: divergences by autodiff and by Hutchinson's estimator.
* :mod:`~dynajax.cnf.otflow`: the flow ``dx/dt = -grad Phi`` with log-determinant, kinetic
  energy and HJB residual integrated by :func:`dynajax.integrate`; the objective
  ``alpha_L L + alpha_C C + alpha_R R``, log-densities and sampling by the inverse flow.
* :mod:`~dynajax.cnf.mfg`: mean-field games by the Lagrangian method (Ruthotto et al. 2020):
  running costs (obstacle, entropy congestion, interaction), terminal costs, HJB penalties.
* :mod:`~dynajax.cnf.toy_densities`: the seven 2-D toy densities of FFJORD and OT-Flow.
* :mod:`~dynajax.cnf.gpflow`: Gaussian-preserving flows that turn a normalizing flow into a
  cheaper transport map with the same density (Morel et al. 2023).

Floor: next to :mod:`dynajax.transport`, :mod:`dynajax.forecast` and :mod:`dynajax.arch`;
it imports :mod:`dynajax.solve` and :mod:`dynajax.train`.
"""

from dynajax.cnf.gpflow import AntisymmetricField as AntisymmetricField
from dynajax.cnf.gpflow import gaussian_divergence as gaussian_divergence
from dynajax.cnf.gpflow import gp_flow as gp_flow
from dynajax.cnf.gpflow import gp_transport_cost as gp_transport_cost
from dynajax.cnf.mfg import MFGTerms as MFGTerms
from dynajax.cnf.mfg import entropy_congestion as entropy_congestion
from dynajax.cnf.mfg import interaction as interaction
from dynajax.cnf.mfg import kl_terminal as kl_terminal
from dynajax.cnf.mfg import mfg_objective as mfg_objective
from dynajax.cnf.mfg import obstacle as obstacle
from dynajax.cnf.mfg import quadratic_terminal as quadratic_terminal
from dynajax.cnf.otflow import Characteristics as Characteristics
from dynajax.cnf.otflow import OTFlowLoss as OTFlowLoss
from dynajax.cnf.otflow import characteristics as characteristics
from dynajax.cnf.otflow import otflow_log_density as otflow_log_density
from dynajax.cnf.otflow import otflow_loss as otflow_loss
from dynajax.cnf.otflow import otflow_sample as otflow_sample
from dynajax.cnf.otflow import otflow_step as otflow_step
from dynajax.cnf.otflow import standard_normal_logpdf as standard_normal_logpdf
from dynajax.cnf.potential import Potential as Potential
from dynajax.cnf.potential import log_cosh as log_cosh
from dynajax.cnf.trace import autodiff_divergence as autodiff_divergence
from dynajax.cnf.trace import hutchinson_divergence as hutchinson_divergence
from dynajax.cnf.toy_densities import TOY_DENSITIES as TOY_DENSITIES
from dynajax.cnf.toy_densities import sample_toy as sample_toy

__all__ = [
    "AntisymmetricField",
    "Characteristics",
    "MFGTerms",
    "OTFlowLoss",
    "Potential",
    "TOY_DENSITIES",
    "autodiff_divergence",
    "characteristics",
    "entropy_congestion",
    "gaussian_divergence",
    "gp_flow",
    "gp_transport_cost",
    "hutchinson_divergence",
    "interaction",
    "kl_terminal",
    "log_cosh",
    "mfg_objective",
    "obstacle",
    "otflow_log_density",
    "otflow_loss",
    "otflow_sample",
    "otflow_step",
    "quadratic_terminal",
    "sample_toy",
    "standard_normal_logpdf",
]
