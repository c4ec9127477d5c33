"""``barycenter-shapes``: W2 barycenters of 2-D shapes, free support and entropic fixed support.

Protocol (Cuturi and Doucet 2014, Fig. of shape barycenters; Solomon et al. 2015 and POT's
barycenter examples, bilinear interpolation between four shapes): four shapes of the unit
square (disk, square, annulus, cross) as ``grid x grid`` images. For barycentric weights on the
corners of a ``n_interp x n_interp`` grid (bilinear in the two coordinates), the free-support
barycenter of ``n`` points sampled in each shape (:func:`dynajax.transport.free_support_barycenter`,
exact plans) and the entropic fixed-support barycenter of the images on the pixel grid
(:func:`dynajax.transport.fixed_support_barycenter`). Oracles: POT's ``free_support_barycenter``
and log-domain ``ot.bregman.barycenter`` on the same inputs (for the central weights), and the
barycenter objective, which must lie below the one of the weighted mixture of the inputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, save_figure
from dynajax.transport.barycenter import fixed_support_barycenter, free_support_barycenter
from dynajax.transport.ot import exact_w2

SHAPES = ("disk", "square", "annulus", "cross")
POT_BAND = 1e-3  # max |difference| relative to the scale, dynajax (float32) vs POT (float64)


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaryShapesConfig(ExperimentConfig):
    """Sizes of the shape barycenters.

    Attributes:
        grid: image side (pixels); n: points per shape (and barycenter points).
        n_interp: interpolation grid side; n_iter: free-support iterations.
        epsilon: entropic regularisation of the fixed-support barycenter (squared units of
            the unit square).
    """

    grid: int = 24
    n: int = 200
    n_interp: int = 4
    n_iter: int = 20
    epsilon: float = 2e-3


QUICK = BaryShapesConfig(seeds=1)
# Cuturi and Doucet 2014 / Solomon et al. 2015 (shape interpolation figures): finer images.
FULL = BaryShapesConfig(seeds=1, grid=40, n=500, n_interp=5, n_iter=40, epsilon=1e-3)


def shapes(grid: int) -> np.ndarray:
    """``[4, grid, grid]`` indicator images of the four shapes, normalised to mass one."""
    t = (np.arange(grid) + 0.5) / grid
    X, Y = np.meshgrid(t, t, indexing="xy")
    r = np.hypot(X - 0.5, Y - 0.5)
    imgs = np.stack([r < 0.35, (abs(X - 0.5) < 0.3) & (abs(Y - 0.5) < 0.3), (r < 0.4) & (r > 0.25),
                     (abs(X - 0.5) < 0.1) & (abs(Y - 0.5) < 0.38) | (abs(Y - 0.5) < 0.1) & (abs(X - 0.5) < 0.38)])
    imgs = imgs.astype(np.float64)
    return imgs / imgs.sum(axis=(1, 2), keepdims=True)


def run_one(key, cfg):
    imgs = shapes(cfg.grid)
    t = (np.arange(cfg.grid) + 0.5) / cfg.grid
    pix = np.stack(np.meshgrid(t, t, indexing="xy"), -1).reshape(-1, 2)
    ks = jax.random.split(key, 5)
    clouds = []
    for k, img in zip(ks, imgs):  # n points uniform in the shape's pixels
        idx = jax.random.choice(k, pix.shape[0], (cfg.n,), p=jnp.asarray(img.reshape(-1)))
        clouds.append(np.asarray(pix[np.asarray(idx)] + (jax.random.uniform(k, (cfg.n, 2)) - 0.5) / cfg.grid))
    x0 = np.asarray(jax.random.uniform(ks[4], (cfg.n, 2)))
    s = np.linspace(0, 1, cfg.n_interp)
    free, fixed = {}, {}
    for i, a in enumerate(s):
        for j, b in enumerate(s):
            lam = np.array([(1 - a) * (1 - b), a * (1 - b), (1 - a) * b, a * b])
            free[i, j] = np.asarray(free_support_barycenter(clouds, x0, lam=lam, n_iter=cfg.n_iter).x)
            fixed[i, j] = np.asarray(fixed_support_barycenter(imgs.reshape(4, -1), pix, lam, epsilon=cfg.epsilon))
    return {"clouds": clouds, "imgs": imgs, "pix": pix, "x0": x0, "free": free, "fixed": fixed}


def _oracles(r, cfg):
    import ot

    lam = np.full(4, 0.25)
    bs = [np.full(cfg.n, 1 / cfg.n)] * 4
    ours = free_support_barycenter(r["clouds"], r["x0"], lam=lam, n_iter=cfg.n_iter, tol=0.0)
    ref = ot.lp.free_support_barycenter(r["clouds"], bs, r["x0"], weights=lam, numItermax=cfg.n_iter, stopThr=0.0)
    hist = ot.bregman.barycenter(r["imgs"].reshape(4, -1).T, ot.dist(r["pix"], r["pix"]), cfg.epsilon, weights=lam,
                                 method="sinkhorn_log", numItermax=5000, stopThr=1e-10)
    fixed = np.asarray(fixed_support_barycenter(r["imgs"].reshape(4, -1), r["pix"], lam, epsilon=cfg.epsilon,
                                                threshold=1e-8))
    obj = float(sum(l * exact_w2(ours.x, y) for l, y in zip(lam, r["clouds"])))
    mix = np.concatenate(r["clouds"])  # the weighted mixture (equal weights) as a competitor
    obj_mix = float(sum(l * exact_w2(mix, y) for l, y in zip(lam, r["clouds"])))
    return {"free_vs_pot": float(np.max(np.abs(np.asarray(ours.x) - ref))),
            "fixed_vs_pot": float(np.max(np.abs(fixed - hist)) / np.max(hist)), "objective": obj, "mixture": obj_mix}


@register("barycenter-shapes", "W2 barycenters of 2-D shapes: free support (exact) and entropic fixed support, "
          "bilinear interpolation, vs POT", configs={"quick": QUICK, "full": FULL})
def run(cfg: BaryShapesConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    res = [run_one(k, cfg) for k in seed_keys(seeds)]
    orc = [_oracles(r, cfg) for r in res]
    rows = [Row("free support vs POT (max |diff|)", {"max_abs": [o["free_vs_pot"] for o in orc]}, {"max_abs": 0.0}),
            Row("fixed support vs POT (max |diff| / max)", {"rel": [o["fixed_vs_pot"] for o in orc]}, {"rel": 0.0}),
            Row("central barycenter objective", {"barycenter": [o["objective"] for o in orc],
                                                 "mixture": [o["mixture"] for o in orc]})]
    worst_free, worst_fixed = max(o["free_vs_pot"] for o in orc), max(o["fixed_vs_pot"] for o in orc)
    checks = [band("free-support barycenter vs POT's free_support_barycenter (max |diff|, unit square)", worst_free,
                   0.0, POT_BAND, "abs"),
              band("fixed-support entropic barycenter vs POT's log-domain Bregman barycenter (relative)", worst_fixed,
                   0.0, POT_BAND, "abs"),
              Check("the barycenter's objective is below the mixture's", all(o["objective"] < o["mixture"] for o in orc),
                    ", ".join(f"{o['objective']:.4f} < {o['mixture']:.4f}" for o in orc))]
    notes = (f"Four shapes on a {cfg.grid} x {cfg.grid} grid, {cfg.n} points each, {cfg.n_interp} x {cfg.n_interp} "
             f"bilinear weights, {cfg.n_iter} free-support iterations, epsilon {cfg.epsilon}. Against POT at the "
             f"central weights: free support max |diff| {worst_free:.2e}, fixed support {worst_fixed:.2e} relative; "
             f"objective {orc[0]['objective']:.4f} vs mixture {orc[0]['mixture']:.4f}.")
    return Result(rows=rows, checks=checks, figures=[_plot(res[0], cfg, out_dir)], notes=notes)


def _plot(r, cfg, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = cfg.n_interp
    fig, axes = plt.subplots(k, 2 * k, figsize=(2 * 2 * k, 2 * k))
    for (i, j), x in r["free"].items():
        ax = axes[j, i]
        ax.scatter(x[:, 0], x[:, 1], s=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        axes[j, k + i].imshow(r["fixed"][i, j].reshape(cfg.grid, cfg.grid), origin="lower", cmap="Blues")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("free support")
    axes[0, k].set_title("entropic, fixed support")
    return save_figure(fig, out_dir / "barycenter_shapes.png")
