"""``gantk-width``: finite-width discriminators converge to the infinite-width one (Ayed 2022 thesis, Fig 5.1).

Toy sets of the released GAN(TK)^2 code: 1-D IPM and 1-D LSGAN point sets, and a 2-D pair of
``n_density + n_density`` points of the (rendered) density images. A 3-hidden-layer ReLU
network with bias (NTK parameterisation, antisymmetric initialisation so that ``f_0 = 0``) is
trained with ``sgd_steps`` full-batch SGD steps at learning rate ``lr``, i.e. for a time
``tau = sgd_steps * lr``; the infinite-width discriminator is the closed form at that ``tau``
(thesis Props 5.8-5.9; Franceschi et al. 2022, ICML, section 4). The metric is the
sup-distance between the finite- and infinite-width ``c(f)`` on a grid around the points, per
width and seed. The thesis shows the curves only (no numbers): the checks are trend checks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure

# The released code's 1-D sets (fake, real) of Fig 5.1.
SETS_1D = {"1d-ipm": ("ipm", 1.5 * np.array([-1.2, -1.34, -0.8, -0.7, -0.2]),
                      1.5 * np.array([0.6, 1, 1.23, 1.32, -1.1, -1, -1.8])),
           "1d-lsgan": ("lsgan", 1.5 * np.array([-1.2, -1.34, -0.8, -0.7, -0.3]), 1.5 * np.array([0.6, 1, 1.23, 1.32, 0.2]))}
CLOSE = 0.25  # "close at standard widths": the widest net within this fraction of the range of c(f_inf)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GantkWidthConfig(ExperimentConfig):
    """Protocol of the width study.

    Attributes:
        widths: hidden widths of the finite networks (increasing).
        sgd_steps, lr: full-batch SGD steps and learning rate of the finite networks.
        n_density, density_seed: points per side of the 2-D density pair, and its sampling seed.
        grid_1d, grid_2d: evaluation points of the 1-D grid, and per side of the 2-D grid.
    """

    widths: tuple[int, ...] = (64, 128, 256, 512)
    sgd_steps: int = 10
    lr: float = 0.1
    n_density: int = 30
    density_seed: int = 0
    grid_1d: int = 401
    grid_2d: int = 61

    def __post_init__(self):
        w = self.widths
        if len(w) < 2 or min(w) < 1 or any(a >= b for a, b in zip(w, w[1:])):
            raise ValueError(f"widths must be >= 2 increasing positive integers; got {w}")
        if self.sgd_steps < 1 or self.lr <= 0 or self.n_density < 1 or min(self.grid_1d, self.grid_2d) < 2:
            raise ValueError(f"need sgd_steps, n_density >= 1, lr > 0, grids >= 2; got {self.sgd_steps}, "
                             f"{self.n_density}, {self.lr}, {self.grid_1d}, {self.grid_2d}")


QUICK = GantkWidthConfig(seeds=3, grid_1d=201, grid_2d=31)
# Thesis Fig 5.1: widths 64-512, 10 SGD steps at lr 0.1 (tau = 1), density pair of 30 + 30 points.
FULL = GantkWidthConfig(seeds=3)


def _points(name: str, cfg: GantkWidthConfig):
    from gantk import data

    if name in SETS_1D:
        loss, x, y = SETS_1D[name]
        return loss, x[:, None], y[:, None]
    return "ipm", *data.image_pair("density", cfg.n_density, cfg.n_density, seed=cfg.density_seed)


def _grid(pts: np.ndarray, cfg: GantkWidthConfig) -> np.ndarray:
    lo, hi = pts.min(0) - 0.5, pts.max(0) + 0.5
    if pts.shape[1] == 1:
        return np.linspace(lo[0], hi[0], cfg.grid_1d)[:, None]
    gx, gy = np.meshgrid(*(np.linspace(lo[i], hi[i], cfg.grid_2d) for i in range(2)))
    return np.stack([gx.ravel(), gy.ravel()], 1)


def sup_distances(name: str, cfg: GantkWidthConfig, seeds: tuple[int, ...]):
    """``{width: [sup |c(f_width) - c(f_inf)| per seed]}`` and the first seed's curves."""
    from gantk import discriminators as D
    from gantk import kernels as K
    from gantk.losses import get_loss

    loss, x, y = _points(name, cfg)
    grid = jnp.asarray(_grid(np.concatenate([x, y]), cfg), jnp.float32)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    c, layer = get_loss(loss).c, K.get_kernel("relu")[0]
    disc = D.infinite(loss, layer, x, y, cfg.sgd_steps * cfg.lr, **({"method": "eigh"} if loss == "lsgan" else {}))
    c_inf = c(D.evaluate(disc, layer, grid)[0])
    out, curves = {}, {"grid": np.asarray(grid), "inf": np.asarray(c_inf)}
    for w in cfg.widths:
        fd = D.FiniteDiscriminator(K.get_kernel("relu", width=w)[0], antisymmetric=True)

        def train(key, fd=fd):
            p = jax.lax.fori_loop(0, cfg.sgd_steps, lambda i, q: fd.sgd_step(loss, q, x, y, cfg.lr), fd.init(key, x.shape[1]))
            return c(fd.apply(p, grid))

        c_w = jax.jit(jax.vmap(train))(seed_keys(seeds, stream=w))
        out[w] = [float(v) for v in jnp.max(jnp.abs(c_w - c_inf[None]), axis=1)]
        curves[w] = np.asarray(c_w[0])
    return out, curves


