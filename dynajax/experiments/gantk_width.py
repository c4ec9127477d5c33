"""``gantk-width``: thesis Figure 5.1, finite-width discriminators converge to the infinite-width one.

Toy sets of the released code (specs/gantk.md section 2): 1-D IPM and 1-D LSGAN point sets,
and a 2-D "density" pair of 30 + 30 points. A 3-hidden-layer ReLU network with bias
(NTK parameterisation, antisymmetric initialisation so ``f_0 = 0``) is trained with 10
full-batch SGD steps at learning rate 0.1 (``tau = 1``); the infinite-width discriminator
is the closed form at ``tau = 1``. The metric is the sup-distance between the finite and the
infinite ``c(f)`` on a grid, per width and seed.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure

SIZES = {
    "quick": {"widths": (64, 128, 256, 512), "grid": 201, "grid2d": 31},
    "full": {"widths": (64, 128, 256, 512, 1024), "grid": 401, "grid2d": 61},
}

FAKE_IPM = 1.5 * np.array([-1.2, -1.34, -0.8, -0.7, -0.2])
REAL_IPM = 1.5 * np.array([0.6, 1, 1.23, 1.32, -1.1, -1, -1.8])
FAKE_LS = 1.5 * np.array([-1.2, -1.34, -0.8, -0.7, -0.3])
REAL_LS = 1.5 * np.array([0.6, 1, 1.23, 1.32, 0.2])


def _sets(name: str):
    from gantk import data

    if name == "1d-ipm":
        return "ipm", FAKE_IPM[:, None], REAL_IPM[:, None]
    if name == "1d-lsgan":
        return "lsgan", FAKE_LS[:, None], REAL_LS[:, None]
    x, y = data.image_pair("density", 30, 30, 0)
    return "ipm", x, y


def _grid(x, y, n1, n2):
    pts = np.concatenate([x, y])
    lo, hi = pts.min(0) - 0.5, pts.max(0) + 0.5
    if pts.shape[1] == 1:
        return np.linspace(lo[0], hi[0], n1)[:, None]
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n2), np.linspace(lo[1], hi[1], n2))
    return np.stack([gx.ravel(), gy.ravel()], 1)


def sup_distances(name: str, widths, seeds: int, n1: int, n2: int):
    """``{width: [sup |c(f_width) - c(f_inf)| per seed]}`` and seed 0's curves for the figure."""
    from gantk import discriminators as D
    from gantk import kernels as K
    from gantk.losses import get_loss

    loss, x, y = _sets(name)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    grid = jnp.asarray(_grid(np.asarray(x), np.asarray(y), n1, n2), jnp.float32)
    c = get_loss(loss).c
    inf_layer = K.get_kernel("relu")[0]
    disc = D.infinite(loss, inf_layer, x, y, 1.0, **({"method": "eigh"} if loss == "lsgan" else {}))
    c_inf = c(D.evaluate(disc, inf_layer, grid)[0])
    out, curves = {}, {"grid": np.asarray(grid), "inf": np.asarray(c_inf)}
    for w in widths:
        fd = D.FiniteDiscriminator(K.get_kernel("relu", width=w)[0], antisymmetric=True)

        def train(key, fd=fd):
            p = fd.init(key, x.shape[1])
            p = jax.lax.fori_loop(0, 10, lambda i, q: fd.sgd_step(loss, q, x, y, 0.1), p)
            return c(fd.apply(p, grid))

        keys = jax.vmap(lambda s: jax.random.key(1000 * s + w))(jnp.arange(seeds))
        c_w = jax.jit(jax.vmap(train))(keys)
        out[w] = [float(v) for v in jnp.max(jnp.abs(c_w - c_inf[None]), axis=1)]
        curves[w] = np.asarray(c_w[0])
    return out, curves


@register("gantk-width", "Thesis Fig 5.1: sup-distance between finite- and infinite-width c(f*) shrinking with width 64 -> 512")
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    cfg = SIZES[scale]
    widths = cfg["widths"]
    rows, checks, figs_curves = [], [], {}
    for name in ("1d-ipm", "1d-lsgan", "2d-density-ipm"):
        sup, curves = sup_distances(name, widths, seeds, cfg["grid"], cfg["grid2d"])
        vals = {f"sup_w{w}": sup[w] for w in widths}
        rows.append(Row(f"{name} ReLU+bias", vals, {k: None for k in vals}))
        m = [float(np.mean(vals[f"sup_w{w}"])) for w in widths]
        checks.append(Check(f"{name}: sup-distance shrinks from width {widths[0]} to {widths[-1]}",
                            m[-1] < m[0], " -> ".join(f"{w}: {v:.3g}" for w, v in zip(widths, m))))
        checks.append(Check(f"{name}: width {widths[-1]} is within 25% of the infinite-width c(f*) range",
                            m[-1] <= 0.25 * float(np.ptp(curves["inf"])),
                            f"sup {m[-1]:.3g} vs range {float(np.ptp(curves['inf'])):.3g}"))
        figs_curves[name] = curves
    fig = _figure(figs_curves, widths, out_dir)
    notes = ("Finite nets: 3 hidden ReLU layers with bias 1, NTK parameterisation, antisymmetric init, "
             "10 SGD steps at lr 0.1; infinite width: closed form at tau = 1. The 2-D set is 30 + 30 points "
             "of the rendered 'density' pair. Thesis: the figure only (no numbers).")
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)


def _figure(curves: dict, widths, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, name in zip(axes, ("1d-ipm", "1d-lsgan")):
        cv = curves[name]
        g = cv["grid"][:, 0]
        for w in widths:
            ax.plot(g, cv[w], lw=1, label=f"width {w}")
        ax.plot(g, cv["inf"], "k", lw=2, label="infinite")
        ax.set_title(f"c(f*) {name}")
        ax.legend(fontsize=7)
    return save_figure(fig, Path(out_dir) / "width_convergence.png")
