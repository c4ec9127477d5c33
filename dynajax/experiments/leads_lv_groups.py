"""``leads-lv-groups``: thesis Table 3.15 (LV) on its own, without the rest of ``leads-lv``.

The first ``M = 8`` Lotka-Volterra environments are cut into groups of ``m`` environments;
every group trains its own model (groups ``vmap``-ped in one program), and the test MSE is
averaged over the 8 environments. Thesis trend: LEADS' error falls as ``m`` grows (more
environments share ``f``), One-For-All's rises (one field cannot fit more environments).
Same protocol, networks and selection on validation as ``leads-lv``
(:func:`dynajax.experiments.leads_lv.run_table_315`); its ``group_*`` sizes are used here.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax

from dynajax.experiments import leads_lv
from dynajax.experiments.registry import register
from dynajax.experiments.results import Result, Row, save_figure

# the leads-lv sizes (the same dict): this run reads group_ms, group_steps, group_methods,
# n_val, n_test and chunk
SIZES = leads_lv.SIZES


def _plot(r315: dict, out_dir: Path) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, per_m in r315.items():
        ms = list(per_m)
        means = [float(per_m[m].mean()) for m in ms]
        ax.plot(ms, means, "o-", label=name)
        ref = leads_lv.REF_315[name]
        ax.plot(ms, [ref[m] for m in ms], ":", color=ax.lines[-1].get_color(), alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("environments per group m (M = 8)")
    ax.set_ylabel("test MSE (dotted: thesis)")
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir / "leads_lv_groups.png")


@register("leads-lv-groups", "LEADS on Lotka-Volterra: Table 3.15 alone (error vs environments per group)",
          quick_suite=False)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    sizes = SIZES[scale]
    t0 = time.time()
    train, val, test, _, _ = leads_lv._data(0, sizes)
    keys = jax.random.split(jax.random.key(0), seeds)
    r315 = leads_lv.run_table_315(train, val, test, keys, sizes)
    rows = [Row(f"Groups (M=8): {name}", {f"test_mse_m{m}": v for m, v in per_m.items()},
                {f"test_mse_m{m}": leads_lv.REF_315[name].get(m) for m in per_m})
            for name, per_m in r315.items()]
    checks = leads_lv._checks({}, {}, r315, sizes)
    notes = (f"{seeds} seeds; groups of m in {list(sizes['group_ms'])} among the first 8 environments, "
             f"{sizes['group_steps']} Adam steps per group model, lambda={leads_lv.HPARAMS['lam']}, "
             f"alpha={leads_lv.HPARAMS['alpha']}; selection on {sizes['n_val']} validation trajectories/env. "
             f"The m = 1 reference is the thesis' value shared by all methods. Wall {time.time() - t0:.0f} s.")
    return Result(rows=rows, checks=checks, figures=[_plot(r315, out_dir)], notes=notes)
