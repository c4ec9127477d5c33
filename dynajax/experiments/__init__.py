"""Reproduced experiments: a registry, one module per experiment, the runner and the scorecard.

Importing this package registers every experiment: each module here other than the
machinery (config, estimate, record, registry, results, runner, scorecard) holds experiments and is
imported below, so adding an experiment is adding one file. An experiment module is a frozen
config (:class:`ExperimentConfig`) with its ``quick`` and ``full`` instances, a ``run`` that
calls the library, and its checks (:func:`band` / trend :class:`Check`).
"""

import importlib
import pkgutil

from dynajax.experiments.config import ExperimentConfig, override, seed_keys
from dynajax.experiments.registry import Experiment, experiment_names, get_experiment, register
from dynajax.experiments.results import Check, Result, Row, band, status
from dynajax.experiments.runner import reproduce

__all__ = [
    "Check",
    "Experiment",
    "ExperimentConfig",
    "Result",
    "Row",
    "band",
    "experiment_names",
    "get_experiment",
    "override",
    "register",
    "reproduce",
    "seed_keys",
    "status",
]

_MACHINERY = {"config", "estimate", "record", "registry", "results", "runner", "scorecard"}
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in _MACHINERY and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
