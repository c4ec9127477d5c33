"""``solver-convergence``: measured order of every shipped solver on an analytic ODE.

The test problem is the non-autonomous logistic equation ``y' = 2 y (1 - y) cos(t)`` with
the exact solution ``y(t) = 1 / (1 + exp(-(2 sin(t) + logit(y0))))``: nonlinear (so it
exercises the full order conditions, not only the stability polynomial) and
time-dependent (so it checks the tableaux' ``c`` nodes). Each seed draws its own
``y0 ~ U[0.2, 0.4]``. The error is the maximum over 5 save times in ``[0, T]``, in float64,
and the order is the least-squares slope of ``log(error)`` vs ``log(dt)``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.experiments.registry import register
from dynajax.solve import SOLVERS, integrate

T_END = 4.0
TOLERANCE = 0.2  # |measured - expected order| allowed by the checks

# Steps per unit of T_END, per solver: in the asymptotic regime, with errors far above
# float64 round-off (chosen by measuring the local slopes); multiples of 4 so that the save
# times fall on steps (no dense-output interpolation). ``quick`` uses the last 4.
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


@register("solver-convergence", "Measured convergence order of every shipped ODE solver on an analytic nonlinear ODE")
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_dt = 4 if scale == "quick" else 6
    rows, checks = [], []
    fig, ax = plt.subplots(figsize=(6, 4.5))
    with jax.enable_x64(True):
        y0 = jax.random.uniform(jax.random.key(0), (seeds,), jnp.float64, 0.2, 0.4)
        for name, (_, order, _) in SOLVERS.items():
            n_steps = STEPS[name][-n_dt:]
            dts = [T_END / n for n in n_steps]
            errs = errors(name, n_steps, y0)
            orders = slope(dts, errs)
            rows.append(Row(name, {"order": orders, "error_at_smallest_dt": errs[-1]}, {"order": order}))
            worst = float(np.max(np.abs(orders - order)))
            checks.append(
                Check(
                    f"{name} order within {TOLERANCE} of {order}",
                    worst <= TOLERANCE,
                    f"measured {np.mean(orders):.3f} (worst seed off by {worst:.3f})",
                )
            )
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
        "solution sigmoid(2 sin t + logit y0); error = max over 5 save times in [0, 4], "
        "float64, fixed steps. The reference column is each solver's theoretical order. "
        "`rk4_38` is the 3/8 rule (torchdiffeq's `rk4`)."
    )
    return Result(rows=rows, checks=checks, figures=figures, notes=notes)
