"""``hidden-ep2d``: cardiac electrophysiology with scars, potential observed, gate hidden (thesis sec. 2.7.3).

Data (:mod:`dynajax.systems.mitchell_schaeffer`): Mitchell-Schaeffer on a 24 x 24 mm^2 slab,
1 mm pixels, the thesis' 2-D parameters, explicit Euler at 0.02 ms, frames every 1 ms for
30 ms, a 10 ms stimulus of amplitude 1 on one 3 x 3-pixel onset, a scar of conductivity 0.
Training and validation: random rectangular scars, ``sigma`` drawn from ``{1, ..., 5}`` per
simulation, every window of ``4 + T`` frames (4 context frames, horizon ``T``: the thesis' 6 at
``full`` scale; 12 at ``quick`` scale, with :func:`hidden_ns.train_model`'s horizon curriculum
training on the first 6 targets for 2/3 of the steps: a T = 6 model drifts past its training
horizon, see the note at ``SIZES``). Test sets (one window per
simulation, context frames 2-5, forecasts to 24 ms): rectangular (in distribution),
triangular, circular and complex scars at ``sigma = 2`` (Table 2.6); three onsets (Table 2.7);
``sigma = 0.7`` and ``6`` (Table 2.8, outside the training range).

Model (EP-Net 2.0, setting 1 "JT"): state ``X = (v, h, scar)``, the scar indicator a constant
channel whose derivative is fixed at 0 ([interp.] of Fig. 2.11's "scar as input"); observed
``(v, scar)``, so ``g_theta`` (a UNet) sees the 4 context frames and the scar and fills the
hidden channel. ``F_theta``: the ResNet of :mod:`dynajax.forecast.hidden_baselines` with
reflecting padding (no-flux walls), one explicit Euler step per 1 ms frame, Adam with cosine
decay, scheduled sampling, and eq. 2.12's scar penalty ``lambda_scar = 0.1`` on ``v``. A
setting-2 model (true ``X0 = (v, h, scar)`` given) is trained beside it, so the hidden gate
can be compared with the truth (a JT hidden channel is only defined up to a diffeomorphism,
Prop. 2.1).

Metrics: MSE of ``v`` (the thesis' "relative MSE" on ``v in [0, 1]``; spec section 6.4),
averaged over steps ``1..h`` for ``h = 6, 12, 24`` ms; persistence beside it; for setting 2,
the MSE of the hidden gate ``h`` (its persistence is a strong baseline: ``tau_close = 150`` ms
is much longer than the 24 ms horizon); penetration: mean ``|v|`` predicted inside the scar.
"""

from __future__ import annotations

import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.hidden_ns import predict, train_model
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.forecast import hidden as hd
from dynajax.forecast.hidden_baselines import ResNet, UNet
from dynajax.systems import mitchell_schaeffer as ms

