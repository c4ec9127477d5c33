"""``leads-lv-groups``: thesis Table 3.15 (LV) on its own, without the rest of ``leads-lv``.

The first ``M = 8`` Lotka-Volterra environments are cut into groups of ``m`` environments;
every group trains its own model (groups ``vmap``-ped in one program), and the test MSE is
averaged over the 8 environments. Thesis trend: LEADS' error falls as ``m`` grows (more
environments share ``f``), One-For-All's rises (one field cannot fit more environments).
Same protocol, networks and selection on validation as ``leads-lv``
(:func:`dynajax.experiments.leads_lv.run_table_315`); its ``group_*`` sizes are used here.
Groups are consecutive (the thesis does not say how it formed them). The groups of one seed
are ``vmap``-ped in one run, and each keeps its own best validation checkpoint, as separate
runs would (:func:`dynajax.forecast.leads.fit_leads` with ``groups=True``).

The notes carry :func:`one_for_all_floor` per ``m`` (the lowest error One-For-All can reach
on this data) and the diagnosis of why, at the quick budget, One-For-All at ``m = 2`` ends
above ``m = 8`` although the floor rises with ``m`` as the thesis says.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from dynajax.experiments import leads_lv
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure

# the leads-lv sizes (the same dict): this run reads group_ms, group_steps, group_methods,
# n_val, n_test and chunk
SIZES = leads_lv.SIZES


# Why One-For-All at m = 2 can be worse than at m = 8 here (diagnosis on 3 seeds, quick scale,
# 1000 steps, lr 1e-3; numbers in the Result notes of each run come from that run).
_DIAGNOSIS = (
    "Diagnosis of the One-For-All trend (measured once, 3 seeds, quick sizes): the thesis' rise with m "
    "is the bias floor, and it holds here (floors above). The measured error is floor + excess, and "
    "the excess falls with m: at m = 2 (groups {0,1} {2,3} {4,5} {6,7}) the rollout MSE on the 2 "
    "training trajectories sits at the floor for {0,1}, {2,3} (train 0.03-0.07 vs floor 0.04) but their "
    "test MSE is 0.19-0.40 (2 trajectories from ONE shared initial state constrain the field only along "
    "that orbit; the 32 test initial states leave it), and {4,5}, {6,7} (gamma 0.25/0.75 and "
    "(0.5,1)/(0.25,0.25)) are underfit and unstable (train 0.31-1.71 vs floor 0.29/0.55; validation "
    "rollouts blow up to 1e8 at some checkpoints). At m = 8 the 8 orbits of the shared initial state "
    "cover more of the state space and the target (the 8-environment mean) is smooth: train 0.351 vs "
    "floor 0.338, test 0.42. The thesis' m = 2 and m = 4 values sit at this floor (0.22 vs 0.234, 0.33 "
    "vs 0.314; 120k epochs, selected on test), ours are ~0.2 and ~0.1 above it. Not the cause: budget (3000 steps, validation every 250: m=2 0.436, m=8 0.413), validation "
    "selection (selecting each group on its own validation MSE, as fit_leads now does, instead of the "
    "sum over groups as it did: m=2 0.473 instead of 0.535 in that probe, still above m=8), lr (3e-4: m=2/4/8 = 0.384/0.463/0.423, still not "
    "monotone; lr stays at the thesis' 1e-3). Grouping matters: the thesis does not say how groups were "
    "formed; consecutive pairs of ENVIRONMENTS[:8] pair dissimilar environments (pair floors 0.03-0.55); "
    "pairing similar ones ({0,1},{2,3},{4,7},{5,6}) gives m=2 test 0.20. Grouping is left consecutive "
    "(chosen before seeing results), so the check fails honestly at this budget."
)


def one_for_all_floor(states: np.ndarray, m: int) -> float:
    """Lowest MSE any One-For-All model can reach on ``states`` with groups of ``m`` environments.

    Every environment's trajectory ``i`` starts from the same state, and One-For-All is one
    deterministic field per group, so it predicts the same trajectory for every environment of
    a group; the best such prediction is the group mean, whose MSE is the within-group variance.

    Args:
        states: ``[n_env, n_traj, n_time, *state]`` with initial states shared across
            environments; the first ``8`` environments are grouped consecutively.
        m: environments per group (divides 8).

    Returns:
        The mean over the 8 environments of ``mean |x_e - mean_group x|^2``.

    Raises:
        ValueError: ``m`` does not divide 8, fewer than 8 environments, or the initial states
            differ across environments.
    """
    states = np.asarray(states, np.float64)
    if m < 1 or 8 % m:
        raise ValueError(f"m must divide 8 (1, 2, 4 or 8), got {m}")
    if states.ndim < 3 or states.shape[0] < 8:
        raise ValueError(f"states must be [n_env >= 8, n_traj, n_time, ...], got shape {states.shape}")
    x = states[:8]
    if not np.allclose(x[:, :, 0], x[:1, :, 0]):
        raise ValueError("the floor needs initial states shared across environments")
    g = x.reshape(8 // m, m, *x.shape[1:])
    return float(np.mean(np.square(g - g.mean(axis=1, keepdims=True))))


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


def _floor_note(r315: dict, floor: dict) -> str:
    """The One-For-All floor per m (train / test) and, if measured, the excess over it."""
    parts = []
    for m, (f_tr, f_te) in floor.items():
        txt = f"m={m}: floor train {f_tr:.3g} / test {f_te:.3g}"
        if "One-For-All" in r315 and m in r315["One-For-All"]:
            te = float(np.mean(r315["One-For-All"][m]))
            txt += f", One-For-All test {te:.3g} (excess {te - f_te:.3g})"
        parts.append(txt)
    return ("One-For-All floor (within-group variance of the true trajectories: initial states are "
            "shared across environments, so one deterministic field per group predicts the same "
            "trajectory for all of them): " + "; ".join(parts) + ".")


def _with_floor(check: Check, r315: dict, floor: dict) -> Check:
    """Adds the floor / excess split to the One-For-All check's detail (metrics.json carries it)."""
    if "One-For-All" not in check.name or "One-For-All" not in r315:
        return check
    split = ", ".join(f"m={m}: {f_te:.3g} + {float(np.mean(r315['One-For-All'][m])) - f_te:.3g}"
                      for m, (_, f_te) in floor.items() if m > 1 and m in r315["One-For-All"])
    return dataclasses.replace(check, detail=(
        f"{check.detail}. Test MSE = floor (best any One-For-All can do; rises with m as in the thesis) "
        f"+ excess (training / generalisation from one shared initial state; falls with m): {split}. "
        "See the report notes."))


