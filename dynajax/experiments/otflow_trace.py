"""``otflow-trace``: the exact Hessian trace of the OT-Flow potential vs Hutchinson vs autodiff.

Protocol (Onken et al., AAAI 2021, Sec. 4 and Fig. 3, the trace study): for a potential of
width ``m`` and ``M = 2`` layers with random weights, at a batch of ``n`` points in
``d = 2, 43, 63, 784`` (the toy, MINIBOONE, BSDS300 and MNIST dimensions), compute
``tr(grad_x^2 Phi)`` by

* the closed form through the layers (:meth:`dynajax.cnf.Potential.grad_and_laplacian`),
* Hutchinson's estimator with 1 and ``k`` Rademacher probes (JVPs of the closed-form gradient),
* autodiff (the full Jacobian of the gradient by ``d`` forward-mode JVPs), the reference,

timing each (median of compiled calls) and reporting the relative error
``mean |tr_est - tr_ad| / mean |tr_ad|``. The paper's claims, checked as trends: the exact trace
matches autodiff to float32 round-off, costs far less than autodiff in high dimension, and costs
the order of one Hutchinson probe, whose error is orders of magnitude larger.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.cnf import Potential, autodiff_divergence, hutchinson_divergence
from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, median_seconds

EXACT_RTOL = 1e-5  # float32 round-off of a sum of d terms
COST_FACTOR = 3.0  # "the order of one Hutchinson probe": within this factor


@dataclasses.dataclass(frozen=True, kw_only=True)
class OtflowTraceConfig(ExperimentConfig):
    """Sizes of the trace study.

    Attributes:
        dims: dimensions ``d``.
        n: points per batch.
        width: ResNet width ``m``.
        n_layers: ResNet layers ``M``.
        probes: ``k``, the larger number of Hutchinson probes.
        repeats: timed calls per method (median).
    """

    dims: tuple[int, ...] = (2, 43, 63, 784)
    n: int = 512
    width: int = 64
    n_layers: int = 2
    probes: int = 16
    repeats: int = 5


QUICK = OtflowTraceConfig(seeds=2, n=128, repeats=3)
# Onken et al. 2021 Fig. 3: d = 2, 43, 63, 784; m as their models (64 here), batch 512.
FULL = OtflowTraceConfig(seeds=5)


def measure(cfg: OtflowTraceConfig, d: int, key) -> dict[str, float]:
    """Times and relative errors of the four methods at one ``d`` for one random potential."""
    pot = Potential(d, width=cfg.width, n_layers=cfg.n_layers)
    k1, k2, k3 = jax.random.split(key, 3)
    p = pot.init(key=k1)
    p = {**p, "w": jax.random.normal(k2, p["w"].shape)}
    x = jax.random.normal(k3, (cfg.n, d))
    field = lambda y: pot.grad(p, y[None], 0.5)[0][0]  # noqa: E731
    fns = {
        "exact": jax.jit(lambda y: pot.grad_and_laplacian(p, y, 0.5)[2]),
        "hutchinson-1": jax.jit(lambda y, k: hutchinson_divergence(field, y, key=k)),
        f"hutchinson-{cfg.probes}": jax.jit(lambda y, k: hutchinson_divergence(field, y, key=k, n_probes=cfg.probes)),
        "autodiff": jax.jit(lambda y: autodiff_divergence(field, y)),
    }
    ref = fns["autodiff"](x)
    out = {}
    for name, fn in fns.items():
        args = (x,) if name in ("exact", "autodiff") else (x, jax.random.fold_in(key, 7))
        out[f"{name} time_ms"] = 1e3 * median_seconds(fn, *args, repeats=cfg.repeats)
        out[f"{name} rel_err"] = float(jnp.mean(jnp.abs(fn(*args) - ref)) / jnp.mean(jnp.abs(ref)))
    return out


@register("otflow-trace", "OT-Flow exact Hessian trace vs Hutchinson vs autodiff: time and error, d = 2..784",
          configs={"quick": QUICK, "full": FULL})
def run(cfg: OtflowTraceConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    keys = seed_keys(seeds, 21)
    methods = ("exact", "hutchinson-1", f"hutchinson-{cfg.probes}", "autodiff")
    res = {d: [measure(cfg, d, k) for k in keys] for d in cfg.dims}
    rows, checks = [], []
    for d in cfg.dims:
        vals = {k: [r[k] for r in res[d]] for k in res[d][0]}
        for meth in methods:
            rows.append(Row(f"d={d} {meth}", {"time_ms": vals[f"{meth} time_ms"], "rel_err": vals[f"{meth} rel_err"]},
                            {"time_ms": None, "rel_err": None}))
    mean = lambda d, key: float(np.mean([r[key] for r in res[d]]))  # noqa: E731
    worst = max(mean(d, "exact rel_err") for d in cfg.dims)
    checks.append(Check(f"exact trace = autodiff to {EXACT_RTOL:g} (relative) in every d", worst < EXACT_RTOL,
                        f"worst mean relative error {worst:.2e}"))
    dmax = max(cfg.dims)
    t_ex, t_h1, t_ad = (mean(dmax, f"{m} time_ms") for m in ("exact", "hutchinson-1", "autodiff"))
    checks.append(Check(f"d={dmax}: exact trace faster than autodiff", t_ex < t_ad,
                        f"{t_ex:.3g} ms vs {t_ad:.3g} ms (x{t_ad / t_ex:.1f})"))
    checks.append(Check(f"d={dmax}: exact trace within {COST_FACTOR:g}x of one Hutchinson probe", t_ex < COST_FACTOR * t_h1,
                        f"{t_ex:.3g} ms vs {t_h1:.3g} ms"))
    h1 = min(mean(d, "hutchinson-1 rel_err") for d in cfg.dims if d > 2)
    checks.append(Check("Hutchinson (1 probe) error >= 1000x the exact trace's for d > 2", h1 > 1e3 * worst,
                        f"smallest Hutchinson-1 mean relative error {h1:.3g} vs exact {worst:.2e}"))
    notes = (f"Random OT-Flow potentials (width {cfg.width}, {cfg.n_layers} layers, w ~ N(0, I)) at {cfg.n} "
             f"standard-normal points, t = 0.5, {len(seeds)} seeds; times are medians of {cfg.repeats} compiled "
             f"calls on this machine (CPU, float32). Hutchinson uses Rademacher probes and JVPs of the "
             f"closed-form gradient; autodiff is {dmax} JVPs per point at d={dmax}. Relative errors are against "
             "autodiff. The paper reports this study as a figure, so the checks are its trends.")
    return Result(rows=rows, checks=checks, notes=notes)
