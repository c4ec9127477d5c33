"""``gantk-digits``: infinite-width IPM particle flows on images, a CPU stand-in for Ayed 2022 thesis Fig 5.5.

The thesis (section 5.7.3; Franceschi et al. 2022, ICML, section 6) flows 1024 Gaussian
particles to 1024 MNIST / CelebA images with the infinite-width IPM (``tau = 1000``,
``eta = 100``, so a per-particle step ``(eta / N) tau grad f*``) for 50 000 steps and shows
samples only: ReLU with bias gives the best samples, RBF is "unable to produce reasonably good
samples". Here the images are scikit-learn's 8x8 digits (64-D, scaled to ``[-1, 1]``; nothing
is downloaded), with the thesis's per-particle step at every ``N``, one sample grid per kernel
and ``W2^2 / 2`` to the target set as a number. No band check: the thesis reports no number.
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

KERNELS = ("relu", "relu-nobias", "sigmoid", "rbf")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GantkDigitsConfig(ExperimentConfig):
    """Protocol of the image flows.

    Attributes:
        n: particles, and target digits (``N = M``, at most 1797).
        steps: particle steps.
        tau: training time of the infinite-width IPM discriminator.
        step: ``eta / N`` (the thesis: ``eta = 100`` at ``N = 1024``).
        sigmoid_boost: factor on ``eta`` for the sigmoid network.
        kernels: the kernels run (must include ``relu`` and ``rbf``, which the check compares).
    """

    n: int = 1024
    steps: int = 50000
    tau: float = 1000.0
    step: float = 100.0 / 1024
    sigmoid_boost: float = 1000.0
    kernels: tuple[str, ...] = KERNELS

    def __post_init__(self):
        if not 2 <= self.n <= 1797 or self.steps < 1:
            raise ValueError(f"need 2 <= n <= 1797 (scikit-learn's digits) and steps >= 1; got {self.n}, {self.steps}")
        if min(self.tau, self.step, self.sigmoid_boost) <= 0:
            raise ValueError(f"tau, step, sigmoid_boost must be > 0; got {self.tau}, {self.step}, {self.sigmoid_boost}")
        if set(self.kernels) - set(KERNELS) or not {"relu", "rbf"} <= set(self.kernels):
            raise ValueError(f"kernels must be among {KERNELS} and include relu and rbf; got {self.kernels}")


QUICK = GantkDigitsConfig(seeds=3, n=256, steps=5000)
# Thesis Fig 5.5 (Ayed 2022): 1024 particles and images, tau = 1000, eta = 100, 50 000 steps;
# the digits stand in for MNIST.
FULL = GantkDigitsConfig(seeds=3)


@register("gantk-digits", "Thesis Fig 5.5 on CPU: infinite IPM flows on scikit-learn digits, a sample grid per kernel",
          configs={"quick": QUICK, "full": FULL}, budget=("steps",))
def run(cfg: GantkDigitsConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    from gantk import data, metrics
    from gantk.flows import FlowConfig, make_flow

    sets = [data.load("digits", cfg.n, cfg.n, seed=s) for s in seeds]
    x0, y = (jnp.asarray(np.stack([s[i] for s in sets])) for i in (0, 1))
    vals, finals = {}, {}
    for k in cfg.kernels:
        eta = cfg.step * cfg.n * (cfg.sigmoid_boost if k == "sigmoid" else 1.0)
        flow = make_flow(FlowConfig("ipm", k, None, tau=cfg.tau, eta=eta), cfg.steps, cfg.steps)
        xf = np.asarray(jax.jit(jax.vmap(flow))(x0, y, seed_keys(seeds, stream=1))[0])
        vals[k] = [metrics.half_w2(xf[i], y[i]) if np.all(np.isfinite(xf[i])) else np.nan for i in range(len(seeds))]
        finals[k] = xf[0]
    rows = [Row(f"IPM (inf.) {k}", {"sinkhorn": v}) for k, v in vals.items()]
    mean = {k: float(np.mean(v)) for k, v in vals.items()}  # NaN (failing the checks) if a seed diverged
    detail = ", ".join(f"{k} {v:.3g}" for k, v in mean.items())
    checks = [Check("ReLU + bias ends closer to the digits than RBF (thesis: RBF fails)", mean["relu"] < mean["rbf"], detail),
              Check("ReLU + bias ends closest of all kernels (thesis: best samples)",
                    all(mean["relu"] < v for k, v in mean.items() if k != "relu"), detail)]
    notes = (f"N = M = {cfg.n} scikit-learn digits (64-D, [-1, 1]), {cfg.steps} steps, tau = {cfg.tau:g}, "
             f"eta/N = {cfg.step:.4g} (x{cfg.sigmoid_boost:g} for sigmoid), float32, seeds {list(seeds)}. The thesis uses "
             "MNIST / CelebA 32x32 and reports samples only; 'sinkhorn' = W2^2/2 to the target set.")
    return Result(rows=rows, checks=checks, figures=[_grid(finals, np.asarray(y[0]), out_dir)], notes=notes)


def _grid(finals: dict, y: np.ndarray, out_dir: Path, cols: int = 8) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(finals) + 1, cols, figsize=(cols * 0.9, (len(finals) + 1) * 1.0), squeeze=False)
    for i, (name, x) in enumerate([("target", y), *finals.items()]):
        for j in range(min(cols, len(x))):
            axes[i, j].imshow(np.clip(x[j].reshape(8, 8), -1, 1), cmap="gray_r", vmin=-1, vmax=1)
        for ax in axes[i]:
            ax.set(xticks=[], yticks=[])
        axes[i, 0].set_ylabel(name, fontsize=7)
    return save_figure(fig, Path(out_dir) / "digits_samples.png")
