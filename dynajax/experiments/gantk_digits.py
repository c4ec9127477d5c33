"""``gantk-digits``: infinite-width IPM particle flows on scikit-learn's 8x8 digits (CPU stand-in for Fig 5.5).

The thesis flows 1024 Gaussian particles to 1024 MNIST / CelebA images with the infinite-width
IPM (``tau = 1000``, ``eta = 100``: per-particle step ``(eta / N) tau ~ 97.7 grad f*``) and shows
samples only (no metric). Here: scikit-learn's digits (64-D, scaled to ``[-1, 1]``), the same
per-particle step, one sample grid per kernel, and ``W2^2 / 2`` to the target set as a number.
The thesis's qualitative claim checked: ReLU with bias produces digits, RBF does not.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure

SIZES = {"quick": {"n": 100, "steps": 400}, "full": {"n": 1024, "steps": 50000}}
KERNELS = ("relu", "relu-nobias", "sigmoid", "rbf")
PER_PARTICLE = 100.0 * 1000.0 / 1024  # (eta / N) * tau of the thesis runs


@register("gantk-digits", "Thesis Fig 5.5 on CPU: infinite IPM flows on scikit-learn digits, a sample grid per kernel")
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    from gantk import data, metrics
    from gantk.flows import FlowConfig, make_flow

    n, steps = SIZES[scale]["n"], SIZES[scale]["steps"]
    sets = [data.load("digits", n, n, s) for s in range(seeds)]
    x0 = jnp.asarray(np.stack([s[0] for s in sets]))
    y = jnp.asarray(np.stack([s[1] for s in sets]))
    keys = jax.random.split(jax.random.key(0), seeds)
    vals, finals = {}, {}
    for k in KERNELS:
        tau = 1000.0
        eta = PER_PARTICLE * n / tau * (1000.0 if k == "sigmoid" else 1.0)
        flow = jax.jit(jax.vmap(make_flow(FlowConfig("ipm", k, None, tau=tau, eta=eta, block_size=None), steps, steps)))
        xf = np.asarray(flow(x0, y, keys)[0])
        vals[k] = [metrics.half_w2(xf[s], y[s]) if np.all(np.isfinite(xf[s])) else float("nan") for s in range(seeds)]
        finals[k] = xf[0]
    rows = [Row(f"IPM (inf.) {k}", {"sinkhorn": v}, {"sinkhorn": None}) for k, v in vals.items()]
    mean = {k: float(np.nanmean(v)) for k, v in vals.items()}
    checks = [Check("ReLU + bias ends closer to the digits than RBF (thesis: RBF fails)", mean["relu"] < mean["rbf"],
                    ", ".join(f"{k} {v:.3g}" for k, v in mean.items()))]
    fig = _grid(finals, np.asarray(y[0]), out_dir)
    notes = (f"N = M = {n} digits, {steps} steps, tau = 1000, eta/N * tau = {PER_PARTICLE:.1f} "
             "(x1000 for sigmoid), float32. Thesis: MNIST/CelebA 32x32 with 1024 particles and 50 000 steps "
             "(GPU); no metric is reported there. 'sinkhorn' = W2^2/2 to the target set.")
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)


def _grid(finals: dict, y: np.ndarray, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 8
    fig, axes = plt.subplots(len(finals) + 1, cols, figsize=(cols * 0.9, (len(finals) + 1) * 1.0))
    for i, (name, x) in enumerate([("target", y), *finals.items()]):
        for j in range(cols):
            ax = axes[i, j]
            ax.imshow(np.clip(x[j].reshape(8, 8), -1, 1), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(name, fontsize=7)
    return save_figure(fig, Path(out_dir) / "digits_samples.png")
