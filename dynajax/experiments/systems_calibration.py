"""``systems-calibration``: the training-free rows of Ayed 2022 thesis Table 3.4 (Yin et al. 2021).

No network is trained. Each row is the true equation rolled out with the papers' integrator
(RK4 3/8 rule, one step per frame) or a least-squares fit of a physical family (the "Param
ODE/PDE" baselines): if the generated data follow the papers' protocol, these numbers land on
the published ones. Each seed regenerates every dataset from its own seed value. Log MSEs are
natural logs for the pendulum and the wave and log10 for reaction-diffusion: the bases with
which the true-equation rows of Table 3.4 are reproduced by the papers' protocol.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from dynajax.experiments.config import ExperimentConfig
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, save_figure
from dynajax.systems import fit, pendulum, reaction_diffusion, wave

# Ayed 2022, Table 3.4 (Yin et al. 2021's APHYNITY results): row -> {metric: published value}
REFS = {
    "Pendulum Param ODE (w0) least squares": {"log_mse": -0.14, "t0_error_pct": 13.2},
    "Pendulum Param ODE (w0, alpha) least squares": {"log_mse": -8.28, "t0_error_pct": 0.45},
    "Pendulum True ODE (noisy X0)": {"log_mse": -8.58},
    "Pendulum True ODE (clean X0)": {},
    "RD True PDE": {"log10_mse": -8.81},
    "RD Param PDE (a, b) least squares": {"log10_mse": -1.26, "a": 0.33e-3, "b": 0.94e-3, "param_error_pct": 67.6},
    "Wave True PDE (3-point model Laplacian)": {"log_mse": -4.66},
}
PENDULUM_NOISE = 0.01  # std of the noise on the stored pendulum states (Ayed 2022 ch. 3)
# Bands: 1 nat on ln MSEs, half a decade on log10 MSEs, percentage points on the T0 errors.
BANDS = [
    ("Pendulum Param ODE (w0) least squares", "log_mse", 1.0),
    ("Pendulum Param ODE (w0) least squares", "t0_error_pct", 1.0),
    ("Pendulum Param ODE (w0, alpha) least squares", "log_mse", 1.0),
    ("Pendulum Param ODE (w0, alpha) least squares", "t0_error_pct", 1.5),
    ("Pendulum True ODE (noisy X0)", "log_mse", 1.0),
    ("RD True PDE", "log10_mse", 0.5),
    ("RD Param PDE (a, b) least squares", "log10_mse", 0.5),
    ("Wave True PDE (3-point model Laplacian)", "log_mse", 1.0),
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SystemsCalibrationConfig(ExperimentConfig):
    """Dataset sizes (the pendulum's 25 trajectories per split and its 40 frames are fixed).

    Attributes:
        rd_train, rd_test: reaction-diffusion sequences fitted / scored.
        wave_test: wave sequences scored.
    """

    rd_train: int = 16
    rd_test: int = 32
    wave_test: int = 16

    def __post_init__(self):
        if min(self.rd_train, self.rd_test, self.wave_test) < 1:
            raise ValueError(f"rd_train, rd_test and wave_test must be >= 1, got {self.rd_train}, {self.rd_test}, "
                             f"{self.wave_test}")


QUICK = SystemsCalibrationConfig(seeds=3)
# Ayed 2022 Table 3.4 (Yin et al. 2021) data sizes: 1280 + 320 RD sequences, 50 wave test sequences.
FULL = SystemsCalibrationConfig(seeds=3, rd_train=1280, rd_test=320, wave_test=50)
DEMO = SystemsCalibrationConfig(seeds=1, rd_train=8, rd_test=8, wave_test=4)


def _pct(estimate: float, truth: float) -> float:
    return 100.0 * abs(estimate - truth) / abs(truth)


def pendulum_rows(seed: int) -> tuple[dict[str, dict[str, float]], dict]:
    """Frictionless / complete fits and the true-ODE rollouts on the pendulum; the fitted parameters."""
    train, test = (pendulum.generate(split, seed=seed, noise_std=PENDULUM_NOISE) for split in ("train", "test"))
    clean = pendulum.generate("test", seed=seed, noise_std=0.0)
    out, fitted, T0 = {}, {}, pendulum.PARAMS["T0"]
    for name, family in pendulum.FAMILIES.items():
        res = fitted[name] = fit.fit_family(family, train, init="grid" if name == "frictionless" else None)
        out[name] = {"log_mse": math.log(fit.rollout_mse(family, res.params, test)),
                     "t0_error_pct": _pct(float(pendulum.T0_from_omega0_sq(res.params["omega0_sq"])), T0)}
        if "alpha" in res.params:
            out[name]["alpha_error_pct"] = _pct(float(res.params["alpha"]), pendulum.PARAMS["alpha"])
    true = dict(pendulum.PARAMS)
    out["true_clean_x0"] = {"log_mse": math.log(fit.rollout_mse(pendulum.field, true, test, y0=clean.states[:, 0]))}
    out["true_noisy_x0"] = {"log_mse": math.log(fit.rollout_mse(pendulum.field, true, test))}
    return out, {k: v.params for k, v in fitted.items()}


def rd_rows(seed: int, n_train: int, n_test: int) -> dict[str, dict[str, float]]:
    """True-PDE rollout and the diffusion-only fit on reaction-diffusion."""
    train = reaction_diffusion.generate("train", seed=seed, n_traj=n_train)
    test = reaction_diffusion.generate("test", seed=seed, n_traj=n_test)
    truth, family = dict(reaction_diffusion.PARAMS), reaction_diffusion.FAMILIES["diffusion"]
    p = {k: float(v) for k, v in fit.fit_family(family, train).params.items()}
    return {"true": {"log10_mse": math.log10(fit.rollout_mse(reaction_diffusion.field, truth, test))},
            "diffusion": {"log10_mse": math.log10(fit.rollout_mse(family, p, test)), "a": p["a"], "b": p["b"],
                          "param_error_pct": 0.5 * (_pct(p["a"], truth["a"]) + _pct(p["b"], truth["b"]))}}


def wave_rows(seed: int, n_test: int) -> dict[str, dict[str, float]]:
    """The complete wave family at the true (c, k), with the model's 3-point Laplacian."""
    test, family = wave.generate("test", seed=seed, n_traj=n_test), wave.FAMILIES["complete"]
    truth = {k: wave.PARAMS[k] for k in family.param_names}
    return {"true": {"log_mse": math.log(fit.rollout_mse(family, truth, test))}}


def pendulum_figure(seed: int, params: dict, path: Path) -> str:
    """The frictionless least-squares fit ``params`` and the true ODE against test trajectory 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = pendulum.generate("test", seed=seed, noise_std=PENDULUM_NOISE)
    pred = fit.rollout(pendulum.FAMILIES["frictionless"], params, test.states[:, 0], test.times)
    true = fit.rollout(pendulum.field, dict(pendulum.PARAMS), test.states[:, 0], test.times)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(test.times, test.states[0, :, 0], "k.", label=f"data (test trajectory 0, seed {seed})")
    ax.plot(test.times, np.asarray(pred)[0, :, 0], "C3-", label="frictionless least-squares fit")
    ax.plot(test.times, np.asarray(true)[0, :, 0], "C0--", label="true ODE, RK4 3/8")
    ax.set(xlabel="t", ylabel="theta", title="Pendulum: why Param ODE (w0) fails")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


@register("systems-calibration", "Training-free Table 3.4 rows (Param ODE/PDE fits, true-equation rollouts) tying "
          "the generated data to the papers", configs={"demo": DEMO, "quick": QUICK, "full": FULL})
def run(cfg: SystemsCalibrationConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    pend, fitted = zip(*[pendulum_rows(s) for s in seeds])
    rd = [rd_rows(s, cfg.rd_train, cfg.rd_test) for s in seeds]
    wv = [wave_rows(s, cfg.wave_test) for s in seeds]
    sources = dict(zip(REFS, [(pend, "frictionless"), (pend, "complete"), (pend, "true_noisy_x0"),
                              (pend, "true_clean_x0"), (rd, "true"), (rd, "diffusion"), (wv, "true")]))
    values = {name: {k: [s[row][k] for s in per] for k in per[0][row]} for name, (per, row) in sources.items()}
    rows = [Row(name, values[name], REFS[name]) for name in REFS]

    def mean(name, metric):
        return float(np.mean(values[name][metric]))

    checks = [band(f"{name}: {metric} (Table 3.4)", mean(name, metric), REFS[name][metric], tol)
              for name, metric, tol in BANDS]
    f, c = (mean(f"Pendulum Param ODE ({p}) least squares", "log_mse") for p in ("w0", "w0, alpha"))
    floor = math.log(PENDULUM_NOISE**2)
    clean = mean("Pendulum True ODE (clean X0)", "log_mse")
    checks += [Check("pendulum: the complete family fits far better than the frictionless one (> 5 nats)",
                     f - c > 5, f"ln MSE {f:.2f} vs {c:.2f}"),
               Check("pendulum: the true ODE from the noise-free first state sits at the observation-noise floor "
                     "ln(sigma^2) (within 0.3 nat)", abs(clean - floor) < 0.3, f"ln MSE {clean:.2f} vs {floor:.2f}")]
    notes = (
        f"Seeds {list(seeds)}. Pendulum: T0 = {pendulum.PARAMS['T0']}, alpha = {pendulum.PARAMS['alpha']}, 25 "
        f"trajectories per split, 40 frames at dt = 0.5, noise sigma = {PENDULUM_NOISE} on the stored states; fits "
        "on the train split, MSE on the test split with RK4 3/8, one step per frame; the frictionless fit starts "
        "from a grid search. Rollouts start from the stored (noisy) first frame of each test trajectory, as the "
        "papers' test loss; a trajectory whose initial energy is near the separatrix makes that sensitive to the "
        "noise on X0. 'clean X0' rolls the true ODE out from the noise-free first state: its MSE is the "
        "observation-noise floor.\n"
        f"RD: U[0,1] field at t = -0.5, explicit Euler dt = 1e-3, X0 at t = 0, 26 frames 0.1 apart; {cfg.rd_train} "
        f"train / {cfg.rd_test} test sequences; log10 MSE. Wave: 5-point 4th-order data against the model's 3-point "
        f"Laplacian, {cfg.wave_test} test sequences, ln MSE. Bands: 1 nat (ln), half a decade (log10), percentage "
        "points on the T0 errors.")
    fig = pendulum_figure(seeds[0], fitted[0]["frictionless"], out_dir / "pendulum_fit.png")
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)
