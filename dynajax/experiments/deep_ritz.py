"""``deep-ritz``: Poisson on the unit ball in d = 2, 5, 10 by Deep Ritz and by a PINN residual.

Problem: ``-Lap u = g`` in the unit ball ``B^d``, ``u = u*`` on the sphere, with the exact solution

.. math:: u^*(x) = \\frac1d \\sum_i \\sin(\\pi x_i / 2) + e^{-|x|^2}, \\qquad
    g(x) = \\frac{\\pi^2}{4d}\\sum_i \\sin(\\pi x_i/2) + (2d - 4|x|^2) e^{-|x|^2}.

Both methods train the same tanh MLP (``width`` x 3 hidden layers) on a fixed set of
``n`` interior collocation points drawn uniformly in the ball and ``max(64, n / 4)`` boundary
points drawn uniformly on the sphere, with the same boundary penalty weight ``beta``:

* ``Deep Ritz`` (E & Yu 2018): minimise ``|B| mean(|grad u|^2 / 2 - g u) + beta |S| mean((u - u*)^2)``;
* ``PINN``: minimise ``mean((Lap u + g)^2) + beta mean((u - u*)^2)``.

Metric: relative L2 error ``||u - u*|| / ||u*||`` on fresh uniform test points in the ball,
for each ``d`` and ``n`` (the columns ``rel_l2_n{n}``).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.arch import (
    ball_volume,
    boundary_loss,
    deep_ritz_energy,
    laplacian,
    pinn_loss,
    sample_ball,
    sample_sphere,
    sphere_area,
)
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.nn import MLP
from dynajax.train import init_state, make_step

SIZES = {
    "quick": {"dims": (2, 5, 10), "n_points": (128, 512, 2048), "train_steps": 1500, "width": 32,
              "n_test": 4096, "lr": 3e-3, "beta": 100.0},
    "full": {"dims": (2, 5, 10), "n_points": (256, 1024, 4096, 16384), "train_steps": 10000, "width": 64,
             "n_test": 16384, "lr": 1e-3, "beta": 500.0},
}
METHODS = ("Deep Ritz", "PINN")


def u_exact(x: jnp.ndarray) -> jnp.ndarray:
    """The exact solution at one point ``x: [d]``."""
    return jnp.sum(jnp.sin(0.5 * jnp.pi * x)) / x.shape[-1] + jnp.exp(-jnp.sum(x**2))


def g_rhs(x: jnp.ndarray) -> jnp.ndarray:
    """``-Lap u*`` at one point."""
    d = x.shape[-1]
    r2 = jnp.sum(x**2)
    return (jnp.pi**2 / 4) * jnp.sum(jnp.sin(0.5 * jnp.pi * x)) / d + (2 * d - 4 * r2) * jnp.exp(-r2)


def solve(method: str, d: int, n: int, sizes: dict, seed: int) -> dict[str, float]:
    """Trains one network; returns its test relative L2 error and wall time."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    key = jax.random.fold_in(jax.random.key(seed), 1000 * d + n)
    k_int, k_bnd, k_init, k_test = jax.random.split(key, 4)
    interior = sample_ball(k_int, n, d)
    bnd = sample_sphere(k_bnd, max(64, n // 4), d)
    q = jax.vmap(u_exact)(bnd)
    net = MLP((sizes["width"],) * 3 + (1,), activation="tanh")
    params = net.init(k_init, jnp.zeros((d,)))
    beta = sizes["beta"]

    def loss(p, batch, k):
        u = lambda x: net.apply(p, x)[0]
        if method == "Deep Ritz":
            e, terms = deep_ritz_energy(u, g_rhs, interior, volume=ball_volume(d), boundary=(bnd, q),
                                        area=sphere_area(d), beta=beta)
            return e, terms
        res = lambda u, x: laplacian(u, x) + g_rhs(x)
        return pinn_loss(u, res, interior, boundary=(bnd, q), weights={"boundary": beta})

    opt = optax.adam(optax.cosine_decay_schedule(sizes["lr"], sizes["train_steps"], alpha=0.01))
    step = make_step(loss, opt)

    @jax.jit
    def train(state):
        return jax.lax.scan(lambda s, _: (step(s, None)[0], None), state, None, length=sizes["train_steps"])[0]

    t = time.perf_counter()
    state = jax.block_until_ready(train(init_state(params, opt, k_init)))
    wall = time.perf_counter() - t
    xt = sample_ball(k_test, sizes["n_test"], d)
    pred = net.apply(state.params, xt)[:, 0]
    true = jax.vmap(u_exact)(xt)
    rel = float(jnp.linalg.norm(pred - true) / jnp.linalg.norm(true))
    bmis = float(boundary_loss(lambda x: net.apply(state.params, x)[0], bnd, q))
    return {"rel_l2": rel, "wall_s": wall, "boundary_mse": bmis}


@register(
    "deep-ritz",
    "Poisson on the unit ball in d=2,5,10: Deep Ritz vs PINN residual, relative L2 error vs collocation points",
    default_seeds=1,
)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    sizes = SIZES[scale]
    res = {(m, d, n, s): solve(m, d, n, sizes, s)
           for s in range(seeds) for d in sizes["dims"] for n in sizes["n_points"] for m in METHODS}
    rows = []
    for m in METHODS:
        for d in sizes["dims"]:
            vals = {}
            for n in sizes["n_points"]:
                vals[f"rel_l2_n{n}"] = [res[(m, d, n, s)]["rel_l2"] for s in range(seeds)]
                vals[f"wall_s_n{n}"] = [res[(m, d, n, s)]["wall_s"] for s in range(seeds)]
            rows.append(Row(f"{m} d={d}", vals, {}))

    def err(m, d, n):
        return float(np.mean([res[(m, d, n, s)]["rel_l2"] for s in range(seeds)]))

    n_lo, n_hi = sizes["n_points"][0], sizes["n_points"][-1]
    checks = [
        Check("Deep Ritz reaches < 5% relative L2 in d = 2 with the most points", err("Deep Ritz", 2, n_hi) < 0.05,
              f"{err('Deep Ritz', 2, n_hi):.3%}"),
        Check("PINN reaches < 5% relative L2 in d = 2 with the most points", err("PINN", 2, n_hi) < 0.05,
              f"{err('PINN', 2, n_hi):.3%}"),
        Check(f"more collocation points help in d = {sizes['dims'][-1]} (both methods, n={n_lo} -> {n_hi})",
              all(err(m, sizes["dims"][-1], n_hi) < err(m, sizes["dims"][-1], n_lo) for m in METHODS),
              "; ".join(f"{m}: {err(m, sizes['dims'][-1], n_lo):.3f} -> {err(m, sizes['dims'][-1], n_hi):.3f}"
                        for m in METHODS)),
    ]
    notes = (
        f"u* = mean_i sin(pi x_i / 2) + exp(-|x|^2) on the unit ball; tanh MLP {sizes['width']}x3; Adam with cosine "
        f"decay from {sizes['lr']}, {sizes['train_steps']} full-batch steps on a fixed collocation set; boundary "
        f"penalty beta = {sizes['beta']} for both methods (Deep Ritz's boundary term is scaled by the sphere area, "
        "the PINN's is a mean); the final parameters are evaluated (no model selection). Relative L2 on "
        f"{sizes['n_test']} fresh uniform points. E & Yu (2018) give no table for this problem: references empty."
    )
    return Result(rows=rows, checks=checks, figures=[_plot(out_dir, sizes, err)], notes=notes)


def _plot(out_dir, sizes, err) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for i, d in enumerate(sizes["dims"]):
        for m, ls in zip(METHODS, ("-", "--")):
            ax.plot(sizes["n_points"], [err(m, d, n) for n in sizes["n_points"]], ls, marker="o",
                    color=f"C{i}", label=f"{m} d={d}")
    ax.set(xscale="log", yscale="log", xlabel="interior collocation points", ylabel="relative L2 error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir / "deep_ritz.png")
