"""Reproduced experiments: a registry, one module per experiment, and the runner.

Importing this package registers every experiment.
"""

from dynajax.experiments import solver_convergence, systems_calibration  # noqa: F401  (registers)
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
