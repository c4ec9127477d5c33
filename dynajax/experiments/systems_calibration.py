"""``systems-calibration``: training-free rows of thesis Table 3.4 that tie the data to the thesis.

No network is trained. Each row is either the true equation rolled out with the papers'
integrator (RK4 3/8 rule, one step per frame) or a least-squares fit of a physical family
(the "Param ODE/PDE" baselines): if the generated data follow the thesis protocol, these
numbers land on the published ones. Each seed regenerates every dataset from its own seed.

Log MSEs are natural logs for the pendulum and the wave and log10 for reaction-diffusion,
as in the thesis (specs/aphynity_leads.md section 4.3 settles the bases).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.systems import fit, pendulum, reaction_diffusion, wave

# Sizes per scale: thesis sizes for `full`; `quick` keeps the pendulum whole (it is cheap)
# and uses a few dozen PDE sequences.
SIZES = {
    "quick": {"rd_train": 16, "rd_test": 32, "wave_test": 16},
    "full": {"rd_train": 1280, "rd_test": 320, "wave_test": 50},
}


def _pct(estimate: float, truth: float) -> float:
    return 100.0 * abs(estimate - truth) / abs(truth)


def pendulum_rows(seed: int) -> dict[str, dict[str, float]]:
    """Frictionless / complete fits and the true-ODE rollout on the pendulum (one seed)."""
    train = pendulum.generate("train", seed=seed)
    test = pendulum.generate("test", seed=seed)
    clean = pendulum.generate("test", seed=seed, noise_std=0.0)
    T0, alpha = pendulum.PARAMS["T0"], pendulum.PARAMS["alpha"]
    out = {}
    for name, family in pendulum.FAMILIES.items():
        res = fit.fit_family(family, train, init="grid" if name == "frictionless" else None)
        t0_hat = float(pendulum.T0_from_omega0_sq(res.params["omega0_sq"]))
        row = {
            "log_mse": math.log(fit.rollout_mse(family, res.params, test)),
            "t0_error_pct": _pct(t0_hat, T0),
        }
        if "alpha" in res.params:
            row["alpha_error_pct"] = _pct(float(res.params["alpha"]), alpha)
        out[name] = row
    true = dict(pendulum.PARAMS)
    out["true_clean_x0"] = {
        "log_mse": math.log(fit.rollout_mse(pendulum.field, true, test, y0=clean.states[:, 0]))
    }
    out["true_noisy_x0"] = {"log_mse": math.log(fit.rollout_mse(pendulum.field, true, test))}
    return out


def rd_rows(seed: int, n_train: int, n_test: int) -> dict[str, dict[str, float]]:
    """True-PDE rollout and the diffusion-only fit on reaction-diffusion (one seed)."""
    train = reaction_diffusion.generate("train", seed=seed, n_traj=n_train)
    test = reaction_diffusion.generate("test", seed=seed, n_traj=n_test)
    truth = dict(reaction_diffusion.PARAMS)
    res = fit.fit_family(reaction_diffusion.FAMILIES["diffusion"], train)
    return {
        "true": {"log10_mse": math.log10(fit.rollout_mse(reaction_diffusion.field, truth, test))},
        "diffusion": {
            "log10_mse": math.log10(fit.rollout_mse(reaction_diffusion.FAMILIES["diffusion"], res.params, test)),
            "a": float(res.params["a"]),
            "b": float(res.params["b"]),
            "param_error_pct": 0.5 * (_pct(float(res.params["a"]), truth["a"]) + _pct(float(res.params["b"]), truth["b"])),
        },
    }


def wave_rows(seed: int, n_test: int) -> dict[str, dict[str, float]]:
    """The complete wave family at the true (c, k), with the model's 3-point Laplacian."""
    test = wave.generate("test", seed=seed, n_traj=n_test)
    family = wave.FAMILIES["complete"]
    truth = {k: wave.PARAMS[k] for k in family.param_names}
    return {"true": {"log_mse": math.log(fit.rollout_mse(family, truth, test))}}


def _collect(per_seed: list[dict], system_row: str) -> dict[str, list[float]]:
    keys = per_seed[0][system_row].keys()
    return {k: [s[system_row][k] for s in per_seed] for k in keys}


