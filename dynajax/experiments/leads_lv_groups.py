"""``leads-lv-groups``: LEADS on Lotka-Volterra, error vs environments per group (Ayed 2022 thesis, Table 3.15).

The first ``M = 8`` Lotka-Volterra environments are cut into consecutive groups of ``m``
environments (the thesis does not say how it formed them); every group trains its own model
and keeps its own best validation step (groups ``vmap``-ped in one program,
:func:`~dynajax.forecast.leads_baselines.group_mse`), and the test MSE is averaged over the 8
environments. Networks, solver, scheduled sampling, ``lambda`` and ``alpha`` are those of
``leads-lv``; one training trajectory per environment (``n = 1K``). Thesis trend: LEADS' error
falls as ``m`` grows (more environments share ``f``), One-For-All's rises (one field cannot
fit more environments).

Initial states are shared across environments, so One-For-All predicts one trajectory per
group and cannot beat the within-group variance of the data
(:func:`~dynajax.forecast.leads_baselines.one_for_all_floor`). The notes give this floor per
``m`` and, for the run's One-For-All, its excess over the floor (training and generalisation
from one shared initial state per environment).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, save_figure
from dynajax.forecast.leads_baselines import env_states, group_mse, one_for_all_floor
from dynajax.forecast.leads_nets import mlp_field
from dynajax.systems import lotka_volterra as lv

M = 8
DT = 0.5  # frame spacing of the Lotka-Volterra data (K = 20 frames over [0, 10))
NAMES = {"leads": "LEADS", "one_for_all": "One-For-All"}
# Thesis Table 3.15, n = 1K: test MSE for m = 1, 2, 4, 8 (the m = 1 value is shared by all methods).
REF = {"LEADS": {1: 7.87e-3, 2: 3.65e-3, 4: 2.39e-3, 8: 1.37e-3},
       "One-For-All": {1: 7.87e-3, 2: 0.22, 4: 0.33, 8: 0.47}}
BAND_DECADES = 0.5  # each method's test MSE at the largest m within half a decade of Table 3.15


@dataclasses.dataclass(frozen=True, kw_only=True)
class LeadsLvGroupsConfig(ExperimentConfig):
    """Protocol of the Table 3.15 grouping experiment.

    Attributes:
        n_steps, chunk, lr: Adam steps per group model, steps per compiled chunk, learning rate.
        ms: environments per group (increasing divisors of 8); methods: ``"leads"`` and/or ``"one_for_all"``.
        n_train, n_val, n_test: trajectories per environment of each split; data_seed: their seed.
        lam, alpha: LEADS' ``lambda`` and spectral weight; width, init_std: the MLPs.
    """

    n_steps: int = 120000
    chunk: int = 1000
    lr: float = 1e-3
    ms: tuple[int, ...] = (1, 2, 4, 8)
    methods: tuple[str, ...] = tuple(NAMES)
    n_train: int = 1
    n_val: int = 32
    n_test: int = 32
    data_seed: int = 0
    lam: float = 5e3
    alpha: float = 1e-3
    width: int = 64
    init_std: float = 0.05

    def __post_init__(self):
        if not self.ms or any(m < 1 or M % m for m in self.ms) or list(self.ms) != sorted(set(self.ms)):
            raise ValueError(f"ms must be increasing divisors of {M}, got {self.ms}")
        if not self.methods or set(self.methods) - set(NAMES):
            raise ValueError(f"methods: a non-empty subset of {tuple(NAMES)}, got {self.methods}")
        if min(self.n_steps, self.chunk, self.n_train, self.n_val, self.n_test, self.width) < 1:
            raise ValueError("n_steps, chunk, split sizes and width must be >= 1")
        if not (self.lam > 0 and self.alpha >= 0 and self.lr > 0):
            raise ValueError(f"need lam > 0, alpha >= 0, lr > 0; got {self.lam}, {self.alpha}, {self.lr}")


QUICK = LeadsLvGroupsConfig(seeds=3, n_steps=1000, chunk=500, n_val=8)
# Thesis Table 3.15, n = 1K (Ayed 2022): M = 8, m = 1, 2, 4, 8; the released code's 120k epochs.
FULL = LeadsLvGroupsConfig(seeds=3)


def _plot(table: dict, out_dir: Path) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, per_m in table.items():
        ms = list(per_m)
        ax.plot(ms, [float(np.mean(per_m[m])) for m in ms], "o-", label=name)
        ax.plot(ms, [REF[name][m] for m in ms], ":", color=ax.lines[-1].get_color(), alpha=0.6)
    ax.set(yscale="log", xlabel=f"environments per group m (M = {M})", ylabel="test MSE (dotted: thesis)")
    ax.set_xscale("log", base=2)
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir / "leads_lv_groups.png")


def trend_checks(table: dict) -> list[Check]:
    """Thesis Table 3.15 trends: LEADS falls with m; One-For-All rises with m (m >= 2)."""
    out = []
    for name, sign, ms in (("LEADS", -1, None), ("One-For-All", 1, 2)):
        if name not in table:
            continue
        means = {m: float(np.mean(v)) for m, v in table[name].items() if ms is None or m >= ms}
        vals = list(means.values())
        if len(vals) > 1:
            out.append(Check(f"Table 3.15: {name} error {'falls' if sign < 0 else 'rises'} as m grows"
                             + (" (m >= 2)" if ms else ""), all(sign * (b - a) > 0 for a, b in zip(vals, vals[1:])),
                             ", ".join(f"m={m}: {v:.3g}" for m, v in means.items())))
    return out


@register("leads-lv-groups", "LEADS on Lotka-Volterra: Table 3.15 (error vs environments per group)",
          configs={"quick": QUICK, "full": FULL}, budget=("n_steps", "chunk"), quick_suite=False)
def run(cfg: LeadsLvGroupsConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    gen = lambda split, n: env_states(lv.generate(split, seed=cfg.data_seed, n_per_env=n, dt=DT))  # noqa: E731
    train, val, test = gen("train", cfg.n_train), gen("val", cfg.n_val), gen("test", cfg.n_test)
    net, keys = mlp_field(2, cfg.width, init_std=cfg.init_std), seed_keys(seeds, 1)
    kw = dict(dt=DT, n_steps=cfg.n_steps, keys=keys, n_env=M, chunk_size=cfg.chunk, lr=cfg.lr)
    table = {NAMES[v]: {m: group_mse(v, net, m, train, val, [test], lam=cfg.lam, alpha=cfg.alpha, **kw)[0]
                        for m in cfg.ms} for v in cfg.methods}
    rows = [Row(f"Groups (M={M}): {name}", {f"test_mse_m{m}": v for m, v in per_m.items()},
                {f"test_mse_m{m}": REF[name][m] for m in per_m}) for name, per_m in table.items()]
    big = cfg.ms[-1]
    checks = trend_checks(table) + [
        band(f"{name}: test MSE at m={big} vs Table 3.15 (log10)", float(np.mean(per_m[big])), REF[name][big],
             BAND_DECADES, "log10") for name, per_m in table.items() if big > 1]
    floor = {m: one_for_all_floor(test, m, M) for m in cfg.ms}
    ofa = table.get("One-For-All", {})
    parts = [f"m={m}: floor {f:.3g}" + (f", One-For-All {float(np.mean(ofa[m])):.3g} (excess "
                                        f"{float(np.mean(ofa[m])) - f:.3g})" if m in ofa else "")
             for m, f in floor.items()]
    notes = (f"{len(seeds)} seeds; groups of m in {list(cfg.ms)} among the first {M} environments, consecutive; "
             f"{cfg.n_steps} Adam steps per group model (lr {cfg.lr:g}), lambda={cfg.lam:g}, alpha={cfg.alpha:g}; "
             f"{cfg.n_train} training / {cfg.n_val} validation / {cfg.n_test} test trajectories per environment, "
             "selection on validation per group. The m = 1 reference is the thesis' value shared by all methods. "
             "One-For-All test floor (within-group variance of the test trajectories, the best any One-For-All "
             "model can do with initial states shared across environments): " + "; ".join(parts) + ".")
    return Result(rows=rows, checks=checks, figures=[_plot(table, out_dir)], notes=notes)
