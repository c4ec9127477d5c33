"""``hsw-flows``: sliced gradient flows on the Poincare disk, hyperbolic vs Euclidean slicing.

Protocol (Bonet, Chapel, Drumetz and Courty 2023, "Hyperbolic sliced-Wasserstein via geodesic
and horospherical projections", Sec. 5, gradient flows, figure of the log W2 along the flow):
``n`` particles drawn from a wrapped normal at the origin descend a sliced loss towards a
target known by samples (a fresh minibatch and fresh directions each step,
:func:`dynajax.transport.hyperbolic_sliced_descent`, Riemannian steps on the disk). Losses:
GHSW_2^2, HHSW_2^2, and the Euclidean SW_2^2 of the Lorentz (ambient ``R^3``) and of the ball
coordinates (the paper's SWl and SWp). Targets: a wrapped normal far from the origin and an
equal mixture of wrapped normals on a circle. Each loss runs at every step size of ``lrs`` (a
diverging run counts as infinite) and keeps its best final value; the metric is the exact W2^2
with the squared geodesic cost (POT network simplex) between the particles and held-out target
samples, every ``eval_every`` steps. The paper shows figures only: the checks are the paper's
finding (hyperbolic slicing converges faster) as trends, plus the sample-to-sample floor.
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
from dynajax.transport.hyperbolic import hyperbolic_wasserstein, wrapped_normal_mixture_sample
from dynajax.transport.hyperbolic_sliced import DESCENT_LOSSES, hyperbolic_sliced_descent

LABELS = {"geodesic": "GHSW", "horospherical": "HHSW", "sw-lorentz": "SWl (Lorentz coords)",
          "sw-poincare": "SWp (ball coords)"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class HswFlowsConfig(ExperimentConfig):
    """Sizes of the flows (Bonet et al. 2023, Sec. 5).

    Attributes:
        n: particles (and target samples per step and held out).
        n_steps: descent steps; eval_every: steps between exact-W2 evaluations.
        n_proj: directions per step.
        lrs: step sizes tried per loss (each multiplied by ``n``); the best final W2 is kept.
        radius: ball radius of the single wrapped normal's mean (on the second axis) and of the
            mixture's means (``n_modes`` equally spaced on a circle).
        sigma2: variance of every wrapped normal (isotropic tangent covariance).
    """

    n: int = 300
    n_steps: int = 500
    eval_every: int = 50
    n_proj: int = 200
    lrs: tuple = (0.005, 0.01, 0.02, 0.05)
    radius: float = 0.8
    n_modes: int = 4
    sigma2: float = 0.05

    def __post_init__(self):
        if self.n_steps % self.eval_every:
            raise ValueError(f"eval_every ({self.eval_every}) must divide n_steps ({self.n_steps})")
        if not 0 < self.radius < 1:
            raise ValueError(f"radius must be in (0, 1), got {self.radius}")


QUICK = HswFlowsConfig(seeds=1)
# Bonet et al. 2023, Sec. 5 (gradient-flow figure): 5 seeds, longer flows.
FULL = HswFlowsConfig(seeds=5, n=500, n_steps=2000, eval_every=100)


def _targets(cfg):
    ang = 2 * np.pi * np.arange(cfg.n_modes) / cfg.n_modes
    return {"wnd": np.array([[0.0, cfg.radius]]),
            "mixture": cfg.radius * np.stack([np.cos(ang), np.sin(ang)], 1)}


def run_one(key, cfg, mus):
    cov = cfg.sigma2 * jnp.eye(2)
    sample = lambda k: wrapped_normal_mixture_sample(mus, cov, cfg.n, key=k, model="poincare")  # noqa: E731
    k0, k1, k2, k3 = jax.random.split(key, 4)
    x0 = wrapped_normal_mixture_sample(jnp.zeros((1, 2)), cov, cfg.n, key=k0, model="poincare")
    held = sample(k2)
    w2 = lambda x: float(hyperbolic_wasserstein(x, held, model="poincare"))  # noqa: E731
    out = {"floor": w2(sample(k3))}
    for loss in DESCENT_LOSSES:
        best = None
        for lr in cfg.lrs:
            try:
                _, snaps = hyperbolic_sliced_descent(x0, sample, loss=loss, n_steps=cfg.n_steps, n_proj=cfg.n_proj,
                                                     lr=lr, key=k1, snapshot_every=cfg.eval_every)
                curve = np.array([w2(s) for s in snaps])
            except ValueError:  # diverged
                curve = np.full(cfg.n_steps // cfg.eval_every + 1, np.inf)
            if best is None or curve[-1] < best[0][-1]:
                best = (curve, lr)
        out[loss] = {"curve": best[0], "lr": best[1]}
    return out


@register("hsw-flows", "Sliced gradient flows on the Poincare disk: GHSW / HHSW vs Euclidean SW of the "
          "Lorentz and ball coordinates (exact hyperbolic W2 along the flow)", configs={"quick": QUICK, "full": FULL}, budget=("n_steps", "eval_every"))
def run(cfg: HswFlowsConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    res = {t: [run_one(k, cfg, jnp.asarray(m)) for k in seed_keys(seeds)] for t, m in _targets(cfg).items()}
    rows, checks, notes = [], [], []
    for t, rs in res.items():
        fin = {loss: [r[loss]["curve"][-1] for r in rs] for loss in DESCENT_LOSSES}
        auc = {loss: [float(np.mean(np.log(r[loss]["curve"]))) for r in rs] for loss in DESCENT_LOSSES}
        for loss in DESCENT_LOSSES:
            rows.append(Row(f"{t}: {LABELS[loss]}", {"final_w2": fin[loss], "mean_log_w2": auc[loss],
                                                      "best_lr": [r[loss]["lr"] for r in rs]}))
        rows.append(Row(f"{t}: target samples (floor)", {"final_w2": [r["floor"] for r in rs]}))
        mean = {k: float(np.mean(v)) for k, v in auc.items()}
        hyp, euc = min(mean["geodesic"], mean["horospherical"]), min(mean["sw-lorentz"], mean["sw-poincare"])
        checks.append(Check(f"{t}: hyperbolic slicing converges faster (mean log W2 along the flow, best of each)",
                            hyp < euc, f"GHSW/HHSW {hyp:.3f} vs SWl/SWp {euc:.3f}"))
        f0 = float(np.mean([r["geodesic"]["curve"][0] for r in rs]))
        fg, floor = float(np.mean(fin["geodesic"])), float(np.mean([r["floor"] for r in rs]))
        checks.append(Check(f"{t}: the GHSW flow reaches the target (final W2^2 <= 2x the sample-to-sample floor)",
                            fg <= 2 * floor, f"initial {f0:.3f}, final {fg:.4f}, floor {floor:.4f}"))
        notes.append(f"{t}: final W2^2 " + ", ".join(f"{LABELS[k]} {np.mean(v):.4f}" for k, v in fin.items()))
    note = (f"{cfg.n} particles from G(0, {cfg.sigma2} I) descend each loss for {cfg.n_steps} steps ({cfg.n_proj} "
            f"directions, fresh target minibatch per step, step sizes {cfg.lrs} x n, best kept). Targets: wrapped "
            f"normal at (0, {cfg.radius}) and a mixture of {cfg.n_modes} at radius {cfg.radius}, variance "
            f"{cfg.sigma2}. " + "; ".join(notes) + ". The paper reports figures only.")
    return Result(rows=rows, checks=checks, figures=[_plot(res, cfg, out_dir)], notes=note)


def _plot(res, cfg, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(0, cfg.n_steps + 1, cfg.eval_every)
    fig, axes = plt.subplots(1, len(res), figsize=(5 * len(res), 3.6))
    for ax, (t, rs) in zip(np.atleast_1d(axes), res.items()):
        for loss in DESCENT_LOSSES:
            ax.semilogy(steps, np.mean([r[loss]["curve"] for r in rs], 0), label=LABELS[loss])
        ax.axhline(np.mean([r["floor"] for r in rs]), color="k", ls=":", label="target floor")
        ax.set_title(t)
        ax.set_xlabel("step")
    np.atleast_1d(axes)[0].set_ylabel("exact hyperbolic W2^2")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return save_figure(fig, out_dir / "hsw_flows.png")
