"""Physical systems, one module each: true field, physical families, initial conditions, data.

Use :func:`get_system` (or import the module) and call its ``generate``.
"""

from dynajax.systems.base import PhysicalFamily, System, get_system, register, system_names

__all__ = ["PhysicalFamily", "System", "get_system", "register", "system_names"]
