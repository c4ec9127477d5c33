"""Physical systems, one module each: true field, physical families, initial conditions, data.

Every module registers its :class:`System`; use :func:`get_system` or the module itself::

    from dynajax.systems import pendulum
    train = pendulum.generate("train")          # TrajectoryDataset [25, 40, 2]
    F_p = pendulum.SYSTEM.family("frictionless")  # APHYNITY's incomplete prior
"""

from dynajax.systems import (  # noqa: F401  (each module registers its system)
    gray_scott,
    linear,
    lotka_volterra,
    mitchell_schaeffer,
    navier_stokes,
    pendulum,
    reaction_diffusion,
    wave,
)
from dynajax.systems.base import PhysicalFamily, System, get_system, register, system_names

__all__ = [
    "PhysicalFamily",
    "System",
    "get_system",
    "register",
    "system_names",
    "gray_scott",
    "linear",
    "lotka_volterra",
    "mitchell_schaeffer",
    "navier_stokes",
    "pendulum",
    "reaction_diffusion",
    "wave",
]
