"""Timed slices: the wall time of a scale's run, extrapolated from two short runs of it.

A slice is the scale's configuration with its budget fields (declared at registration: the
step counts first, then the periods between evaluations, scaled with them so that the number
of evaluations stays that of the configuration) multiplied by a fraction ``f``. Its wall time
is modelled as ``T(f) = a + b f``: ``a`` holds what does not scale with the steps
(compilation, data, evaluations), ``b`` the steps. Two slices give ``a`` and ``b``, and the
estimate of the whole run is ``T(1) = a + b``. Each slice compiles from scratch (in-memory
caches cleared, persistent cache off), as a first run on a fresh machine does.

The estimate is written to ``OUT/NAME/SCALE/estimate.json`` beside where the record will go;
the scorecard shows it on the row of a record not yet run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import jax

from dynajax._io import atomic_write_text, ensure_writable_dir
from dynajax.experiments.config import ExperimentConfig, config_dict
from dynajax.experiments.record import git_state, hardware, load_average, now_utc, versions
from dynajax.experiments.registry import get_experiment
from dynajax.experiments.runner import reproduce, run_dir

ESTIMATE_FILE = "estimate.json"


def _scaled(value: int, fraction: float) -> int:
    return max(1, round(value * fraction))


def slice_overrides(cfg: ExperimentConfig, budget: Sequence[str], fraction: float) -> tuple[list[str], float]:
    """The ``--set`` assignments of the slice at ``fraction``, and its effective fraction.

    Args:
        cfg: the configuration to slice.
        budget: its budget fields (ints or tuples of ints); the first sets the run's length.
        fraction: in ``(0, 1]``; each field becomes ``max(1, round(value * fraction))``.

    Returns:
        ``(assignments, effective)``: ``effective`` is the first field's scaled / full value
        (rounding moves it off ``fraction`` for short runs).

    Raises:
        ValueError: no budget fields, or a fraction outside ``(0, 1]``.
    """
    if not budget:
        raise ValueError(f"{type(cfg).__name__} declares no budget fields: its run cannot be sliced")
    if not 0 < fraction <= 1:
        raise ValueError(f"a slice fraction must be in (0, 1], got {fraction}")
    sets, effective = [], None
    for name in budget:
        value = getattr(cfg, name)
        new = tuple(_scaled(v, fraction) for v in value) if isinstance(value, tuple) else _scaled(value, fraction)
        sets.append(f"{name}={new!r}")
        if effective is None:
            effective = (sum(new) / sum(value)) if isinstance(value, tuple) else new / value
    return sets, effective


def fit_estimate(fractions: Sequence[float], walls: Sequence[float]) -> dict[str, float]:
    """``T(f) = a + b f`` through two timed slices; ``b`` is clipped at 0 (timing noise).

    Returns:
        ``{"fixed_seconds": a, "scaling_seconds": b, "estimate_seconds": a + b}``.
    """
    (f1, f2), (t1, t2) = fractions, walls
    if not 0 < f1 < f2 <= 1:
        raise ValueError(f"need two increasing fractions in (0, 1], got {f1}, {f2}")
    b = max(0.0, (t2 - t1) / (f2 - f1))
    a = t2 - b * f2
    return {"fixed_seconds": round(a, 1), "scaling_seconds": round(b, 1), "estimate_seconds": round(a + b, 1)}


def estimate(name: str, *, scale: str = "full", fractions: Sequence[float] = (0.0025, 0.01),
             out: str | Path = "results", force: bool = False) -> dict:
    """Times two slices of experiment ``name`` at ``scale`` and writes ``estimate.json``.

    Args:
        name: a registered experiment declaring budget fields.
        scale: the configuration to estimate (``full`` or ``gpu`` usually).
        fractions: two increasing fractions of the budget.
        out: the records' root; the estimate goes to ``out/NAME/SCALE/estimate.json``.
        force: replace an existing estimate (refused otherwise).

    Returns:
        The ``estimate.json`` content.

    Raises:
        ValueError: unknown experiment or scale, no budget fields, bad fractions, or an
            existing estimate without ``force``.
    """
    exp = get_experiment(name)
    cfg = exp.config(scale)
    if len(fractions) != 2:
        raise ValueError(f"need two fractions, got {list(fractions)}")
    slices = [slice_overrides(cfg, exp.budget, f) for f in fractions]
    effective = [e for _, e in slices]
    if not 0 < effective[0] < effective[1] <= 1:
        raise ValueError(f"need two fractions whose slices differ, got {list(fractions)} "
                         f"(effective {effective} of {exp.budget[0]}={getattr(cfg, exp.budget[0])})")
    folder = run_dir(name, scale, out, record=True)
    new_dirs = [d for d in (folder, folder.parent) if not d.exists()]  # out/NAME/SCALE, out/NAME
    path = ensure_writable_dir(folder) / ESTIMATE_FILE  # checked writable before any timing
    if path.exists() and not force:
        raise ValueError(f"{path} exists; pass force=True (--force) to replace it")
    started, timed = now_utc(), []
    persistent = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        with tempfile.TemporaryDirectory(prefix="dynajax-slice-") as tmp:
            for (sets, eff), fraction in zip(slices, fractions):
                jax.clear_caches()
                load = load_average()
                metrics = reproduce(name, scale=scale, overrides=sets, out=Path(tmp) / f"{fraction}")
                timed.append({"fraction": eff, "overrides": sets, "wall_seconds": metrics["wall_seconds"],
                              "load_average": {"start": load, "end": load_average()}})
    except BaseException:
        for d in new_dirs:  # a failed slice leaves no empty folder behind
            if not any(d.iterdir()):
                d.rmdir()
        raise
    finally:
        jax.config.update("jax_enable_compilation_cache", persistent)
    fit = fit_estimate(effective, [t["wall_seconds"] for t in timed])
    content = {"experiment": name, "scale": scale, "budget": list(exp.budget),
               "config": config_dict(cfg), "slices": timed, **fit,
               "started": started, "finished": now_utc(), **git_state(), "versions": versions(),
               "hardware": hardware()}
    text = json.dumps(content, indent=2) + "\n"
    atomic_write_text(path, text)
    return json.loads(text)
