"""``gantk-fields``: Dirac-GAN gradient fields of each kernel in 2-D and 512-D (Ayed 2022 thesis, Figs 5.6-5.7).

With ``alpha = delta_x`` and ``beta = delta_y`` (``y = e_1``), the infinite-width discriminator
(``f_0 = 0``, time ``tau``) moves the fake point along ``-grad c(f_tau)(x)``
(:func:`gantk.plots.dirac_field`; thesis section 5.7.4, Franceschi et al. 2022, ICML, section
6). The IPM velocity is measured at ``x = y + r e`` (``e`` radial ``e_1`` or tangential
``e_2``) and the figures' qualitative claims are checked: every move points to ``y``; near
``y`` the ReLU-with-bias NTK keeps a non-vanishing pull (its cusp on the diagonal) while the
bias-free, sigmoid and RBF pulls vanish; far from ``y`` ReLU gradients grow and RBF ones
shrink; sigmoid magnitudes are orders smaller (the thesis multiplies the sigmoid runs' ``eta``
by 1000). The thesis gives figures, not numbers: every check is a trend check. Deterministic
(float32): the seeds are not used.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dynajax.experiments.config import ExperimentConfig
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure

KERNELS = ("relu", "relu-nobias", "sigmoid", "rbf")
# Claim thresholds: "non-vanishing" pull keeps > CUSP of its value at 10x the distance; a
# "vanishing" one drops below VANISH of it; sigmoid is at least SIGMOID_GAP times smaller.
CUSP, VANISH, SIGMOID_GAP, MIN_COS = 0.5, 0.2, 1e3, 0.9


@dataclasses.dataclass(frozen=True, kw_only=True)
class GantkFieldsConfig(ExperimentConfig):
    """Where the fields are measured and drawn.

    Attributes:
        radii: distances ``r`` of the measured points ``y + r e`` (increasing, > 0, at least 3;
            the near-``y`` checks use the first two, the far-field ones the last two).
        dims: ambient dimensions (each >= 2; the thesis draws 2 and 512).
        tau: training time of the infinite-width discriminator.
        grid: points per side of the figure's arrow grid on ``[-2, 2] x [0, 2]``.
    """

    radii: tuple[float, ...] = (0.01, 0.1, 1.0, 3.0)
    dims: tuple[int, ...] = (2, 512)
    tau: float = 1.0
    grid: int = 15

    def __post_init__(self):
        r = self.radii
        if len(r) < 3 or min(r) <= 0 or any(a >= b for a, b in zip(r, r[1:])):
            raise ValueError(f"radii must be >= 3 increasing positive distances; got {r}")
        if not self.dims or min(self.dims) < 2 or self.tau <= 0 or self.grid < 2:
            raise ValueError(f"need dims >= 2, tau > 0, grid >= 2; got dims={self.dims}, tau={self.tau}, grid={self.grid}")


QUICK = GantkFieldsConfig(grid=11)
# Thesis Figs 5.6-5.7: tau = 1 (the loss config's), 2-D and 512-D, the released code's 15 x 15 grid.
FULL = GantkFieldsConfig()


def measure(kernel: str, dim: int, cfg: GantkFieldsConfig) -> dict[str, float]:
    """IPM ``|move|`` at ``y + r e`` (radial and tangential) and the least ``cos(move, y - x)``."""
    from gantk.plots import dirac_field

    pts = np.asarray([p for r in cfg.radii for p in ([1.0 + r, 0.0], [1.0, r])], np.float32)
    v = np.asarray(dirac_field(kernel, "ipm", pts, dim=dim, tau=cfg.tau), np.float64)
    to_y = np.array([1.0, 0.0]) - pts
    cos = np.sum(v * to_y, 1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(to_y, axis=1) + 1e-30)
    out = {f"{d}_r{r:g}": float(np.linalg.norm(v[2 * i + j])) for i, r in enumerate(cfg.radii)
           for j, d in enumerate(("radial", "tangential"))}
    return out | {"min_cos_to_y": float(cos.min())}


@register("gantk-fields", "Thesis Figs 5.6-5.7: Dirac-GAN gradient fields per kernel in 2-D and 512-D, "
          "with the figures' claims checked", configs={"quick": QUICK, "full": FULL})
def run(cfg: GantkFieldsConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    res = {(k, d): measure(k, d, cfg) for d in cfg.dims for k in KERNELS}
    rows = [Row(f"IPM {k} d={d}", {m: [v] for m, v in vals.items()}) for (k, d), vals in res.items()]
    r0, r1, rf0, rf1 = cfg.radii[0], cfg.radii[1], cfg.radii[-2], cfg.radii[-1]

    def rad(k, r, d=cfg.dims[0]):
        return res[(k, d)][f"radial_r{r:g}"]

    d0, hi = cfg.dims[0], cfg.dims[-1]
    vanish = ("relu-nobias", "sigmoid", "rbf")
    checks = [
        Check(f"every IPM move points towards y (cos > {MIN_COS:g})", all(v["min_cos_to_y"] > MIN_COS for v in res.values()),
              ", ".join(f"{k} d={d}: {v['min_cos_to_y']:.3f}" for (k, d), v in res.items())),
        Check(f"ReLU + bias keeps a pull near y (|v({r0:g})| > {CUSP:g} |v({r1:g})|, d={d0})",
              rad("relu", r0) > CUSP * rad("relu", r1), f"{rad('relu', r0):.3g} vs {rad('relu', r1):.3g}"),
        Check(f"bias-free (radial), sigmoid and RBF pulls vanish near y (|v({r0:g})| < {VANISH:g} |v({r1:g})|, d={d0})",
              all(rad(k, r0) < VANISH * rad(k, r1) for k in vanish),
              ", ".join(f"{k}: {rad(k, r0):.2g} vs {rad(k, r1):.2g}" for k in vanish)),
        Check(f"far from y, ReLU IPM gradients grow and RBF ones shrink (r = {rf0:g} -> {rf1:g}, d={d0})",
              rad("relu", rf1) > rad("relu", rf0) and rad("rbf", rf1) < rad("rbf", rf0),
              f"relu {rad('relu', rf0):.3g} -> {rad('relu', rf1):.3g}; rbf {rad('rbf', rf0):.3g} -> {rad('rbf', rf1):.3g}"),
        Check(f"sigmoid magnitudes are >= {SIGMOID_GAP:g} times below ReLU's (d={d0}, every r)",
              all(rad("sigmoid", r) * SIGMOID_GAP <= rad("relu", r) for r in cfg.radii),
              ", ".join(f"r={r:g}: {rad('relu', r) / max(rad('sigmoid', r), 1e-30):.2g}x" for r in cfg.radii)),
        Check(f"in {hi}-D, ReLU pulls exceed RBF's at every radius", all(rad("relu", r, hi) > rad("rbf", r, hi)
                                                                          for r in cfg.radii),
              ", ".join(f"r={r:g}: {rad('relu', r, hi):.2g} vs {rad('rbf', r, hi):.2g}" for r in cfg.radii)),
    ]
    figs = [_figure(d, cfg, out_dir) for d in cfg.dims]
    notes = (f"IPM velocities at y + r e, y = e_1, r in {list(cfg.radii)}, dims {list(cfg.dims)}, tau {cfg.tau:g}, "
             "float32; the thesis shows Figs 5.6-5.7 without numbers, so no band check exists. Figures: IPM (top) "
             f"and LSGAN (bottom) fields on [-2, 2] x [0, 2], a {cfg.grid} x {cfg.grid} grid (arrows: -grad c, "
             "colour: log10 |move|).")
    return Result(rows=rows, checks=checks, figures=figs, notes=notes)


def _figure(dim: int, cfg: GantkFieldsConfig, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk.plots import plot_field

    fig, axes = plt.subplots(2, len(KERNELS), figsize=(4 * len(KERNELS), 5), squeeze=False)
    for i, loss in enumerate(("ipm", "lsgan")):
        for j, k in enumerate(KERNELS):
            plot_field(axes[i, j], k, loss, dim=dim, tau=cfg.tau, n=cfg.grid)
    return save_figure(fig, Path(out_dir) / f"fields_d{dim}.png")