# quick recipe chosen on the VALIDATION split only (setting-1 model, seed 0, 8 validation
# sequences, a 24-step rollout from frame 2; MSE of v at 6 / 12 / 24 ms; training seconds with
# two probes sharing 2 cores at load 2-5):
#   T = 6,   800 steps:                                    1.8e-3 / 1.2e-2  / 9.6e-2
#   T = 6,  2000 steps (previous recipe):                  7.9e-4 / 1.7e-2  / 3.6e-2  (362 s)
#   T = 6,  3000 steps:                                    1.25e-3 / 1.76e-2 / 3.09e-2 (586 s)
#   T = 12, 2000 steps, fixed:                             2.3e-3 / 1.24e-2 / 1.69e-2 (660 s)
#   T = 12, 2000 steps, curriculum 6 -> 12 (1/2, 1/2):     1.9e-3 / 8.0e-3  / 1.40e-2 (590 s)
#   T = 12, 2000 steps, curriculum 6 -> 12 (3/4, 1/4):     1.4e-3 / 8.0e-3  / 1.42e-2 (419 s)
#   T = 12, 3000 steps, curriculum 6 -> 12 (2/3, 1/3):     1.0e-3 / 6.0e-3  / 1.08e-2 (584 s, kept)
#   T = 16, 3000 steps, curriculum 6/12/16 (.6/.2/.2):     1.75e-3 / 1.21e-2 / 2.98e-2 (791 s)
# Every T = 12 variant is 1.4-2.9x better at 12 ms and 2-3x at 24 ms than T = 6 at the same
# steps; the 6 ms error moves within the step-to-step noise of T = 6 (7.9e-4 at 2000 steps,
# 1.25e-3 at 3000). Cost: about 2x the training time of the previous recipe.
SIZES = {
    "quick": {"n_train": 64, "n_val": 8, "n_test": 24, "width": 16, "n_down": 3, "n_blocks": 3,
              "est_width": 8, "T": 12, "batch": 8, "steps": 3000, "lr": 2e-3, "val_every": 50,
              "horizon_curriculum": ((0.5, 0.67), (1.0, 0.33)),
              "teacher_decay": 0.995, "lambda_scar": 0.1, "models": ("joint", "canonical")},
    "full": {"n_train": 400, "n_val": 40, "n_test": 100, "width": 32, "n_down": 3, "n_blocks": 3,
             "est_width": 16, "T": 6, "batch": 16, "steps": 3000, "lr": 1e-3, "val_every": 100,
             "teacher_decay": 0.999, "lambda_scar": 0.1, "models": ("joint", "canonical")},
}
DATA = {"size": 24, "n_frames": 30, "dt": 0.02, "train_sigma": (1.0, 2.0, 3.0, 4.0, 5.0)}
K = 4
TEST_START = 2  # test windows: context frames 2..5, forecasts of frames 6..29
HORIZONS = (6, 12, 24)
NAMES = {"joint": "EP-Net 2.0, setting 1 (JT)", "canonical": "Setting 2 (X0 = (v, h) given)"}
# test sets: (name, scar shape, sigma, onsets, thesis MSE at 6 / 12 / 24 ms (Tables 2.6-2.8))
TEST_SETS = (
    ("rectangular", "rectangle", 2.0, 1, (1.8e-4, 4.45e-4, 6.8e-4)),
    ("triangular", "triangle", 2.0, 1, (3.1e-4, 8e-4, 1.36e-3)),
    ("circular", "circle", 2.0, 1, (2.7e-4, 8.2e-4, 3.4e-3)),
    ("complex", "complex", 2.0, 1, (4.6e-4, 1.9e-3, 6.36e-3)),
    ("multiple onsets", "rectangle", 2.0, 3, (4.7e-4, 5.8e-4, 6.9e-4)),
    ("sigma=0.7", "rectangle", 0.7, 1, (4.65e-4, 3.95e-3, 1.9e-2)),
    ("sigma=6", "rectangle", 6.0, 1, (2e-3, 4.7e-3, 3e-3)),
)


class ScarField(nn.Module):
    """``F(v, h, scar) = (F_v, F_h, 0)``: the wrapped network's field, the scar held constant."""

    net: nn.Module

    @nn.compact
    def __call__(self, x):
        out = self.net(x)
        return jnp.concatenate([out[..., :2, :, :], jnp.zeros_like(x[..., 2:, :, :])], axis=-3)


def simulate_set(key, n: int, shape: str, sigma, n_onsets: int) -> np.ndarray:
    """``[n, 31, 3, 24, 24]`` float32 states ``(v, h, scar)``; ``sigma`` a value or a tuple to draw from."""
    k_scar, k_stim, k_sig = jax.random.split(key, 3)
    scars = ms.sample_scars(k_scar, n, DATA["size"], shape)
    stim = ms.sample_stimulus(k_stim, 1.0 - scars, n_onsets)
    sig = jnp.asarray(np.atleast_1d(sigma), jnp.float32)
    sigmas = sig[jax.random.randint(k_sig, (n,), 0, sig.shape[0])]
    ys = np.asarray(ms.simulate_batch(1.0 - scars, stim, sigmas, n_frames=DATA["n_frames"], dt=DATA["dt"]))
    scar = np.broadcast_to(np.asarray(scars)[:, None, None], (n, ys.shape[1], 1, *ys.shape[-2:]))
    return np.concatenate([ys, scar], axis=2).astype(np.float32)


def windows(states: np.ndarray, length: int, starts=None) -> dict:
    """Windows ``obs [N, length, 2, H, W]`` (v, scar), ``x0`` (the state at the last context
    frame) and ``scar [N, H, W]``; every start unless ``starts`` is given."""
    n_sims, n_t = states.shape[:2]
    starts = range(n_t - length + 1) if starts is None else starts
    idx = [(i, s) for i in range(n_sims) for s in starts]
    obs = np.stack([states[i, s:s + length][:, (0, 2)] for i, s in idx])
    x0 = np.stack([states[i, s + K - 1] for i, s in idx])
    return {"obs": obs, "x0": x0, "scar": x0[:, 2]}


