"""What every physical system module provides, and the registry of systems.

A system module (one per file in :mod:`dynajax.systems`) defines a :class:`System`:
the true vector field, its default physical parameters, the parametric families used as
physical priors (APHYNITY's incomplete / complete models), an initial-condition sampler
and a dataset generator. Systems register themselves by name with :func:`register`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from jaxtyping import Array

# field(t, y, params) -> dy/dt, with params a mapping of physical parameter names to values
Field = Callable[[Any, Array, Mapping[str, Any]], Array]


@dataclasses.dataclass(frozen=True)
class PhysicalFamily:
    """A parametric vector field ``F_p(y; theta)`` used as a (possibly incomplete) prior.

    Attributes:
        name: identifier, e.g. ``"frictionless"`` or ``"complete"``.
        param_names: the trainable physical parameters, e.g. ``("omega0_sq",)``.
        field: ``field(t, y, theta) -> dy/dt`` with ``theta`` a dict over ``param_names``.
        init: initial values of the parameters (the released code's, unless noted).
        description: one line on what the family leaves out.
    """

    name: str
    param_names: tuple[str, ...]
    field: Field
    init: Mapping[str, float]
    description: str = ""

    def __post_init__(self):
        if set(self.init) != set(self.param_names):
            raise ValueError(
                f"family {self.name!r}: init has {sorted(self.init)}, params are {list(self.param_names)}"
            )


@dataclasses.dataclass(frozen=True)
class System:
    """A physical system.

    Attributes:
        name: registry name.
        state_shape: shape of one state, e.g. ``(2,)`` or ``(2, 32, 32)``.
        field: the true vector field ``field(t, y, params)`` (one state, unbatched).
        params: default physical parameters.
        families: physical priors by name.
        sample_initial: ``sample_initial(n, *, key, **options) -> [n, *state_shape]``.
        generate: ``generate(split, **options) -> TrajectoryDataset`` (see the module).
        description: one line.
    """

    name: str
    state_shape: tuple[int, ...]
    field: Field
    params: Mapping[str, float]
    families: Mapping[str, PhysicalFamily]
    sample_initial: Callable[..., Array]
    generate: Callable[..., Any]
    description: str = ""

    def family(self, name: str) -> PhysicalFamily:
        """The physical family called ``name``; ``ValueError`` listing the known ones."""
        if name not in self.families:
            raise ValueError(
                f"system {self.name!r} has no physical family {name!r}; known: {', '.join(self.families)}"
            )
        return self.families[name]

    def check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults overridden by ``params``; ``ValueError`` on unknown parameter names."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {sorted(unknown)} for system {self.name!r}; "
                f"allowed: {', '.join(self.params)}"
            )
        return {**self.params, **params}


_SYSTEMS: dict[str, System] = {}


def register(system: System) -> System:
    """Adds ``system`` to the registry (by ``system.name``) and returns it."""
    if system.name in _SYSTEMS:
        raise ValueError(f"system {system.name!r} is already registered")
    _SYSTEMS[system.name] = system
    return system


def get_system(name: str) -> System:
    """The system called ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in _SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known: {', '.join(sorted(_SYSTEMS))}")
    return _SYSTEMS[name]


def system_names() -> list[str]:
    """Registered system names, sorted."""
    return sorted(_SYSTEMS)
