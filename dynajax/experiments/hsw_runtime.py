"""``hsw-runtime``: time of GHSW, HHSW, Euclidean SW and exact hyperbolic OT against ``n``.

Protocol (Bonet, Chapel, Drumetz and Courty 2023, "Hyperbolic sliced-Wasserstein via geodesic
and horospherical projections", runtime figure): two clouds of ``n`` samples of wrapped normals on
``L^2`` (Lorentz coordinates), ``n_proj`` directions; GHSW_2 and HHSW_2
(:func:`dynajax.transport.hyperbolic_sliced_wasserstein_distance`), the Euclidean SW_2 of the
Lorentz coordinates (:func:`dynajax.transport.sliced_wasserstein_distance`) and the exact W_2^2
with the squared geodesic cost (POT network simplex, :func:`dynajax.transport.hyperbolic_wasserstein`,
up to ``exact_max_n``). Each time is the median of ``repeats`` calls after a compiling call; the
log-log slope of time against ``n`` is fitted per method. The paper shows figures only: the checks
are its findings as trends (the sliced distances scale like ``n log n``, exact OT super-linearly,
and the hyperbolic projections cost about what the Euclidean ones do).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.transport.hyperbolic import hyperbolic_wasserstein, poincare_to_lorentz, wrapped_normal_sample
from dynajax.transport.hyperbolic_sliced import hyperbolic_sliced_wasserstein_distance
from dynajax.transport.sliced import random_directions, sliced_wasserstein_distance

METHODS = ("GHSW", "HHSW", "SW", "exact OT")


@dataclasses.dataclass(frozen=True, kw_only=True)
class HswRuntimeConfig(ExperimentConfig):
    """Sizes of the runtime study.

    Attributes:
        sizes: cloud sizes ``n``; exact_max_n: the largest ``n`` given to exact OT.
        n_proj: directions.
        repeats: timed calls per point (median).
    """

    sizes: tuple = (100, 300, 1000, 3000, 10000, 100000)
    exact_max_n: int = 3000
    n_proj: int = 200
    repeats: int = 3


QUICK = HswRuntimeConfig(seeds=1)
# Bonet et al. 2023 (runtime figure): n from 1e2 to 1e5, 200 projections, exact OT as far as it goes.
FULL = HswRuntimeConfig(seeds=1, sizes=(100, 300, 1000, 3000, 10000, 30000, 100000), exact_max_n=10000, repeats=5)


def _time(fn, repeats):
    jax.block_until_ready(fn())  # compile
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def run_one(key, cfg):
    kx, ky, kp = jax.random.split(key, 3)
    th = random_directions(cfg.n_proj, 2, key=kp)
    th3 = random_directions(cfg.n_proj, 3, key=kp)  # SW of the Lorentz coordinates: directions of R^3
    out = {m: {} for m in METHODS}
    for n in cfg.sizes:
        x = wrapped_normal_sample(jnp.zeros(3).at[0].set(1.0), 0.3 * jnp.eye(2), n, key=jax.random.fold_in(kx, n))
        y = wrapped_normal_sample(poincare_to_lorentz(jnp.array([0.3, 0.2])), 0.2 * jnp.eye(2), n,
                                  key=jax.random.fold_in(ky, n))
        fns = {"GHSW": lambda: hyperbolic_sliced_wasserstein_distance(x, y, projections=th, projection="geodesic"),
               "HHSW": lambda: hyperbolic_sliced_wasserstein_distance(x, y, projections=th, projection="horospherical"),
               "SW": lambda: sliced_wasserstein_distance(x, y, projections=th3)}
        if n <= cfg.exact_max_n:
            fns["exact OT"] = lambda: hyperbolic_wasserstein(x, y)
        for m, fn in fns.items():
            out[m][n] = _time(fn, cfg.repeats if n <= cfg.exact_max_n or m != "exact OT" else 1)
    return out


def _slope(d):
    ns = sorted(d)
    return float(np.polyfit(np.log(ns), np.log([d[n] for n in ns]), 1)[0]) if len(ns) > 1 else float("nan")


@register("hsw-runtime", "Runtime of GHSW / HHSW vs Euclidean SW and exact hyperbolic OT against n "
          "(log-log slopes)", configs={"quick": QUICK, "full": FULL})
def run(cfg: HswRuntimeConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    res = [run_one(k, cfg) for k in seed_keys(seeds)]
    rows, slopes = [], {}
    for m in METHODS:
        ns = sorted(res[0][m])
        slopes[m] = float(np.mean([_slope(r[m]) for r in res]))
        rows.append(Row(m, {**{f"time_s_n{n}": [r[m][n] for r in res] for n in ns},
                            "loglog_slope": [_slope(r[m]) for r in res]}))
    big = max(cfg.sizes)
    ratio = float(np.mean([r["GHSW"][big] / r["SW"][big] for r in res]))
    checks = [
        Check("sliced distances scale like n log n (log-log slope < 1.3 for GHSW, HHSW, SW)",
              max(slopes["GHSW"], slopes["HHSW"], slopes["SW"]) < 1.3,
              ", ".join(f"{m} {slopes[m]:.2f}" for m in ("GHSW", "HHSW", "SW"))),
        Check("exact OT grows faster than the sliced distances", slopes["exact OT"] > slopes["GHSW"] + 0.3,
              f"exact {slopes['exact OT']:.2f} vs GHSW {slopes['GHSW']:.2f}"),
        Check(f"hyperbolic projections cost about the Euclidean ones (GHSW / SW time <= 3 at n = {big})",
              ratio <= 3.0, f"ratio {ratio:.2f}"),
    ]
    notes = (f"Wrapped normals on L^2, {cfg.n_proj} directions, median of {cfg.repeats} timed calls after a "
             f"compiling one, exact OT up to n = {cfg.exact_max_n} (host network simplex, float32 cost). Slopes: "
             + ", ".join(f"{m} {s:.2f}" for m, s in slopes.items()) + f"; GHSW/SW time ratio at n = {big}: "
             f"{ratio:.2f}. Timings are of this machine; the paper shows figures only.")
    return Result(rows=rows, checks=checks, figures=[_plot(res[0], out_dir)], notes=notes)


def _plot(r, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.8))
    for m in METHODS:
        ns = sorted(r[m])
        ax.loglog(ns, [r[m][n] for n in ns], "o-", label=f"{m} (slope {_slope(r[m]):.2f})")
    ax.set_xlabel("n")
    ax.set_ylabel("seconds per call")
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir / "hsw_runtime.png")
