"""``leads-gs`` and ``leads-ns``: LEADS on Gray-Scott and Navier-Stokes (Ayed 2022 thesis, Table 3.14).

Gray-Scott (:mod:`dynajax.systems.gray_scott`): 3 environments ``(F, k)``, 1 training
trajectory each, ``K = 10`` frames at ``dt = 40`` on a periodic 32x32 grid; ``f`` and each
``g_e`` are ConvNets (4 layers of 64 channels, 3x3, circular padding, Swish, ``N(0, 0.1)``,
output x 1e-3); RK4 3/8, one step per frame; thesis ``lambda = 1e2``, ``alpha = 1e-2``.

Navier-Stokes (:mod:`dynajax.systems.navier_stokes`, vorticity only): 4 forcings, 8 training
trajectories each, 10 frames ``t = 0..9`` at ``dt = 1`` (the released code's); FNO2d (modes 6,
width 10, 4 Fourier layers, fc 128, Swish, grid channels); explicit Euler, one step per frame;
thesis ``lambda = 1e5``, ``alpha = 1e-5``.

Every step trains on the full batch of training trajectories (the released code: minibatches
of 1 (GS) or 2 (NS) trajectories per environment) and the parameters are selected on a
validation split (the code selects on test). ``full`` and ``gpu`` are the thesis protocol with
the code's 120k epochs (an accelerator's work); ``quick`` shrinks the grid, the horizon, the
width and the budget so that a 2-core CPU finishes in minutes, and its numbers are far from
converged. On CPU, the conv fields' fixed-step loops unroll and training steps run as a loop
(``unroll="auto"``, :mod:`dynajax._unroll`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band
from dynajax.forecast import leads_baselines as lb
from dynajax.forecast.leads_nets import conv_field, fno_field
from dynajax.solve import SOLVERS
from dynajax.systems import gray_scott, navier_stokes

NAMES = {"one_for_all": "One-For-All", "one_per_env": "One-Per-Env", "leads_no_min": "LEADS no min", "leads": "LEADS"}
# Thesis Table 3.14 (train MSE, test MSE), GS and NS columns.
REF = {"gs": {"One-For-All": (1.55e-2, 1.43e-2), "One-Per-Env": (8.48e-5, 6.43e-3),
              "LEADS no min": (7.65e-5, 5.53e-3), "LEADS": (5.75e-5, 2.08e-3)},
       "ns": {"One-For-All": (5.17e-2, 7.31e-2), "One-Per-Env": (5.60e-6, 1.10e-2),
              "LEADS no min": (3.20e-4, 7.10e-3), "LEADS": (1.03e-4, 5.95e-3)}}
LEADS_FACTOR = 3.0  # LEADS test MSE within a factor 3 of Table 3.14


@dataclasses.dataclass(frozen=True, kw_only=True)
class LeadsPdeConfig(ExperimentConfig):
    """Protocol of one Table 3.14 PDE column.

    Attributes:
        n_steps, chunk, lr: Adam steps (full batch) per method, steps per compiled chunk, learning rate.
        variants: Table 3.14 methods (:data:`~dynajax.forecast.leads.VARIANTS`).
        n_train, n_val, n_test: trajectories per environment of each split; data_seed: their seed.
        grid: grid points per axis; n_frames: frames per trajectory (the initial one included);
            warmup: Navier-Stokes warm-up time before the first frame (0 for Gray-Scott).
        width: channels of the ConvNet (GS) or of the Fourier layers (NS).
        dt, solver: frame spacing and fixed-step solver (one step per frame).
        lam, alpha: LEADS' ``lambda`` and spectral weight.
    """

    n_steps: int = 120000
    chunk: int = 1000
    lr: float = 1e-3
    variants: tuple[str, ...] = tuple(NAMES)
    n_train: int = 1
    n_val: int = 8
    n_test: int = 32
    data_seed: int = 0
    grid: int = 32
    n_frames: int = 10
    warmup: float = 0.0
    width: int = 64
    dt: float = 40.0
    solver: str = "rk4_38"
    lam: float = 1e2
    alpha: float = 1e-2

    def __post_init__(self):
        if not self.variants or set(self.variants) - set(NAMES):
            raise ValueError(f"variants: a non-empty subset of {tuple(NAMES)}, got {self.variants}")
        if min(self.n_steps, self.chunk, self.n_train, self.n_val, self.n_test, self.width) < 1:
            raise ValueError("n_steps, chunk, split sizes and width must be >= 1")
        if self.n_frames < 2 or self.grid < 8 or self.grid % 2 or self.warmup < 0:
            raise ValueError(f"need n_frames >= 2, an even grid >= 8 and warmup >= 0, got {self.n_frames}, "
                             f"{self.grid}, {self.warmup}")
        if self.solver not in SOLVERS or not (self.dt > 0 and self.lam > 0 and self.alpha >= 0 and self.lr > 0):
            raise ValueError(f"solver from {tuple(SOLVERS)}, dt > 0, lam > 0, alpha >= 0, lr > 0; got {self.solver!r}, "
                             f"{self.dt}, {self.lam}, {self.alpha}, {self.lr}")


# Thesis Table 3.14, GS column (Ayed 2022; Yin et al. 2021): 1 / 32 trajectories per environment,
# 32x32, K = 10, ConvNet-64, the released code's 120k epochs.
GS_FULL = LeadsPdeConfig(seeds=3)
GS_QUICK = dataclasses.replace(GS_FULL, n_steps=40, chunk=20, n_val=1, n_test=4, grid=16, n_frames=6, width=8)
# Thesis Table 3.14, NS column: 8 / 32 trajectories per environment, 32x32, 10 frames, FNO width 10.
NS_FULL = LeadsPdeConfig(seeds=3, n_train=8, warmup=30.0, width=10, dt=1.0, solver="euler", lam=1e5, alpha=1e-5)
NS_QUICK = dataclasses.replace(NS_FULL, n_steps=80, chunk=20, n_train=2, n_val=1, n_test=2, grid=16)


def load(system: str, cfg: LeadsPdeConfig):
    """``(train, val, test)`` states ``[n_env, n_traj, n_frames, C, grid, grid]``, float32."""
    if system == "gs":
        gen = lambda split, n: gray_scott.generate(  # noqa: E731
            split, n_per_env=n, seed=cfg.data_seed, size=cfg.grid, horizon=cfg.dt * (cfg.n_frames - 1), dt=cfg.dt)
    else:
        gen = lambda split, n: navier_stokes.generate(  # noqa: E731
            split, n_per_env=n, seed=cfg.data_seed, n=cfg.grid, n_frames=cfg.n_frames - 1, frame_dt=cfg.dt,
            warmup=cfg.warmup, with_scalar=False)
    sizes = (("train", cfg.n_train), ("val", cfg.n_val), ("test", cfg.n_test))
    return tuple(lb.env_states(gen(split, n)) for split, n in sizes)


def run_system(system: str, cfg: LeadsPdeConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    """The Table 3.14 column of ``system`` (``"gs"`` or ``"ns"``)."""
    train, val, test = load(system, cfg)
    net = conv_field(train.shape[3], cfg.width) if system == "gs" else fno_field(train.shape[3], cfg.width)
    trained = lb.compare_variants(cfg.variants, net, train, val, [train, test], dt=cfg.dt, n_steps=cfg.n_steps,
                                  keys=seed_keys(seeds, 1), chunk_size=cfg.chunk, lr=cfg.lr, lam=cfg.lam,
                                  alpha=cfg.alpha, solver=cfg.solver, state_ndim=3)
    results = {NAMES[k]: scores for k, (_, _, scores) in trained.items()}
    ref = REF[system]
    rows = [Row(name, {"train_mse": tr.mean(-1), "test_mse": te.mean(-1)},
                {"train_mse": ref[name][0], "test_mse": ref[name][1]}) for name, (tr, te) in results.items()]
    mean = {name: float(te.mean()) for name, (_, te) in results.items()}
    checks = []
    if "LEADS" in mean:
        checks.append(band(f"LEADS: test MSE vs Table 3.14 (factor {LEADS_FACTOR:g})", mean["LEADS"], ref["LEADS"][1],
                           LEADS_FACTOR, "factor"))
    order = [n for n in ("LEADS", "One-Per-Env", "One-For-All") if n in mean]
    if len(order) > 1:
        checks.append(Check(f"ordering {' < '.join(order)}", all(mean[a] < mean[b] for a, b in zip(order, order[1:])),
                            ", ".join(f"{n} {mean[n]:.3g}" for n in order)))
    fig = lb.per_env_figure({name: te for name, (_, te) in results.items()},
                            f"LEADS {system.upper()}: per-environment test MSE",
                            out_dir / f"leads_{system}_per_env.png", figsize=(6, 3.5), ncol=1)
    notes = (f"{cfg.n_steps} Adam steps (lr {cfg.lr:g}, full batch; the released code: 120k epochs), width "
             f"{cfg.width}, {cfg.grid}x{cfg.grid} grid, {cfg.n_frames} frames at dt = {cfg.dt:g}; {cfg.n_train} train / "
             f"{cfg.n_val} val / {cfg.n_test} test trajectories per environment, {len(seeds)} seeds; lambda = "
             f"{cfg.lam:g}, alpha = {cfg.alpha:g}; solver {cfg.solver}, one step per frame; selection on validation.")
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)


@register("leads-gs", "LEADS on Gray-Scott (3 environments): Table 3.14 GS column (full scale needs a GPU)",
          configs={"quick": GS_QUICK, "full": GS_FULL, "gpu": GS_FULL}, budget=("n_steps", "chunk"), quick_suite=False)
def run_gs(cfg: LeadsPdeConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    return run_system("gs", cfg, seeds, out_dir)


@register("leads-ns", "LEADS on Navier-Stokes (4 forcings, FNO): Table 3.14 NS column (full scale needs a GPU)",
          configs={"quick": NS_QUICK, "full": NS_FULL, "gpu": NS_FULL}, budget=("n_steps", "chunk"), quick_suite=False)
def run_ns(cfg: LeadsPdeConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    return run_system("ns", cfg, seeds, out_dir)
