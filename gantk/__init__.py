"""gantk: infinite-width NTK discriminators and the gradient flows they induce (GAN(TK)^2, thesis ch. 5).

Modules:
    kernels: closed-form NTK / NNGP of fully connected nets (neural-tangents conventions), RBF.
    losses: IPM / LSGAN / original GAN in the ``(a, b, c)`` form.
    discriminators: infinite-width closed forms and ODEs; finite-width MLP discriminators.
    flows: particle flows (explicit Euler), the NTK-MMD objective.
    data, metrics, plots: datasets (rendered, no download), distances, figures.
"""

from gantk import data, discriminators, flows, kernels, losses, metrics

__all__ = ["data", "discriminators", "flows", "kernels", "losses", "metrics"]
