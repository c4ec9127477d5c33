"""gantk: infinite-width NTK discriminators and the gradient flows they induce (GAN(TK)^2).

The second import package of the dynajax distribution. Its kernels, discriminators,
particle flows, data and metrics are the subject of their own issue; today the package
only exists so that the distribution installs both import packages.
"""

__all__: list[str] = []