@register(
    "systems-calibration",
    "Training-free Table 3.4 rows (Param ODE/PDE fits, true-equation rollouts) tying the generated data to the thesis",
)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    sizes = SIZES[scale]
    pend = [pendulum_rows(s) for s in range(seeds)]
    rd = [rd_rows(s, sizes["rd_train"], sizes["rd_test"]) for s in range(seeds)]
    wv = [wave_rows(s, sizes["wave_test"]) for s in range(seeds)]

    rows = [
        Row("Pendulum Param ODE (w0) least squares", _collect(pend, "frictionless"),
            {"log_mse": -0.14, "t0_error_pct": 13.2}),
        Row("Pendulum Param ODE (w0, alpha) least squares", _collect(pend, "complete"),
            {"log_mse": -8.28, "t0_error_pct": 0.45}),
        Row("Pendulum True ODE (clean X0)", _collect(pend, "true_clean_x0"), {"log_mse": -8.58}),
        Row("Pendulum True ODE (noisy X0)", _collect(pend, "true_noisy_x0"), {"log_mse": -8.58}),
        Row("RD True PDE", _collect(rd, "true"), {"log10_mse": -8.81}),
        Row("RD Param PDE (a, b) least squares", _collect(rd, "diffusion"),
            {"log10_mse": -1.26, "a": 0.33e-3, "b": 0.94e-3, "param_error_pct": 67.6}),
        Row("Wave True PDE (3-point model Laplacian)", _collect(wv, "true"), {"log_mse": -4.66}),
    ]

    def mean(row_name, metric):
        row = next(r for r in rows if r.method == row_name)
        return float(np.mean(row.values[metric]))

    def within(name, row_name, metric, lo, hi, ref):
        m = mean(row_name, metric)
        return Check(name, lo <= m <= hi, f"measured {m:.3f} (accept [{lo}, {hi}]; thesis {ref})")

    checks = [
        within("frictionless pendulum fit: ln MSE about -0.1", "Pendulum Param ODE (w0) least squares",
               "log_mse", -0.4, 0.2, -0.14),
        within("frictionless pendulum fit: T0 error 13-14%", "Pendulum Param ODE (w0) least squares",
               "t0_error_pct", 12.5, 15.0, 13.2),
        within("complete pendulum fit recovers T0 within 2%", "Pendulum Param ODE (w0, alpha) least squares",
               "t0_error_pct", 0.0, 2.0, 0.45),
        within("true pendulum ODE with RK4 3/8: ln MSE -8.6 to -9.2 (noisy data, clean X0)",
               "Pendulum True ODE (clean X0)", "log_mse", -9.3, -8.5, -8.58),
        within("RD true PDE: log10 MSE about -8.8", "RD True PDE", "log10_mse", -9.3, -8.3, -8.81),
        within("RD diffusion-only fit: log10 MSE about -1.2", "RD Param PDE (a, b) least squares",
               "log10_mse", -1.5, -0.9, -1.26),
        within("wave true PDE with the model's 3-point Laplacian: ln MSE about -4.7",
               "Wave True PDE (3-point model Laplacian)", "log_mse", -5.2, -4.2, -4.66),
    ]
    figures = [_plot_pendulum_fit(out_dir)]
    notes = (
        "Pendulum: T0 = 6, alpha = 0.2, 25 trajectories per split, 40 frames at dt = 0.5, noise "
        "sigma = 0.01 on the stored states (thesis); fits on the train split, MSE on the test "
        "split with RK4 3/8 one step per frame. The frictionless fit starts from a grid search. "
        "'noisy X0' rolls out from the noisy first frame: it is seed-sensitive because the "
        "initial radius (up to 2.3) can put a trajectory above the separatrix, where noise on "
        "X0 changes the rotation period (seed 0: one such trajectory moves ln MSE from -8.6 to "
        "-7.5); 'clean X0' starts from the noise-free state and is what the check uses.\n"
        f"RD: thesis protocol (U[0,1] field at t = -0.5, explicit Euler dt = 1e-3, X0 at t = 0, "
        f"26 frames at 0.1); {sizes['rd_train']} train / {sizes['rd_test']} test sequences at this "
        "scale; log10 MSE. Wave: 5-point 4th-order data vs the model's 3-point Laplacian, ln MSE."
    )
    return Result(rows=rows, checks=checks, figures=figures, notes=notes)


def _plot_pendulum_fit(out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = pendulum.generate("train", seed=0)
    test = pendulum.generate("test", seed=0)
    fam = pendulum.FAMILIES["frictionless"]
    res = fit.fit_family(fam, train, init="grid")
    pred = fit.rollout(fam, res.params, test.states[:, 0], test.times)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(test.times, test.states[0, :, 0], "k.", label="data (test trajectory 0)")
    ax.plot(test.times, np.asarray(pred)[0, :, 0], "C3-", label="frictionless least-squares fit")
    true = fit.rollout(pendulum.field, dict(pendulum.PARAMS), test.states[:, 0], test.times)
    ax.plot(test.times, np.asarray(true)[0, :, 0], "C0--", label="true ODE, RK4 3/8")
    ax.set(xlabel="t", ylabel="theta", title="Pendulum: why Param ODE (w0) fails")
    ax.legend(fontsize=7)
    return save_figure(fig, out_dir / "pendulum_fit.png")