def build_model(setting: str, cfg: dict) -> hd.HiddenModel:
    """Setting ``"joint"`` (UNet estimator) or ``"canonical"``; one Euler step per 1 ms frame."""
    field = ScarField(ResNet(3, width=cfg["width"], n_down=cfg["n_down"], n_blocks=cfg["n_blocks"],
                             padding="REFLECT"))
    est = UNet(3, width=cfg["est_width"], depth=3, out_gain=0.1, padding="REFLECT") if setting == "joint" else None
    return hd.HiddenModel(field, hd.ChannelProjection([0, 2], 3), estimator=est, setting=setting,
                          n_context=K, interval=1.0, substeps=1, method="euler")


def _mean_to(per_step: np.ndarray) -> dict[int, float]:
    return hd.horizon_means(per_step, HORIZONS)


def score(states: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Metrics of predicted ``states [H + 1, B, 3, n, n]`` against ``truth`` (same shape)."""
    row = {}
    mse_v = np.mean((states[:, :, 0] - truth[:, :, 0]) ** 2, axis=(-2, -1)).T  # [B, H + 1]
    mse_h = np.mean((states[:, :, 1] - truth[:, :, 1]) ** 2, axis=(-2, -1)).T
    scar = truth[0, :, 2]  # [B, n, n]
    n_scar = np.maximum(scar.sum(axis=(-2, -1)), 1.0)
    pen = (np.abs(states[:, :, 0]) * scar).sum(axis=(-2, -1)).T / n_scar[:, None]
    for h, v in _mean_to(mse_v).items():
        row[f"mse_v_{h}ms"] = v
    for h, v in _mean_to(mse_h).items():
        row[f"mse_h_{h}ms"] = v
    row["scar_abs_v"] = _mean_to(pen)[HORIZONS[-1]]
    return row


def run_seed(seed: int, cfg: dict):
    """Data, models, per-test-set scores and persistence for one seed."""
    t0 = time.perf_counter()
    H = HORIZONS[-1]
    key = jax.random.key(seed)
    k_tr, k_va, k_te, k_models = jax.random.split(key, 4)
    tr = simulate_set(k_tr, cfg["n_train"], "rectangle", DATA["train_sigma"], 1)
    va = simulate_set(k_va, cfg["n_val"], "rectangle", DATA["train_sigma"], 1)
    tests = {name: simulate_set(jax.random.fold_in(k_te, i), cfg["n_test"], shape, sigma, onsets)
             for i, (name, shape, sigma, onsets, _) in enumerate(TEST_SETS)}
    timings = {"data_s": time.perf_counter() - t0}
    train_w, val_w = windows(tr, K + cfg["T"]), windows(va, K + cfg["T"])
    rows = {name: {} for name in tests}
    preds = {}
    for i, setting in enumerate(cfg["models"]):
        t1 = time.perf_counter()
        model = build_model(setting, cfg)
        teacher = hd.exponential_schedule(cfg["teacher_decay"])
        penalties = [(cfg["lambda_scar"], hd.masked_zero_penalty("scar", channels=(0,)))]
        params = train_model(model, jax.random.fold_in(k_models, i), train_w, val_w, cfg, teacher, penalties)
        timings[f"{setting}_s"] = time.perf_counter() - t1
        for name, te in tests.items():
            w = windows(te, K + H, starts=(TEST_START,))
            states = predict(model, params, jnp.asarray(w["obs"][:, :K]), jnp.asarray(w["x0"]), H)
            truth = np.moveaxis(te[:, TEST_START + K - 1:TEST_START + K + H], 1, 0)
            rows[name][setting] = score(states, truth)
            if name in ("rectangular", "complex"):
                preds[(setting, name)] = (states[:, 0], truth[:, 0])
    for name, te in tests.items():
        truth = np.moveaxis(te[:, TEST_START + K - 1:TEST_START + K + H], 1, 0)
        rows[name]["persistence"] = score(np.broadcast_to(truth[:1], truth.shape), truth)
    return rows, preds, timings


def _figure(preds, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [0, 3, 6, 12, 24]
    panels = []
    for (setting, name), (pred, truth) in preds.items():
        panels += [(truth[:, 0], f"true v ({name})"), (pred[:, 0], f"{setting}: pred v"),
                   (truth[:, 1], "true h (hidden)"), (pred[:, 1], f"{setting}: hidden ch." + (" (not canonical)" if setting == "joint" else ""))]
    fig, axes = plt.subplots(len(panels), len(steps), figsize=(2.0 * len(steps), 2.0 * len(panels)), squeeze=False)
    for r, (seq, title) in enumerate(panels):
        for j, s in enumerate(steps):
            ax = axes[r, j]
            ax.imshow(seq[s], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{title}, +{s} ms", fontsize=7)
    fig.suptitle("hidden-ep2d: test sequence 0 (scar: v = h = 0)")
    fig.tight_layout()
    return save_figure(fig, out_dir / "hidden_ep2d_rollout.png")


@register("hidden-ep2d", "Cardiac Mitchell-Schaeffer 2-D with scars, v observed, gate hidden: EP-Net 2.0 OOD scar shapes, onsets, conductivity (thesis sec. 2.7.3)",
          default_seeds=1,
          quick_suite=False)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    cfg = SIZES[scale]
    per_seed, timings = [], []
    for s in range(seeds):
        rows, preds, tm = run_seed(s, cfg)
        per_seed.append(rows)
        timings.append(tm)
        if s == 0:
            fig = _figure(preds, out_dir)

    def mean(test, method, metric):
        return float(np.mean([r[test][method][metric] for r in per_seed]))

    main = cfg["models"][0]
    result_rows = []
    for name, _, _, _, refs in TEST_SETS:
        for method in (*cfg["models"], "persistence"):
            label = f"{NAMES.get(method, 'Persistence')} / {name}"
            # a JT hidden channel is defined up to a diffeomorphism (Prop. 2.1): no MSE against h
            values = {k: [r[name][method][k] for r in per_seed] for k in per_seed[0][name][method]
                      if not (method == "joint" and k.startswith("mse_h"))}
            ref = {f"mse_v_{h}ms": e for h, e in zip(HORIZONS, refs)} if method == "joint" else {}
            result_rows.append(Row(label, values, ref))

    def mses(test, method=main):
        return [mean(test, method, f"mse_v_{h}ms") for h in HORIZONS]

    def fmt(vals):
        return "/".join(f"{v:.2e}" for v in vals)

    checks = []
    rect, tri, circ, comp = (mses(n) for n in ("rectangular", "triangular", "circular", "complex"))
    ok = all(r < min(t, c) and max(t, c) < x for r, t, c, x in zip(rect, tri, circ, comp))
    checks.append(Check(
        "OOD scar shapes rank rectangular < triangular ~ circular < complex at 6/12/24 ms (Table 2.6)", ok,
        f"MSE of v at 6/12/24 ms: rectangular {fmt(rect)}, triangular {fmt(tri)}, circular {fmt(circ)}, "
        f"complex {fmt(comp)}"))
    checks.append(Check(
        "in-distribution MSE at 6 ms <= 1e-3 and growing with the horizon (thesis 1.8e-4 < 4.45e-4 < 6.8e-4)",
        rect[0] <= 1e-3 and rect[0] < rect[1] < rect[2], f"rectangular {fmt(rect)}"))
    multi = mses("multiple onsets")
    checks.append(Check("multiple onsets worse than one at 6 ms (Table 2.7: 4.7e-4 vs 1.8e-4)",
                        multi[0] > rect[0], f"{multi[0]:.2e} vs {rect[0]:.2e}"))
    s07, s6 = mses("sigma=0.7"), mses("sigma=6")
    checks.append(Check("sigma = 0.7 and 6 worse than sigma = 2 at every horizon (Table 2.8)",
                        all(a > r and b > r for a, b, r in zip(s07, s6, rect)),
                        f"sigma=0.7 {fmt(s07)}, sigma=6 {fmt(s6)}, sigma=2 {fmt(rect)}"))
    pers = mses("rectangular", "persistence")
    checks.append(Check("the model beats persistence in distribution at every horizon",
                        all(a < b for a, b in zip(rect, pers)), f"{fmt(rect)} vs persistence {fmt(pers)}"))
    pen = mean("rectangular", main, "scar_abs_v")
    checks.append(Check("penetration into the scar near zero: mean |v| predicted on scar <= 0.02 over 24 ms",
                        pen <= 0.02, f"{pen:.4f}"))
    tm = {k: float(np.mean([t[k] for t in timings])) for k in timings[0]}
    notes = (
        f"Data {DATA}, K = {K} context frames, test windows start at frame {TEST_START}; config "
        f"{ {k: v for k, v in cfg.items() if k != 'models'} }. mse_v_Xms: MSE of v averaged over the "
        "first X forecast frames (1 ms apart); thesis references (Tables 2.6-2.8) sit beside the JT "
        "model's. The thesis' data come from an LBM solver, 30000 training windows and ~5000 epochs: "
        "compare orderings, not values. Wall seconds per part (mean over seeds): "
        + ", ".join(f"{k} {v:.0f}" for k, v in tm.items())
    )
    return Result(rows=result_rows, checks=checks, figures=[fig], notes=notes)
