"""``gantk-8gaussians``, ``gantk-density``, ``gantk-ab``: GAN(TK)^2 particle flows (Ayed 2022 thesis, Tables 5.1-5.3).

Every cell of a table is a particle flow (:mod:`gantk.flows`) from fixed source points to a
fixed target set, the generator-free setting of Franceschi et al. 2022 (ICML, "A neural
tangent kernel perspective of GANs", section 6; thesis section 5.7), with the settings of the
released GAN(TK)^2 code: ``IPM (inf.)`` / ``LSGAN (inf.)`` train the infinite-width
discriminator for a time ``tau`` from ``f_0 = 0``, re-set at every particle step (closed forms,
thesis Props 5.8-5.9); ``IPM`` is a finite-width antisymmetric MLP (``f_0 = 0``) and ``LSGAN``
one without antisymmetric initialisation, both persistent with one SGD step per particle step;
the sigmoid network's ``eta`` is multiplied by ``sigmoid_boost``, as in the thesis runs.
``eta`` scales with ``N`` so that the per-particle displacement ``(eta / N) grad c`` is the
thesis's at every particle count. The metric is ``W2^2 / 2`` by exact assignment, the
``blur -> 0`` value of the GeomLoss debiased Sinkhorn divergence (``blur = 0.001``) that the
thesis reports as the mean over 3 runs. Seed ``s`` draws its own source and target samples.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, save_figure

KERNEL_COLS = ("rbf", "relu", "relu-nobias", "sigmoid")
ROWS = ("IPM (inf.)", "IPM", "LSGAN (inf.)", "LSGAN")
# Ayed 2022 thesis Tables 5.1-5.3 verbatim (W2^2/2 via Sinkhorn, mean of 3 runs); None: no finite RBF net.
THESIS = {
    "8gaussians": {"IPM (inf.)": (2.60e-2, 9.40e-7, 9.70e-2, 8.40e-2), "IPM": (None, 1.21e-1, 1.20, 7.40e-1),
                   "LSGAN (inf.)": (4.21e-1, 7.56e-2, 1.27e1, 7.35), "LSGAN": (None, 3.07, 7.52, 7.41)},
    "density": {"IPM (inf.)": (2.37e-3, 3.34e-9, 7.34e-2, 6.25e-3), "IPM": (None, 5.02e-3, 9.25e-2, 3.06e-2),
                "LSGAN (inf.)": (7.53e-3, 1.49e-3, 2.80e-1, 2.21e-1), "LSGAN": (None, 1.53e-2, 1.64e-1, 5.88e-2)},
    "ab": {"IPM (inf.)": (4.65e-3, 2.64e-9, 6.11e-3, 5.69e-3), "IPM": (None, 2.75e-3, 3.65e-2, 1.25e-2),
           "LSGAN (inf.)": (1.13e-2, 8.63e-3, 1.02e-1, 1.40e-2), "LSGAN": (None, 1.32e-1, 2.57e-2, 8.78e-2)},
}
TABLE = {"8gaussians": "5.1", "density": "5.2", "ab": "5.3"}
# Band of every cell: within a factor 3 of the table (its 3-run spreads reach +-100%). The image
# pairs here are rendered stand-ins for GeomLoss' images, so their cells may miss it for that reason.
BAND = (3.0, "factor")
# The infinite ReLU IPM matches the target "perfectly" (thesis: 1e-9..1e-7): numerically zero.
ZERO_CELL, ZERO_TOL = ("IPM (inf.)", "relu"), 1e-5
# 8 Gaussians failure modes (thesis Table 5.1, Fig 5.2): bias-free infinite LSGAN collapses on the
# origin, at W2^2/2 = (5^2 + 2 * 0.5^2) / 2 = 12.75; the sigmoid infinite LSGAN stalls.
SHARP = {("LSGAN (inf.)", "relu-nobias"): (0.1, "rel"), ("LSGAN (inf.)", "sigmoid"): (0.2, "rel")}


@dataclasses.dataclass(frozen=True, kw_only=True)
class GantkTableConfig(ExperimentConfig):
    """Protocol of one table (the experiment fixes the dataset).

    Attributes:
        n: particles, and target points (``N = M``).
        steps: particle steps.
        rows, kernels: the table rows and kernel columns run (names of :data:`ROWS`, :data:`KERNEL_COLS`).
        width: hidden width of the finite-width discriminators.
        tau: training time of the infinite-width discriminators.
        step_inf, step_ipm, step_lsgan: ``eta / N`` of the infinite rows, finite IPM, finite LSGAN.
        lr_ipm, lr_lsgan: SGD learning rates of the finite IPM and LSGAN discriminators.
        sigmoid_boost: factor on ``eta`` for the sigmoid network.
        krylov_dim: Lanczos steps of the infinite-width LSGAN closed form.
    """

    n: int = 500
    steps: int = 10000
    rows: tuple[str, ...] = ROWS
    kernels: tuple[str, ...] = KERNEL_COLS
    width: int = 128
    tau: float = 1.0
    step_inf: float = 2.0
    step_ipm: float = 0.2
    step_lsgan: float = 0.002
    lr_ipm: float = 0.01
    lr_lsgan: float = 0.1
    sigmoid_boost: float = 1000.0
    krylov_dim: int = 24

    def __post_init__(self):
        if min(self.n - 1, self.steps, self.width, self.krylov_dim) < 1:
            raise ValueError(f"need n >= 2 and steps, width, krylov_dim >= 1; got n={self.n}, steps={self.steps}, "
                             f"width={self.width}, krylov_dim={self.krylov_dim}")
        for name, allowed in (("rows", ROWS), ("kernels", KERNEL_COLS)):
            got = getattr(self, name)
            if not got or len(set(got)) != len(got) or set(got) - set(allowed):
                raise ValueError(f"{name} must be distinct names among {allowed}; got {got!r}")
        if self.kernels == ("rbf",) and not any(r.endswith("(inf.)") for r in self.rows):
            raise ValueError("the finite-width rows have no RBF network: rows x kernels selects no cell")
        rates = ("tau", "step_inf", "step_ipm", "step_lsgan", "lr_ipm", "lr_lsgan", "sigmoid_boost")
        if bad := [f"{k}={getattr(self, k)}" for k in rates if not getattr(self, k) > 0]:
            raise ValueError(f"{', '.join(bad)}: must be > 0")


QUICK = {d: GantkTableConfig(seeds=2, n=200, steps=5000) for d in TABLE}
# Thesis Tables 5.1-5.3 (Ayed 2022): N = M = 500, 3 runs, 20 000 particle steps on 8 Gaussians
# and 10 000 on the image pairs (an accelerator's budget).
FULL = {d: GantkTableConfig(seeds=3, n=500, steps=20000 if d == "8gaussians" else 10000) for d in TABLE}
# The showcase: the infinite-width rows with ReLU with and without bias against RBF.
DEMO = GantkTableConfig(seeds=2, n=100, steps=1500, rows=("IPM (inf.)", "LSGAN (inf.)"),
                        kernels=("rbf", "relu", "relu-nobias"))


def cell_config(cfg: GantkTableConfig, row: str, kernel: str):
    """The :class:`gantk.flows.FlowConfig` of one table cell."""
    from gantk.flows import FlowConfig

    loss, finite, step, lr = {"IPM (inf.)": ("ipm", False, cfg.step_inf, 0.0), "IPM": ("ipm", True, cfg.step_ipm, cfg.lr_ipm),
                              "LSGAN (inf.)": ("lsgan", False, cfg.step_inf, 0.0),
                              "LSGAN": ("lsgan", True, cfg.step_lsgan, cfg.lr_lsgan)}[row]
    eta = step * cfg.n * (cfg.sigmoid_boost if kernel == "sigmoid" else 1.0)
    return FlowConfig(loss, kernel, cfg.width if finite else None, tau=cfg.tau, eta=eta, disc_lr=lr,
                      antisymmetric=row != "LSGAN", krylov_dim=cfg.krylov_dim)


def run_table(dataset: str, cfg: GantkTableConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    """Runs the selected cells of one table, every seed vmapped in one program per cell."""
    from gantk import data, metrics
    from gantk.flows import make_flow

    sets = [data.load(dataset, cfg.n, cfg.n, seed=s) for s in seeds]
    x0, y = (jnp.asarray(np.stack([s[i] for s in sets])) for i in (0, 1))
    rows, mean, finals, walls = [], {}, {}, {}
    for row, kernel in [(r, k) for r in cfg.rows for k in cfg.kernels if THESIS[dataset][r][KERNEL_COLS.index(k)]]:
        t0 = time.perf_counter()
        xf = np.asarray(jax.jit(jax.vmap(make_flow(cell_config(cfg, row, kernel), cfg.steps, cfg.steps)))(
            x0, y, seed_keys(seeds, stream=1))[0])
        walls[(row, kernel)] = time.perf_counter() - t0
        ok = np.all(np.isfinite(xf), axis=(1, 2))
        w2 = [metrics.half_w2(xf[i], y[i]) if ok[i] else np.nan for i in range(len(seeds))]
        energy = [metrics.energy_distance(xf[i], y[i]) if ok[i] else np.nan for i in range(len(seeds))]
        rows.append(Row(f"{row} {kernel}", {"sinkhorn": w2, "energy": energy},
                        {"sinkhorn": THESIS[dataset][row][KERNEL_COLS.index(kernel)]}))
        mean[(row, kernel)] = float(np.mean(w2)) if ok.all() else np.inf  # a diverged seed fails the cell
        finals[(row, kernel)] = xf[0]
    fig = _figure(finals, np.asarray(y[0]), cfg, Path(out_dir) / f"final_particles_{dataset}.png")
    tol, scale = BAND
    notes = (
        f"{dataset}: N = M = {cfg.n} particles/targets, {cfg.steps} particle steps, float32, seeds {list(seeds)}; "
        f"finite width {cfg.width}, tau {cfg.tau:g}; eta/N {cfg.step_inf:g} (inf.), {cfg.step_ipm:g} (IPM), "
        f"{cfg.step_lsgan:g} (LSGAN), x{cfg.sigmoid_boost:g} for sigmoid. 'sinkhorn' = exact W2^2/2 (the blur -> 0 "
        f"GeomLoss value). Bands: each cell within {scale} {tol:g} of Table {TABLE[dataset]}, the ReLU infinite IPM "
        f"within {ZERO_TOL:g} of it (numerically zero)"
        + (", the failure modes " + ", ".join(f"{r} {k} within {sc} {t:g}" for (r, k), (t, sc) in SHARP.items())
           + ". " if dataset == "8gaussians" else
           ". Source and target are images rendered with matplotlib, not GeomLoss' image files. ")
        + "Wall seconds per cell (compile + run, all seeds): " + ", ".join(f"{r} {k} {w:.1f}" for (r, k), w in walls.items()))
    return Result(rows=rows, checks=_checks(dataset, mean), figures=[fig], notes=notes)


def _checks(dataset: str, mean: dict) -> list[Check]:
    table = {(r, k): THESIS[dataset][r][j] for r in ROWS for j, k in enumerate(KERNEL_COLS)}
    sharp = SHARP if dataset == "8gaussians" else {}
    checks = []
    for cell, v in mean.items():
        tol, scale = (ZERO_TOL, "abs") if cell == ZERO_CELL else sharp.get(cell, BAND)
        checks.append(band(f"{cell[0]} {cell[1]}: W2^2/2 vs thesis Table {TABLE[dataset]}", v, table[cell], tol, scale))
    if ZERO_CELL in mean and len(mean) > 1:
        best = min(v for c, v in mean.items() if c != ZERO_CELL)
        checks.append(Check("infinite IPM with ReLU + bias is >= 100x below every other cell",
                            mean[ZERO_CELL] * 100 <= best, f"ReLU inf. IPM {mean[ZERO_CELL]:.2e}, best other {best:.2e}"))
    for row in ROWS:  # the ranking claims, where the thesis's own table shows them
        rivals = {k: v for (r, k), v in mean.items() if r == row and (row, "relu") in mean
                  and k != "relu" and table[(row, "relu")] < table[(r, k)]}
        if rivals:
            relu = mean[(row, "relu")]
            checks.append(Check(f"{row}: ReLU + bias below {', '.join(rivals)} (as in the table)",
                                all(relu < v for v in rivals.values()),
                                f"ReLU {relu:.3g}; " + ", ".join(f"{k} {v:.3g}" for k, v in rivals.items())))
    return checks


def _figure(finals: dict, y: np.ndarray, cfg: GantkTableConfig, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk.plots import plot_particles

    fig, axes = plt.subplots(len(cfg.rows), len(cfg.kernels), figsize=(3 * len(cfg.kernels), 3 * len(cfg.rows)),
                             squeeze=False)
    for ax, cell in zip(axes.flat, [(r, k) for r in cfg.rows for k in cfg.kernels]):
        ax.set(xticks=[], yticks=[], title=" ".join(cell) if cell in finals else "")
        if cell in finals:
            plot_particles(ax, finals[cell], y)
        else:
            ax.axis("off")
    return save_figure(fig, path)


def _register(dataset: str, what: str, demo: GantkTableConfig | None = None):
    configs = {"quick": QUICK[dataset], "full": FULL[dataset]} | ({"demo": demo} if demo else {})

    @register(f"gantk-{dataset}", f"Thesis Table {TABLE[dataset]}: GAN(TK)^2 particle flows {what}, "
              "4 kernels x IPM/LSGAN x infinite/finite width", configs=configs, budget=("steps",))
    def run(cfg: GantkTableConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
        return run_table(dataset, cfg, seeds, out_dir)

    return run


run_8gaussians = _register("8gaussians", "on 8 Gaussians", DEMO)
run_density = _register("density", "on the density pair (rendered)")
run_ab = _register("ab", "from letter A to letter B (rendered)")
