"""Runs a registered experiment and writes its record (the ``reproduce`` command)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

from dynajax._io import atomic_write_text, ensure_writable_dir
from dynajax.experiments.config import config_dict, override, seed_values
from dynajax.experiments.record import load_average, now_utc, run_record, versions
from dynajax.experiments.registry import SCALES, get_experiment
from dynajax.experiments.results import metrics_dict, write_outputs


def run_dir(name: str, scale: str, out: str | Path, record: bool) -> Path:
    """Where a run goes: ``out/NAME``, or ``out/NAME/SCALE`` for a run record."""
    return Path(out) / name / scale if record else Path(out) / name


def check_free(out_dir: Path, force: bool) -> None:
    """Refuses (``ValueError``) to replace a run in ``out_dir`` unless ``force``."""
    if (out_dir / "metrics.json").exists() and not force:
        raise ValueError(f"{out_dir} already holds a run (metrics.json); pass force=True (--force) to replace it")


def reproduce(name: str, *, scale: str = "quick", seeds: int | None = None, seed_offset: int = 0,
              overrides: Sequence[str] = (), out: str | Path = "runs", record: bool = False,
              force: bool = False) -> dict:
    """Runs experiment ``name`` and writes ``metrics.json``, ``report.md``, ``run.json`` and figures.

    Args:
        name: a registered experiment (``dynajax list``).
        scale: ``demo``, ``quick``, ``full`` or ``gpu`` (those the experiment declares).
        seeds: number of seeds; the config's ``seeds`` when ``None``.
        seed_offset: the run uses seeds ``seed_offset .. seed_offset + seeds - 1``.
        overrides: ``"field=value"`` changes to the scale's config.
        out: output root; the run goes to ``out/NAME`` (``out/NAME/SCALE`` with ``record``).
        record: write a run record in the layout of ``results/``.
        force: replace a run already in the output directory (refused otherwise).

    Returns:
        The ``metrics.json`` content.

    Raises:
        ValueError: unknown experiment, scale or config field, ``seeds < 1``, a negative
            offset, an unwritable ``out``, or an existing run there without ``force``.
    """
    exp = get_experiment(name)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; allowed: {', '.join(SCALES)}")
    cfg = override(exp.config(scale), overrides)
    seed_tuple = seed_values(cfg.seeds if seeds is None else seeds, seed_offset)
    cfg = dataclasses.replace(cfg, seeds=len(seed_tuple))
    out_dir = run_dir(name, scale, out, record)
    check_free(out_dir, force)
    out_dir = ensure_writable_dir(out_dir)
    started, load_start = now_utc(), load_average()
    start = time.perf_counter()
    result = exp.run(cfg, seed_tuple, out_dir)
    wall = time.perf_counter() - start
    v = versions()
    metrics = metrics_dict(name, scale, seed_tuple, wall, {"dynajax": v["dynajax"], "jax": v["jax"]}, result)
    run = run_record(experiment=name, scale=scale, seeds=seed_tuple, config=config_dict(cfg),
                     overrides=list(overrides), started=started, wall_seconds=wall, load_start=load_start)
    write_outputs(out_dir, metrics, result)
    atomic_write_text(out_dir / "run.json", json.dumps(run, indent=2) + "\n")
    return metrics
