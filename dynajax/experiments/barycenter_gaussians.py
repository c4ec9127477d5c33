"""``barycenter-gaussians``: W2 barycenters of Gaussians from samples against the closed form.

Protocol (Agueh and Carlier 2011, Sec. 6.3 closed form; Alvarez-Esteban, del Barrio,
Cuesta-Albertos and Matran 2016, fixed point; Cuturi and Doucet 2014, free-support barycenter):
``K`` Gaussians on ``R^2`` with random means and covariances and random barycentric weights. The
closed-form barycenter ``N(m, S)`` comes from :func:`dynajax.transport.gaussian_barycenter` and is
checked against POT's ``ot.gaussian.bures_wasserstein_barycenter``. From ``n`` samples of each
Gaussian, three estimators: the exact free-support barycenter with ``n`` points
(:func:`dynajax.transport.free_support_barycenter`), the same with ott-jax Sinkhorn plans, and the
sliced-Wasserstein barycenter by particle descent. Metric: the closed-form W2^2 between the
Gaussian fitted to each estimate (sample mean and covariance) and ``N(m, S)``, against ``n``.
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
from dynajax.transport.barycenter import free_support_barycenter, gaussian_barycenter, sliced_wasserstein_barycenter
from dynajax.transport.ot import gaussian_w2

METHODS = ("exact", "sinkhorn", "sliced")
FIXED_POINT_BAND = 1e-4  # relative Frobenius difference to POT's fixed point (float32)
W2_BAND = 0.05  # W2^2 of the exact estimate's Gaussian fit to the closed form, at the largest n


@dataclasses.dataclass(frozen=True, kw_only=True)
class BaryGaussConfig(ExperimentConfig):
    """Sizes of the Gaussian barycenter study.

    Attributes:
        n_gauss: number ``K`` of Gaussians; sizes: samples per Gaussian (= barycenter points).
        n_iter: free-support iterations; epsilon: Sinkhorn regularisation (squared units).
        sw_steps, sw_proj: sliced barycenter descent steps and directions per step.
    """

    n_gauss: int = 4
    sizes: tuple = (50, 100, 200, 400)
    n_iter: int = 20
    epsilon: float = 0.01
    sw_steps: int = 300
    sw_proj: int = 50


QUICK = BaryGaussConfig(seeds=2)
# Agueh and Carlier 2011 / Cuturi and Doucet 2014 (Gaussian barycenter figures): more samples.
FULL = BaryGaussConfig(seeds=5, sizes=(50, 100, 200, 400, 800, 1600), n_iter=40, sw_steps=1000)


def problem(key, k):
    k1, k2, k3 = jax.random.split(key, 3)
    means = 3.0 * jax.random.normal(k1, (k, 2))
    a = jax.random.normal(k2, (k, 2, 2))
    covs = a @ jnp.swapaxes(a, 1, 2) + 0.2 * jnp.eye(2)
    lam = jax.random.dirichlet(k3, jnp.ones(k))
    return means, covs, lam


def run_one(key, cfg):
    means, covs, lam = problem(key, cfg.n_gauss)
    m, S = gaussian_barycenter(means, covs, lam, n_iter=100)
    out = {"fixed_point_vs_pot": _vs_pot(means, covs, lam, S)}
    for n in cfg.sizes:
        ks = jax.random.split(jax.random.fold_in(key, n), cfg.n_gauss + 2)
        ys = [jax.random.multivariate_normal(ks[i], means[i], covs[i], (n,)) for i in range(cfg.n_gauss)]
        x0 = jax.random.normal(ks[-1], (n, 2))
        est = {"exact": free_support_barycenter(ys, x0, lam=lam, n_iter=cfg.n_iter).x,
               "sinkhorn": free_support_barycenter(ys, x0, lam=lam, solver="sinkhorn", n_iter=cfg.n_iter,
                                                   epsilon=cfg.epsilon).x,
               "sliced": sliced_wasserstein_barycenter(ys, x0, lam, key=ks[-2], n_steps=cfg.sw_steps,
                                                       n_proj=cfg.sw_proj)}
        for k, x in est.items():
            out.setdefault(k, {})[n] = float(gaussian_w2(jnp.mean(x, 0), jnp.cov(x.T), m, S))
    return out, (means, covs, m, S, est)


def _vs_pot(means, covs, lam, S):
    import ot

    _, S_ref = ot.gaussian.bures_wasserstein_barycenter(np.asarray(means, np.float64), np.asarray(covs, np.float64),
                                                        weights=np.asarray(lam, np.float64), num_iter=1000, eps=1e-12)
    return float(np.linalg.norm(np.asarray(S) - S_ref) / np.linalg.norm(S_ref))


@register("barycenter-gaussians", "W2 barycenters of Gaussians from samples (exact / Sinkhorn free support, "
          "sliced) vs the closed-form fixed point", configs={"quick": QUICK, "full": FULL})
def run(cfg: BaryGaussConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    res = [run_one(k, cfg) for k in seed_keys(seeds)]
    rows = [Row(f"{k} free support" if k != "sliced" else "sliced (particles)",
                {f"w2sq_to_closed_form_n{n}": [r[0][k][n] for r in res] for n in cfg.sizes}) for k in METHODS]
    pot = max(r[0]["fixed_point_vs_pot"] for r in res)
    rows.append(Row("closed form vs POT", {"rel_frobenius": [r[0]["fixed_point_vs_pot"] for r in res]}))
    mean = {k: [float(np.mean([r[0][k][n] for r in res])) for n in cfg.sizes] for k in METHODS}
    big = max(cfg.sizes)
    checks = [
        band("fixed point vs POT's Bures-Wasserstein barycenter (relative Frobenius, worst seed)", pot, 0.0,
             FIXED_POINT_BAND, "abs"),
        band(f"exact free-support barycenter's Gaussian fit vs the closed form (W2^2, n = {big})", mean["exact"][-1],
             0.0, W2_BAND, "abs"),
        Check("the free-support estimate approaches the closed form as n grows (W2^2 at largest n < smallest n)",
              mean["exact"][-1] < mean["exact"][0], ", ".join(f"{v:.4f}" for v in mean["exact"])),
    ]
    notes = (f"{cfg.n_gauss} Gaussians on R^2 (means 3 N(0, I), covariances A A^T + 0.2 I, Dirichlet weights), "
             f"{cfg.n_iter} free-support iterations (Sinkhorn epsilon {cfg.epsilon}), sliced descent "
             f"{cfg.sw_steps} steps x {cfg.sw_proj} directions. W2^2 to the closed form by n: "
             + "; ".join(f"{k} " + ", ".join(f"{v:.4f}" for v in mean[k]) for k in METHODS)
             + f". Fixed point vs POT: {pot:.1e} (relative).")
    return Result(rows=rows, checks=checks, figures=[_plot(res[0][1], out_dir)], notes=notes)


def _ellipse(m, S, **kw):
    t = np.linspace(0, 2 * np.pi, 100)
    w, v = np.linalg.eigh(np.asarray(S))
    pts = np.asarray(m)[:, None] + 2 * (v * np.sqrt(w)) @ np.stack([np.cos(t), np.sin(t)])
    return pts[0], pts[1]


def _plot(data, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means, covs, m, S, est = data
    fig, axes = plt.subplots(1, len(est), figsize=(4.2 * len(est), 4))
    for ax, (k, x) in zip(axes, est.items()):
        for mu, c in zip(means, covs):
            ax.plot(*_ellipse(mu, c), color="0.6")
        ax.scatter(*np.asarray(x).T, s=3)
        ax.plot(*_ellipse(m, S), "r", label="closed form")
        ax.set_title(k)
        ax.set_aspect("equal")
    axes[0].legend(fontsize=8)
    return save_figure(fig, out_dir / "barycenter_gaussians.png")
