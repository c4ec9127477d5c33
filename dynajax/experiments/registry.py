"""The experiment registry: every reproduction the CLI can run, by stable name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from dynajax.experiments.results import Result

SCALES = ("quick", "full")

# run(scale, seeds, out_dir) -> Result; figures go into out_dir.
RunFn = Callable[[str, int, Path], Result]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    Attributes:
        name: stable identifier used on the command line.
        description: one line for ``dynajax list``.
        run: ``run(scale, seeds, out_dir) -> Result``.
        default_seeds: seeds when ``--seeds`` is not given.
        quick_suite: whether ``--suite quick`` runs it.
    """

    name: str
    description: str
    run: RunFn
    default_seeds: int = 3
    quick_suite: bool = True


_REGISTRY: dict[str, Experiment] = {}


def register(name: str, description: str, *, default_seeds: int = 3, quick_suite: bool = True):
    """Decorator registering ``run(scale, seeds, out_dir) -> Result`` under ``name``."""

    def wrap(run: RunFn) -> RunFn:
        if name in _REGISTRY:
            raise ValueError(f"experiment {name!r} is already registered")
        _REGISTRY[name] = Experiment(name, description, run, default_seeds, quick_suite)
        return run

    return wrap


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def experiment_names(suite: str | None = None) -> list[str]:
    """Registered names, sorted; ``suite="quick"`` keeps the quick suite only."""
    if suite not in (None, "quick"):
        raise ValueError(f"unknown suite {suite!r}; allowed: quick")
    return sorted(n for n, e in _REGISTRY.items() if suite is None or e.quick_suite)
