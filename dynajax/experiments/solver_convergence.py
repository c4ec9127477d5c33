"""``solver-convergence``: measured order of every shipped solver on an analytic ODE.

The test problem is the non-autonomous logistic equation ``y' = 2 y (1 - y) cos(t)`` with
the exact solution ``y(t) = 1 / (1 + exp(-(2 sin(t) + logit(y0))))``: nonlinear (so it
exercises the full order conditions, not only the stability polynomial) and
time-dependent (so it checks the tableaux' ``c`` nodes). Each seed draws its own
``y0 ~ U[0.2, 0.4]``. The error is the maximum over 5 save times in ``[0, T]``, in float64,
and the order is the least-squares slope of ``log(error)`` vs ``log(dt)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Result, Row, band, save_figure
from dynajax.solve import SOLVERS, integrate

T_END = 4.0

# Step counts over [0, T_END], per solver: in the asymptotic regime, with errors far above
# float64 round-off; multiples of 4 so that the save times fall on steps (no dense-output
# interpolation).
STEPS: dict[str, list[int]] = {
    "euler": [32, 64, 128, 256, 512, 1024],
    "midpoint": [32, 64, 128, 256, 512, 1024],
    "heun": [32, 64, 128, 256, 512, 1024],
    "rk4": [16, 32, 64, 128, 256, 512],
    "rk4_38": [16, 32, 64, 128, 256, 512],
    "tsit5": [96, 128, 160, 192, 224, 256],
    "dopri5": [64, 80, 96, 128, 160, 192],
    "dopri8": [12, 16, 20, 24, 28, 32],
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SolverConvergenceConfig(ExperimentConfig):
    """Sizes of the order study (no paper table: the reference is each solver's theoretical order).

    Attributes:
        n_dt: how many step counts per solver, the finest ones of :data:`STEPS`.
        tolerance: allowed ``|measured - theoretical order|`` (the band of the checks).
    """

    n_dt: int = 6
    tolerance: float = 0.2

    def __post_init__(self):
        if not 2 <= self.n_dt <= len(STEPS["euler"]):
            raise ValueError(f"n_dt must be in [2, {len(STEPS['euler'])}], got {self.n_dt}")


QUICK = SolverConvergenceConfig(seeds=3, n_dt=4)
FULL = SolverConvergenceConfig(seeds=3, n_dt=6)
DEMO = SolverConvergenceConfig(seeds=2, n_dt=3)

def field(t, y, args):
    return 2.0 * y * (1.0 - y) * jnp.cos(t)


def exact(t, y0):
    return jax.nn.sigmoid(2.0 * jnp.sin(t) + jnp.log(y0 / (1.0 - y0)))


def errors(solver: str, n_steps: list[int], y0: jax.Array) -> np.ndarray:
    """Max-over-save-times absolute errors, shape ``[len(n_steps), n_seeds]``."""
    ts = jnp.linspace(0.0, T_END, 5)

    def err(dt, y):
        ys = integrate(field, y, ts, solver=solver, dt0=dt, max_steps=max(n_steps) + 1)
        return jnp.max(jnp.abs(ys - exact(ts, y)))

    dts = T_END / jnp.asarray(n_steps, jnp.float64)
    grid = jax.jit(jax.vmap(jax.vmap(err, in_axes=(None, 0)), in_axes=(0, None)))
    return np.asarray(grid(dts, y0))


def slope(dts, errs) -> np.ndarray:
    """Least-squares slope of log(err) against log(dt), per seed (last axis)."""
    return np.polyfit(np.log(np.asarray(dts)), np.log(errs), 1)[0]


@register("solver-convergence", "Measured convergence order of every shipped ODE solver on an analytic nonlinear ODE",
          configs={"demo": DEMO, "quick": QUICK, "full": FULL})
def run(cfg: SolverConvergenceConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, checks = [], []
    fig, ax = plt.subplots(figsize=(6, 4.5))
    with jax.enable_x64(True):
        y0 = jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float64, 0.2, 0.4))(seed_keys(seeds))
        for name, (_, order, _) in SOLVERS.items():
            n_steps = STEPS[name][-cfg.n_dt:]
            dts = [T_END / n for n in n_steps]
            errs = errors(name, n_steps, y0)
            orders = slope(dts, errs)
            rows.append(Row(name, {"order": orders, "error_at_smallest_dt": errs[-1]}, {"order": order}))
            checks.append(band(f"{name} order (mean over seeds)", float(np.mean(orders)), order, cfg.tolerance))
            (line,) = ax.loglog(dts, errs.mean(axis=1), "o-", label=f"{name} ({np.mean(orders):.2f})")
            # reference slope through the last point
            ref = errs.mean(axis=1)[-1] * (np.asarray(dts) / dts[-1]) ** order
            ax.loglog(dts, ref, ":", color=line.get_color(), alpha=0.6)
    ax.set_xlabel("step size dt")
    ax.set_ylabel(f"max error over save times in [0, {T_END}]")
    ax.set_title("Measured order (legend) vs expected slope (dotted)")
    ax.legend(fontsize=7)
    figures = [save_figure(fig, out_dir / "convergence.png")]
    notes = (
        "Problem: y' = 2 y (1 - y) cos t, y(0) = y0 ~ U[0.2, 0.4] (one y0 per seed), exact "
        f"solution sigmoid(2 sin t + logit y0); error = max over 5 save times in [0, {T_END}], "
        f"float64, fixed steps, the {cfg.n_dt} finest step counts of each solver. The reference "
        "column is each solver's theoretical order. `rk4_38` is the 3/8 rule (torchdiffeq's `rk4`)."
    )
    return Result(rows=rows, checks=checks, figures=figures, notes=notes)
