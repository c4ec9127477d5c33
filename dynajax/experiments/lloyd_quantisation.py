"""``lloyd-quantisation``: uniform-weight (Laguerre) Lloyd vs k-means vs i.i.d. samples.

Protocol (Merigot, Santambrogio and Sarrazin 2021, "Non-asymptotic convergence bounds for
Wasserstein approximation using point clouds", Sec. 4 experiments; Portales, Cazelles and
Pauwels 2023 on the Lloyd iteration's convergence): a measure on ``R^2`` (uniform on the unit
square, a standard Gaussian, an equal mixture of four Gaussians) is approximated by ``N`` points
from a fine sample of ``fine * N`` points. Methods: the uniform-weight Lloyd iteration with
Laguerre cells (:func:`dynajax.transport.laguerre_lloyd`), k-means with free weights
(:func:`dynajax.transport.kmeans_lloyd`), and ``N`` i.i.d. samples. Metric: W_2^2 against
``n_eval`` held-out samples (exact OT for uniform weights, the Voronoi distortion for k-means),
its fitted rate in ``N``, the energy along the Lloyd iterations (never increasing), and the hexagon
check. Rates: free-weight (optimal) quantisation has ``W_2^2 ~ N^{-2/d} = N^{-1}`` for any
measure with a finite moment above 2 (Zador), uniform weights reach it for compact support
(Merigot et al. 2021) but not for Gaussian tails (there ``log N / N``-like at these ``N``), and
i.i.d. samples are slower (``log N / N`` in ``d = 2``); the bands are on the first two. Hexagon:
on the square, ``N E >= 2 G = 0.16038`` for every ``N`` (Fejes Toth's inequality, a lower bound)
with equality as ``N -> infinity``; the k-means value (best of ``kmeans_restarts`` random starts)
at the largest ``N`` is banded against ``2 G`` (a boundary layer ``O(N^{-1/2})`` and Lloyd's local
minima remain at finite ``N``).
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
from dynajax.transport.quantisation import HEXAGON_2G, kmeans_lloyd, laguerre_lloyd, quantisation_error

METHODS = ("laguerre", "kmeans", "iid")
HEX_BAND = 0.05  # relative, N E of k-means at the largest N vs 2 G
RATE_BAND = 0.2  # |fitted slope of W2^2 in N - (-1)| for the Lloyd methods


@dataclasses.dataclass(frozen=True, kw_only=True)
class LloydConfig(ExperimentConfig):
    """Sizes of the quantisation study.

    Attributes:
        sizes: numbers of points ``N``; fine: fine-sample points per quantisation point.
        n_iter_laguerre, n_iter_kmeans: Lloyd iterations; n_eval: held-out samples.
        kmeans_restarts: k-means runs from random subsets of the fine sample (lowest energy kept).
    """

    sizes: tuple = (16, 32, 64, 128)
    fine: int = 60
    n_iter_laguerre: int = 20
    n_iter_kmeans: int = 100
    kmeans_restarts: int = 5
    n_eval: int = 20000


QUICK = LloydConfig(seeds=1)
# Merigot et al. 2021, Sec. 4 (error vs N figure): larger N and fine samples.
FULL = LloydConfig(seeds=3, sizes=(16, 32, 64, 128, 256, 512), fine=100, n_iter_laguerre=40, n_iter_kmeans=200,
                   kmeans_restarts=10, n_eval=50000)

MEANS4 = np.array([[-2.0, -2.0], [2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]])


def sample(name, key, n):
    k1, k2 = jax.random.split(key)
    if name == "square":
        return jax.random.uniform(k1, (n, 2))
    z = jax.random.normal(k1, (n, 2))
    if name == "gaussian":
        return z
    return 0.7 * z + jnp.asarray(MEANS4)[jax.random.randint(k2, (n,), 0, 4)]


def run_one(key, cfg, name):
    out = {m: {} for m in METHODS}
    energy = {}
    held = sample(name, jax.random.fold_in(key, 10**6), cfg.n_eval)
    for n in cfg.sizes:
        k = jax.random.fold_in(key, n)
        x = sample(name, k, cfg.fine * n)
        y0 = x[:n]  # the first n points of the fine sample: also the i.i.d. quantiser
        lg = laguerre_lloyd(x, y0, n_iter=cfg.n_iter_laguerre)
        km = kmeans_lloyd(x, y0, n_iter=cfg.n_iter_kmeans)
        for r in range(1, cfg.kmeans_restarts):
            idx = jax.random.choice(jax.random.fold_in(k, r), x.shape[0], (n,), replace=False)
            other = kmeans_lloyd(x, x[idx], n_iter=cfg.n_iter_kmeans)
            km = other if other.energy[-1] < km.energy[-1] else km
        unif = jnp.full((n,), 1.0 / n)
        out["laguerre"][n] = float(quantisation_error(held, lg.points, unif))
        out["kmeans"][n] = float(quantisation_error(held, km.points))
        out["iid"][n] = float(quantisation_error(held, y0, unif))
        energy[n] = {"laguerre": np.asarray(lg.energy), "kmeans": np.asarray(km.energy)}
    return out, energy


def _slope(d):
    ns = sorted(d)
    return float(np.polyfit(np.log(ns), np.log([d[n] for n in ns]), 1)[0])


@register("lloyd-quantisation", "Quantisation of measures by N points: Laguerre Lloyd vs k-means vs i.i.d. "
          "(W2 rate, monotone energy, hexagon constant)", configs={"quick": QUICK, "full": FULL})
def run(cfg: LloydConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    names = ("square", "gaussian", "mixture")
    res = {nm: [run_one(k, cfg, nm) for k in seed_keys(seeds)] for nm in names}
    rows, checks, slopes = [], [], {}
    for nm, rs in res.items():
        for m in METHODS:
            slopes[nm, m] = float(np.mean([_slope(r[0][m]) for r in rs]))
            rows.append(Row(f"{nm}: {m}", {**{f"w2sq_N{n}": [r[0][m][n] for r in rs] for n in cfg.sizes},
                                           "slope_w2sq_vs_N": [_slope(r[0][m]) for r in rs]},
                            {"slope_w2sq_vs_N": -1.0 if m != "iid" else None}))
        worst = max(float(np.max(np.diff(e[n][m]) / e[n][m][0])) for r in rs for e in [r[1]]
                    for n in cfg.sizes for m in ("laguerre", "kmeans"))
        checks.append(Check(f"{nm}: no Lloyd iteration increases the energy (Laguerre and k-means)",
                            worst <= 1e-5, f"largest relative increase {worst:.2e}"))
        for m in ("laguerre", "kmeans") if nm == "square" else ("kmeans",):
            checks.append(band(f"{nm}: {m} W2^2 rate in N vs Zador's N^(-2/d) = N^-1", slopes[nm, m], -1.0,
                               RATE_BAND, "abs"))
        checks.append(Check(f"{nm}: Lloyd (Laguerre) beats i.i.d. samples at every N",
                            all(np.mean([r[0]["laguerre"][n] for r in rs]) < np.mean([r[0]["iid"][n] for r in rs])
                                for n in cfg.sizes), ""))
    ns = np.array(cfg.sizes, float)
    ne = ns * np.array([np.mean([r[0]["kmeans"][n] for r in res["square"]]) for n in cfg.sizes])
    checks.append(Check("square: Fejes Toth's lower bound N E >= 2G holds at every N (k-means, held-out)",
                        bool(np.all(ne >= HEXAGON_2G * 0.99)), ", ".join(f"{v:.4f}" for v in ne)))
    checks.append(band(f"square: N E of k-means at N = {int(ns[-1])} vs 2G (Fejes Toth hexagon)", ne[-1], HEXAGON_2G,
                       HEX_BAND, "rel"))
    rows.append(Row("square: k-means N E", {f"NE_N{n}": [v] for n, v in zip(cfg.sizes, ne)},
                    {f"NE_N{cfg.sizes[-1]}": HEXAGON_2G}))
    notes = (f"Fine samples of {cfg.fine} N points, {cfg.n_iter_laguerre} Laguerre and {cfg.n_iter_kmeans} k-means "
             f"iterations from the first N fine-sample points, W2^2 against {cfg.n_eval} held-out samples. Fitted "
             "slopes of W2^2 in N: " + ", ".join(f"{nm}/{m} {s:.2f}" for (nm, m), s in slopes.items())
             + ". Square, k-means N E (held-out): " + ", ".join(f"{v:.4f}" for v in ne) + f" vs 2G = {HEXAGON_2G:.4f}; "
             "the uniform-weight rate is banded on the square only (compact support).")
    return Result(rows=rows, checks=checks, figures=[_plot(res, cfg, out_dir)], notes=notes)


def _plot(res, cfg, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(res) + 1, figsize=(4.2 * (len(res) + 1), 3.5))
    for ax, (nm, rs) in zip(axes, res.items()):
        for m in METHODS:
            ax.loglog(cfg.sizes, [np.mean([r[0][m][n] for r in rs]) for n in cfg.sizes], "o-", label=m)
        ax.set_title(nm)
        ax.set_xlabel("N")
    axes[0].set_ylabel("W2^2 to held-out samples")
    axes[0].legend(fontsize=8)
    e = res["square"][0][1][max(cfg.sizes)]
    for m in ("laguerre", "kmeans"):
        axes[-1].plot(e[m], label=m)
    axes[-1].set_title(f"square, N = {max(cfg.sizes)}: energy per iteration")
    axes[-1].set_xlabel("iteration")
    axes[-1].legend(fontsize=8)
    return save_figure(fig, out_dir / "lloyd_quantisation.png")
