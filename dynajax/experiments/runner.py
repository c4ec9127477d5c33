"""Runs a registered experiment and writes its outputs (the ``reproduce`` command)."""

from __future__ import annotations

import time
from pathlib import Path

import jax

import dynajax
from dynajax._io import ensure_writable_dir
from dynajax.experiments.registry import SCALES, get_experiment
from dynajax.experiments.results import metrics_dict, write_outputs


def reproduce(name: str, *, scale: str = "quick", seeds: int | None = None, out: str | Path = "runs") -> dict:
    """Runs experiment ``name`` and writes ``out/name/{metrics.json, report.md, *.png}``.

    Returns:
        The ``metrics.json`` content.

    Raises:
        ValueError: unknown experiment or scale, ``seeds < 1``, unwritable ``out``.
    """
    exp = get_experiment(name)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; allowed: {', '.join(SCALES)}")
    seeds = exp.default_seeds if seeds is None else seeds
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    out_dir = ensure_writable_dir(Path(out) / name)
    start = time.perf_counter()
    result = exp.run(scale, seeds, out_dir)
    wall = time.perf_counter() - start
    versions = {"dynajax": dynajax.__version__, "jax": jax.__version__}
    metrics = metrics_dict(name, scale, seeds, wall, versions, result)
    write_outputs(out_dir, metrics, result)
    return metrics
