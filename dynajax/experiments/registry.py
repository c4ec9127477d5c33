"""The experiment registry: every reproduction the CLI can run, by stable name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from dynajax.experiments.config import ExperimentConfig
from dynajax.experiments.results import Result

# demo: the showcase budget of `make demo`; quick: minutes on 2 cores; full: the paper's
# protocol; gpu: the paper's protocol where it needs an accelerator.
SCALES = ("demo", "quick", "full", "gpu")
SUITES = ("demo", "quick", "gpu")

# run(config, seeds, out_dir) -> Result; seeds are the seed values; figures go into out_dir.
RunFn = Callable[[ExperimentConfig, tuple[int, ...], Path], Result]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    Attributes:
        name: stable identifier used on the command line.
        description: one line for ``dynajax list``.
        run: ``run(config, seeds, out_dir) -> Result``.
        configs: scale name -> config; ``quick`` and ``full`` always, ``demo``/``gpu`` optional.
        quick_suite: whether ``--suite quick`` runs it.
        budget: the fields setting the run's length, scaled by a timed slice
            (:mod:`dynajax.experiments.estimate`): step counts first, then the periods between
            evaluations; empty for a run that cannot be sliced.
    """

    name: str
    description: str
    run: RunFn
    configs: Mapping[str, ExperimentConfig]
    quick_suite: bool = True
    budget: tuple[str, ...] = ()

    def config(self, scale: str) -> ExperimentConfig:
        """The config of ``scale``; ``ValueError`` listing this experiment's scales otherwise."""
        if scale not in self.configs:
            raise ValueError(f"unknown scale {scale!r} for {self.name}; allowed: {', '.join(self.configs)}")
        return self.configs[scale]


_REGISTRY: dict[str, Experiment] = {}


def register(name: str, description: str, *, configs: Mapping[str, ExperimentConfig], quick_suite: bool = True,
             budget: tuple[str, ...] = ()):
    """Decorator registering ``run(config, seeds, out_dir) -> Result`` under ``name``.

    Args:
        budget: see :class:`Experiment`; each must be an int or tuple-of-ints field.

    Raises:
        ValueError: ``name`` taken, ``configs`` without ``quick`` and ``full``, an unknown
            scale, configs of different classes, or a budget field that is not a step count.
    """
    if name in _REGISTRY:
        raise ValueError(f"experiment {name!r} is already registered")
    missing = {"quick", "full"} - set(configs)
    unknown = set(configs) - set(SCALES)
    if missing or unknown:
        raise ValueError(f"{name}: configs need quick and full and only scales {SCALES}; "
                         f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    if len({type(c) for c in configs.values()}) != 1 or not isinstance(configs["quick"], ExperimentConfig):
        raise ValueError(f"{name}: every config must be an instance of the same ExperimentConfig subclass")
    for field in budget:
        value = getattr(configs["full"], field, None)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1
                or isinstance(value, tuple) and value and all(isinstance(v, int) and v >= 1 for v in value)):
            raise ValueError(f"{name}: budget field {field!r} must be a positive int or tuple of ints in the "
                             f"config, got {value!r}")
    ordered = {s: configs[s] for s in SCALES if s in configs}

    def wrap(run: RunFn) -> RunFn:
        _REGISTRY[name] = Experiment(name, description, run, ordered, quick_suite, tuple(budget))
        return run

    return wrap


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def experiment_names(suite: str | None = None) -> list[str]:
    """Registered names, sorted; ``suite="quick"`` keeps the quick suite, ``"demo"`` the showcase,
    ``"gpu"`` the experiments with a ``gpu`` configuration (paper scales that need an accelerator)."""
    if suite not in (None, *SUITES):
        raise ValueError(f"unknown suite {suite!r}; allowed: {', '.join(SUITES)}")
    if suite in ("demo", "gpu"):
        return sorted(n for n, e in _REGISTRY.items() if suite in e.configs)
    return sorted(n for n, e in _REGISTRY.items() if suite is None or e.quick_suite)
