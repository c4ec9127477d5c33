"""Optimal transport: OT costs and plans (ott-jax), sliced distances, diagnostics, flows,
and residual networks trained as transport maps (least action, layer-wise).

Conventions: ``*_w2`` and ``sliced_wasserstein`` return squared / un-rooted costs (as
ott-jax); the ``*_distance`` variants of the sliced family return the p-th root (as POT).
"""

from dynajax.transport.diagnostics import (
    OptimalityGap,
    inverse_error,
    kinetic_energy,
    monge_map_distance,
    optimality_gap,
    path_straightness,
    transport_cost,
)
from dynajax.transport.flows import (
    Functional,
    interaction_energy,
    kl_to_target,
    particle_flow,
    particle_flow_sphere,
    potential_energy,
    ssw_jko,
    sw_jko,
)
from dynajax.transport.least_action import (
    ResidualFlow,
    VelocityMLP,
    histogram_cost,
    lap_uzawa,
    linear_decay,
    mmd_discrepancy,
    quadratic_cost,
    regularized_loss,
    transport_penalty,
    udt_loss,
)
from dynajax.transport.nf_jko import (
    NFJKOResult,
    RealNVP,
    gaussian_log_density,
    nf_sw_jko,
    pull_back_log_density,
    push_forward,
)
from dynajax.transport.one_d import (
    circle_coordinates,
    wasserstein1_circle,
    wasserstein2_unif_circle,
    wasserstein_1d,
    wasserstein_circle,
)
from dynajax.transport.ot import (
    AffineMap,
    SinkhornResult,
    barycentric_projection,
    energy_distance,
    exact_ot_plan,
    exact_w2,
    gaussian_monge_map,
    gaussian_w2,
    mmd2,
    pairwise_sqdist,
    sinkhorn,
    sinkhorn_divergence,
)
from dynajax.transport import sphere_flow, sphere_vmf
from dynajax.transport.sphere_flow import flow_forward, flow_log_density, init_exp_map_flow
from dynajax.transport.sphere_vmf import fit_vmf, sample_vmf_mixture, vmf_mixture_logpdf
from dynajax.transport.trgl import ModuleWiseResNet, trgl_taus
from dynajax.transport.sliced import (
    max_sliced_wasserstein,
    max_sliced_wasserstein_distance,
    random_directions,
    random_stiefel,
    sliced_gromov_wasserstein,
    sliced_wasserstein,
    sliced_wasserstein_distance,
    spherical_sliced_wasserstein,
    spherical_sliced_wasserstein_distance,
    spherical_sliced_wasserstein_unif,
)

__all__ = [
    # ot
    "AffineMap",
    "SinkhornResult",
    "barycentric_projection",
    "energy_distance",
    "exact_ot_plan",
    "exact_w2",
    "gaussian_monge_map",
    "gaussian_w2",
    "mmd2",
    "pairwise_sqdist",
    "sinkhorn",
    "sinkhorn_divergence",
    # sliced and 1-D
    "circle_coordinates",
    "max_sliced_wasserstein",
    "max_sliced_wasserstein_distance",
    "random_directions",
    "random_stiefel",
    "sliced_gromov_wasserstein",
    "sliced_wasserstein",
    "sliced_wasserstein_distance",
    "spherical_sliced_wasserstein",
    "spherical_sliced_wasserstein_distance",
    "spherical_sliced_wasserstein_unif",
    "wasserstein1_circle",
    "wasserstein2_unif_circle",
    "wasserstein_1d",
    "wasserstein_circle",
    # gradient flows
    "Functional",
    "interaction_energy",
    "kl_to_target",
    "particle_flow",
    "particle_flow_sphere",
    "potential_energy",
    "ssw_jko",
    "sw_jko",
    # flows over a normalizing-flow density
    "NFJKOResult",
    "RealNVP",
    "gaussian_log_density",
    "pull_back_log_density",
    # densities on the sphere: exponential-map flows, von Mises-Fisher mixtures
    "sphere_flow",
    "sphere_vmf",
    "flow_forward",
    "flow_log_density",
    "init_exp_map_flow",
    "fit_vmf",
    "sample_vmf_mixture",
    "vmf_mixture_logpdf",
    "nf_sw_jko",
    "push_forward",
    # least action (residual networks as transport) and layer-wise training
    "ModuleWiseResNet",
    "ResidualFlow",
    "VelocityMLP",
    "histogram_cost",
    "lap_uzawa",
    "linear_decay",
    "mmd_discrepancy",
    "quadratic_cost",
    "regularized_loss",
    "transport_penalty",
    "trgl_taus",
    "udt_loss",
    # diagnostics
    "OptimalityGap",
    "inverse_error",
    "kinetic_energy",
    "monge_map_distance",
    "optimality_gap",
    "path_straightness",
    "transport_cost",
]