@register("gantk-width", "Thesis Fig 5.1: sup-distance between finite- and infinite-width c(f*) shrinking with width",
          configs={"quick": QUICK, "full": FULL})
def run(cfg: GantkWidthConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    rows, checks, all_curves, (w0, w1) = [], [], {}, (cfg.widths[0], cfg.widths[-1])
    for name in (*SETS_1D, "2d-density-ipm"):
        sup, curves = sup_distances(name, cfg, seeds)
        rows.append(Row(f"{name} ReLU+bias", {f"sup_w{w}": sup[w] for w in cfg.widths}))
        m = {w: float(np.mean(sup[w])) for w in cfg.widths}
        span = float(np.ptp(curves["inf"]))
        checks += [Check(f"{name}: sup-distance shrinks from width {w0} to {w1}", m[w1] < m[w0],
                         " -> ".join(f"{w}: {v:.3g}" for w, v in m.items())),
                   Check(f"{name}: width {w1} is within {CLOSE:.0%} of the range of the infinite-width c(f*)",
                         m[w1] <= CLOSE * span, f"sup {m[w1]:.3g} vs range {span:.3g}")]
        all_curves[name] = curves
    notes = (f"Finite nets: 3 hidden ReLU layers with bias, NTK parameterisation, antisymmetric init, widths "
             f"{list(cfg.widths)}, {cfg.sgd_steps} SGD steps at lr {cfg.lr:g}; infinite width: closed form at tau = "
             f"{cfg.sgd_steps * cfg.lr:g}; seeds {list(seeds)}. The 2-D set is {cfg.n_density} + {cfg.n_density} points "
             "of the rendered density pair. The thesis shows the figure only, so no band check exists.")
    return Result(rows=rows, checks=checks, figures=[_figure(all_curves, cfg.widths, out_dir)], notes=notes)


def _figure(curves: dict, widths, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SETS_1D), figsize=(10, 3.5))
    for ax, name in zip(axes, SETS_1D):
        cv = curves[name]
        for w in widths:
            ax.plot(cv["grid"][:, 0], cv[w], lw=1, label=f"width {w}")
        ax.plot(cv["grid"][:, 0], cv["inf"], "k", lw=2, label="infinite")
        ax.set_title(f"c(f*) {name}")
        ax.legend(fontsize=7)
    return save_figure(fig, Path(out_dir) / "width_convergence.png")
