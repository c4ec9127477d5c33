"""Reproduced experiments: a registry, one module per experiment, and the runner.

Importing this package registers every experiment: each module here other than the
machinery (registry, results, runner) holds experiments and is imported below, so adding an
experiment is adding one file.
"""

import importlib
import pkgutil

from dynajax.experiments.registry import Experiment, experiment_names, get_experiment, register
from dynajax.experiments.results import Check, Result, Row
from dynajax.experiments.runner import reproduce

__all__ = [
    "Check",
    "Experiment",
    "Result",
    "Row",
    "experiment_names",
    "get_experiment",
    "register",
    "reproduce",
]

_MACHINERY = {"registry", "results", "runner"}
for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in _MACHINERY and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