@register("leads-lv-groups", "LEADS on Lotka-Volterra: Table 3.15 alone (error vs environments per group)",
          quick_suite=False)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    sizes = SIZES[scale]
    t0 = time.time()
    train, val, test, _, _ = leads_lv._data(0, sizes)
    floor = {m: (one_for_all_floor(train, m), one_for_all_floor(test, m)) for m in sizes["group_ms"]}
    keys = jax.random.split(jax.random.key(0), seeds)
    r315 = leads_lv.run_table_315(train, val, test, keys, sizes)
    rows = [Row(f"Groups (M=8): {name}", {f"test_mse_m{m}": v for m, v in per_m.items()},
                {f"test_mse_m{m}": leads_lv.REF_315[name].get(m) for m in per_m})
            for name, per_m in r315.items()]
    checks = [_with_floor(c, r315, floor) for c in leads_lv._checks({}, {}, r315, sizes)]
    notes = (f"{seeds} seeds; groups of m in {list(sizes['group_ms'])} among the first 8 environments, "
             f"{sizes['group_steps']} Adam steps per group model, lambda={leads_lv.HPARAMS['lam']}, "
             f"alpha={leads_lv.HPARAMS['alpha']}; selection on {sizes['n_val']} validation trajectories/env. "
             f"The m = 1 reference is the thesis' value shared by all methods. Wall {time.time() - t0:.0f} s. "
             + _floor_note(r315, floor) + " " + _DIAGNOSIS)
    return Result(rows=rows, checks=checks, figures=[_plot(r315, out_dir)], notes=notes)
