"""``leads-linear``: LEADS on the linear ODE of the theory check (thesis Table 3.11).

``du/dt = Q Lambda_e Q^T u`` in ``R^8`` (:mod:`dynajax.systems.linear`), ``M = 8``
environments cut into groups of ``m`` in ``{1, 2, 4, 8}``; each group trains its own
``f + g_e`` with linear maps (``Dense(8)``, no bias) and ``Omega(g_e) = ||G_e||_F^2``; ``n``
training trajectories per environment (``n = 2`` and ``4``, i.e. ``2K`` and ``4K`` points).
Groups train in one ``vmap``-ped program. LEADS no min drops the penalty. Every trajectory
of one environment lies in a 2-D subspace (one mode at rate 0, seven at the common rate
-0.5), so a single environment underdetermines ``A_e`` and sharing ``f`` helps.

Neither the thesis nor the code gives ``lambda`` for this experiment: for every ``(n, m >= 2)``
it is picked from the grid ``SIZES[scale]["lams"]`` on the validation split (mean validation MSE
over seeds; the test split is only scored). With ``m = 1`` a group holds one environment, so
``f + g_1`` with or without the penalty is the same hypothesis class and, as in the thesis
(its m = 1 column is one value shared by both rows), it is trained once (no penalty) and
reported in both rows. Parameters are selected on a validation split (best step).

Why the errors are far above the thesis' (quick: 0.02-0.37 vs 0.01-0.08): the time grid of this
experiment is given neither by the thesis nor by the code, and we use the LV grid (K = 20,
dt = 0.5, T = 10). Every trajectory of one environment lies in a 2-D subspace, so ``n``
trajectories pin ``A_e`` down only on ``n + 1`` of the 8 directions; on the others the
model keeps (about) its initialisation and the test error there grows with the horizon. The
training-free floor of the exact minimum-norm fit with m = 1 (``A_e`` restricted to the data
span) is about 0.43 (n = 2) and 0.27 (n = 4) at T = 10, but about 0.1 / 0.06 at T = 2, the
thesis' scale. Training MSEs do fall to 1e-5 - 1e-7; the gap is the protocol, not the optimiser.
"""

from __future__ import annotations

import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.forecast import leads_baselines
from dynajax.nn import normal
from dynajax.systems import linear

SIZES = {
    "quick": {"n_steps": 3000, "ms": (1, 2, 4, 8), "ns": (2, 4), "n_val": 8, "n_test": 32, "chunk": 500,
              "lams": (1e3, 1e4, 1e5)},
    "full": {"n_steps": 20000, "ms": (1, 2, 4, 8), "ns": (2, 4), "n_val": 32, "n_test": 32, "chunk": 1000,
             "lams": (1e2, 1e3, 1e4, 1e5, 1e6)},
}
HPARAMS = {"dt": 0.5, "init_std": 0.05}

# Table 3.11: test error for m = 1 / 2 / 4 / 8.
REF = {
    ("LEADS no min", 2): {1: 8.13e-2, 2: 6.81e-2, 4: 4.92e-2, 8: 4.50e-2},
    ("LEADS", 2): {1: 8.13e-2, 2: 5.11e-2, 4: 3.93e-2, 8: 2.10e-2},
    ("LEADS no min", 4): {1: 4.08e-2, 2: 3.96e-2, 4: 3.10e-2, 8: 2.23e-2},
    ("LEADS", 4): {1: 4.08e-2, 2: 2.74e-2, 4: 1.61e-2, 8: 1.02e-2},
}


def make_net() -> nn.Module:
    """A linear map ``R^8 -> R^8`` (no bias) with ``N(0, 0.05)`` weights."""
    return nn.Dense(linear.DIM, use_bias=False, kernel_init=normal(HPARAMS["init_std"]))


