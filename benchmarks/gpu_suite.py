"""The accelerator suite: every workload at the sizes a GPU is for, in one command.

``python -m benchmarks --suite gpu`` runs, in one process:

- ``integrate`` with a batch of 65 536 MLP-field ODEs (forward and forward + backward), torch
  and torchdiffeq on the same accelerator when ``torch.cuda`` is available;
- ``sliced``: SW / SSW at n = 10^4 .. 10^6 points (POT on the host beside them);
- ``gantk-big``: infinite-width IPM steps with N = M = 20 000 particles;
- ``aphynity``, ``leads``, ``least_action``, ``otflow`` and ``node-train`` at their own sizes
  (their torch references on the host CPU);
- ``compile``: cold and warm first step against the steady step.

It writes ``<out>/<device>.json`` (rows, notes, environment, the suite's wall time) and
``<out>/<device>.md`` (the table), ``<device>`` the accelerator's kind (``cpu`` on a host).
``--tiny`` runs the same code at toy sizes (the test suite does, so the suite never rots).
Budget on an H100: under 8 minutes in all.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from benchmarks import harness

WORKLOADS = ("integrate", "sliced", "gantk-big", "aphynity", "leads", "least_action", "otflow", "node-train",
             "compile")


def device_name() -> str:
    """``jax.devices()[0].device_kind`` as a file name: ``nvidia-h100-80gb-hbm3``, ``cpu``."""
    import jax

    dev = jax.devices()[0]
    kind = "cpu" if dev.platform == "cpu" else dev.device_kind
    return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or dev.platform


def _run(name: str, ctx: harness.Context, tiny: bool) -> list[harness.Row]:
    from benchmarks import compile as comp
    from benchmarks import gantk, integrate, sliced

    if name == "integrate":  # torch on the same accelerator when it sees one
        cfg = integrate.Config(batch=64, steps=10) if tiny else integrate.Config(batch=65_536)
        return integrate.run_integrate(ctx, cfg, torch_device="auto")
    if name == "sliced":
        return sliced.run_sliced(ctx, sizes=(100,) if tiny else (10_000, 100_000, 1_000_000))
    if name == "compile":
        return comp.run(ctx, families=("gantk",) if tiny else comp.FAMILIES)
    if name == "gantk-big":
        return gantk.run_big(ctx, n=64 if tiny else 20_000, steps=1 if tiny else 3)
    return harness.WORKLOADS[name].run(ctx)


def run_suite(out: str | os.PathLike, *, tiny: bool = False, repeats: int = 5,
              names: tuple[str, ...] = WORKLOADS, force: bool = False) -> Path:
    """Runs the suite; returns the path of the JSON record (an existing one is kept unless ``force``)."""
    unknown = set(names) - set(WORKLOADS)
    if unknown:
        raise ValueError(f"unknown suite workload(s) {sorted(unknown)}; allowed: {', '.join(WORKLOADS)}")
    stem = device_name() + ("-tiny" if tiny else "")
    out = Path(out)
    if (out / f"{stem}.json").exists() and not force:
        raise ValueError(f"{out / f'{stem}.json'} already holds a suite record; pass force=True (--force) to "
                         "replace it, or another output directory")
    ctx = harness.Context(repeats=repeats)
    t0 = time.perf_counter()
    rows: list[harness.Row] = []
    for name in names:
        ctx.note(f"suite: {name} starts at {time.perf_counter() - t0:.0f} s")
        rows += _run(name, ctx, tiny)
    rows = harness.fill_ratios(rows)
    wall = time.perf_counter() - t0
    ctx.note(f"suite: {len(names)} workloads in {wall:.0f} s" + (" (tiny sizes)" if tiny else ""))
    out.mkdir(parents=True, exist_ok=True)
    harness.write_json(out / f"{stem}.json", rows, ctx.notes)
    from dynajax._io import atomic_write_text

    atomic_write_text(out / f"{stem}.md", "```\n" + harness.format_table(rows) + "\n```\n\n"
                      + "\n".join(f"- {n}" for n in ctx.notes) + "\n")
    return out / f"{stem}.json"