def _grouped(x, m):
    return x.reshape(linear.DIM // m, m, *x.shape[1:])


def _fit_score(variant, lam, train, val, test, m, sizes, keys):
    """Per-seed ``(val MSE, test MSE)`` (means over the 8 environments) of one trained variant."""
    model, res = leads_baselines.train_variant(
        variant, make_net(), _grouped(train, m), _grouped(val, m), dt=HPARAMS["dt"],
        n_steps=sizes["n_steps"], keys=keys, groups=True, chunk_size=sizes["chunk"],
        lam=lam, omega="frobenius")
    n_seeds = len(keys)
    score = lambda d: leads_baselines.evaluate(  # noqa: E731
        model, res.best_params, _grouped(d, m), groups=True).reshape(n_seeds, -1).mean(-1)
    return score(val), score(test)


def run_table(seeds: int, sizes: dict) -> tuple[dict, dict]:
    """``({(method, n): {m: per-seed test MSE averaged over the 8 environments}},
    {(n, m): lambda picked on validation})``."""
    f32 = lambda d: jnp.asarray(d.by_env(), jnp.float32)  # noqa: E731
    val = f32(linear.generate("val", n_per_env=sizes["n_val"]))
    test = f32(linear.generate("test", n_per_env=sizes["n_test"]))
    keys = jax.random.split(jax.random.key(0), seeds)
    out, lams = {}, {}
    for n in sizes["ns"]:
        train = f32(linear.generate("train", n_per_env=n))
        nomin, lead = out.setdefault(("LEADS no min", n), {}), out.setdefault(("LEADS", n), {})
        for m in sizes["ms"]:
            nomin[m] = _fit_score("leads_no_min", None, train, val, test, m, sizes, keys)[1]
            if m == 1:  # one environment per group: the thesis' shared m = 1 value
                lead[m] = nomin[m]
                continue
            scored = {lam: _fit_score("leads", lam, train, val, test, m, sizes, keys) for lam in sizes["lams"]}
            best = min(scored, key=lambda lam: float(np.mean(scored[lam][0])))
            lams[(n, m)], lead[m] = best, scored[best][1]
    return out, lams


def _plot(table: dict, out_dir: Path) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for (name, n), per_m in table.items():
        ms = list(per_m)
        mean = [float(np.mean(per_m[m])) for m in ms]
        ax.plot(ms, mean, "o-" if name == "LEADS" else "s--", label=f"{name}, n={n}K")
        ref = REF[(name, n)]
        ax.plot(ms, [ref[m] for m in ms], ":", color=ax.lines[-1].get_color(), alpha=0.5)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("environments per group m")
    ax.set_ylabel("test MSE (dotted: thesis)")
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / "leads_linear.png")


@register("leads-linear", "LEADS on the 8-D linear ODE: Table 3.11 (error vs environments per group)",
          quick_suite=False)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    sizes = SIZES[scale]
    t0 = time.time()
    table, lams = run_table(seeds, sizes)
    rows = [
        Row(f"{name} (n={n}K)", {f"test_mse_m{m}": v for m, v in per_m.items()},
            {f"test_mse_m{m}": REF[(name, n)].get(m) for m in per_m})
        for (name, n), per_m in table.items()
    ]
    checks = []
    for n in sizes["ns"]:
        lm = {m: float(np.mean(v)) for m, v in table[("LEADS", n)].items()}
        nm = {m: float(np.mean(v)) for m, v in table[("LEADS no min", n)].items()}
        big = [m for m in lm if m >= 2]
        checks.append(Check(f"n={n}K: LEADS < no-min for every m >= 2", all(lm[m] < nm[m] for m in big),
                            ", ".join(f"m={m}: {lm[m]:.3g} vs {nm[m]:.3g}" for m in big)))
        ms = list(lm)
        checks.append(Check(f"n={n}K: LEADS error falls with m", all(lm[b] < lm[a] for a, b in zip(ms, ms[1:])),
                            ", ".join(f"m={m}: {lm[m]:.3g}" for m in ms)))
    fig = _plot(table, out_dir)
    picked = ", ".join(f"n={n}K m={m}: {lam:g}" for (n, m), lam in lams.items())
    notes = (f"{seeds} seeds; {sizes['n_steps']} Adam steps (lr 1e-3), RK4 3/8, dt = 0.5, K = 20 (T = 10, "
             f"the LV grid: the thesis gives none; its errors suggest a shorter horizon, see the module "
             f"docstring); lambda picked per (n, m) from {list(sizes['lams'])} on {sizes['n_val']} "
             f"validation trajectories/env ({picked}); m = 1 trained once and shared by both rows "
             f"as in the thesis. Wall {time.time() - t0:.0f} s.")
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)
