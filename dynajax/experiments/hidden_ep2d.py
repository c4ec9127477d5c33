"""``hidden-ep2d``: cardiac electrophysiology with scars, the potential observed, the gate hidden.

EP-Net 2.0, Ayed 2022 thesis sec. 2.7.3, Tables 2.6-2.8. Data
(:mod:`dynajax.systems.mitchell_schaeffer`, Mitchell & Schaeffer 2003): a slab of 1 mm pixels,
the thesis' 2-D parameters, a 10 ms stimulus of amplitude 1 on 3 x 3-pixel onsets, a scar of
conductivity 0, frames every 1 ms. Training and validation: random rectangular scars, one onset,
``sigma`` drawn per simulation from ``train_sigma``, every window of ``K + T`` frames. Test sets
(one window per simulation from frame ``test_start``): rectangular (in distribution),
triangular, circular and complex scars at ``sigma = 2`` (Table 2.6); three onsets (Table 2.7);
``sigma = 0.7`` and ``6`` (Table 2.8, outside the training range).

Model (setting 1, "JT"): state ``X = (v, h, scar)``, the scar a constant channel
(:class:`ScarField`: its derivative is 0, an [interp.] of the thesis' "scar as input");
observed ``(v, scar)``: ``g_theta`` (a UNet) sees the context and the scar and fills the
hidden gate. ``F_theta``: the ResNet of :mod:`dynajax.forecast.hidden_baselines` with
reflecting padding (no-flux walls), one Euler step per frame; :func:`dynajax.forecast.hidden.fit`
with scheduled sampling and eq. 2.12's scar penalty on ``v``. A setting-2 model (true ``X0``
given) beside it scores the hidden gate against the truth (a JT hidden channel is defined up
to a diffeomorphism, Prop. 2.1). Metrics: MSE of ``v`` (the thesis' "relative MSE" on
``v in [0, 1]``) averaged over the first ``h`` ms, persistence beside it, the MSE of ``h``
for setting 2, and the penetration: mean ``|v|`` predicted on the scar.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, save_image_grid
from dynajax.forecast import hidden as hd
from dynajax.forecast.hidden_baselines import ResNet, UNet
from dynajax.systems import mitchell_schaeffer as ms

NAMES = {"joint": "EP-Net 2.0, setting 1 (JT)", "canonical": "Setting 2 (X0 = (v, h) given)"}
THESIS_HORIZONS = (6, 12, 24)  # ms
# (name, scar shape, sigma, onsets, thesis MSE of v at 6 / 12 / 24 ms): Ayed 2022, Tables 2.6-2.8
TEST_SETS = (
    ("rectangular", "rectangle", 2.0, 1, (1.8e-4, 4.45e-4, 6.8e-4)),
    ("triangular", "triangle", 2.0, 1, (3.1e-4, 8e-4, 1.36e-3)),
    ("circular", "circle", 2.0, 1, (2.7e-4, 8.2e-4, 3.4e-3)),
    ("complex", "complex", 2.0, 1, (4.6e-4, 1.9e-3, 6.36e-3)),
    ("multiple onsets", "rectangle", 2.0, 3, (4.7e-4, 5.8e-4, 6.9e-4)),
    ("sigma=0.7", "rectangle", 0.7, 1, (4.65e-4, 3.95e-3, 1.9e-2)),
    ("sigma=6", "rectangle", 6.0, 1, (2e-3, 4.7e-3, 3e-3)),
)
MSE_TOL = 0.5  # band on the in-distribution MSEs: half a decade (|log10 ratio|)


@dataclasses.dataclass(frozen=True, kw_only=True)
class HiddenEP2DConfig(ExperimentConfig):
    """Data, models and training of the EP-Net 2.0 study.

    Attributes:
        size: pixels per side (1 mm each); n_frames: frames after the first (1 ms apart);
            dt: explicit Euler step of the simulator (ms); train_sigma: training conductivities.
        n_train, n_val, n_test: simulations for training, validation and each test set.
        n_context: ``K``; T: training horizon (frames); test_start: first context frame of a test window.
        horizons: evaluation horizons (ms), increasing; the rollout goes to the last.
        models: settings to train, keys of :data:`NAMES` (the first one is scored by the checks).
        width, n_down, n_blocks: the ResNet field; est_width: the UNet estimator's width.
        curriculum: ``(fraction of T, fraction of the steps)`` pairs (:func:`hd.curriculum_stages`).
        batch, steps, lr, val_every: minibatch, Adam steps per model, initial rate, validation period.
        teacher_decay: scheduled-sampling probability ``decay ** step``; lambda_scar: eq. 2.12's weight.
    """

    size: int = 24
    n_frames: int = 30
    dt: float = 0.02
    train_sigma: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)
    n_train: int = 64
    n_val: int = 8
    n_test: int = 24
    n_context: int = 4
    T: int = 12
    test_start: int = 2
    horizons: tuple[int, ...] = THESIS_HORIZONS
    models: tuple[str, ...] = ("joint", "canonical")
    width: int = 16
    n_down: int = 3
    n_blocks: int = 3
    est_width: int = 8
    curriculum: tuple[tuple[float, float], ...] = ((0.5, 0.67), (1.0, 0.33))
    batch: int = 8
    steps: int = 3000
    lr: float = 2e-3
    val_every: int = 50
    teacher_decay: float = 0.995
    lambda_scar: float = 0.1

    def __post_init__(self):
        if not self.models or set(self.models) - set(NAMES) or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct names among {', '.join(NAMES)}; got {self.models!r}")
        h = self.horizons
        if not h or any(not isinstance(x, int) or x < 1 for x in h) or list(h) != sorted(set(h)):
            raise ValueError(f"horizons must be increasing integers >= 1, got {h!r}")
        for name in ("n_train", "n_val", "n_test", "n_context", "T", "batch", "steps", "val_every", "width",
                     "est_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.test_start < 0 or self.test_start + self.n_context + h[-1] > self.n_frames + 1:
            raise ValueError(f"test windows (start {self.test_start}, K + max horizon = {self.n_context + h[-1]}) "
                             f"must fit in the {self.n_frames + 1} frames")
        if self.n_context + self.T > self.n_frames + 1 or self.size % 8 or self.size % 2 ** self.n_down:
            raise ValueError(f"need n_context + T <= n_frames + 1 and size divisible by 8 (UNet depth 3) and "
                             f"2 ** n_down; got K + T = {self.n_context + self.T}, size {self.size}")
        if self.batch > self.n_train * (self.n_frames + 2 - self.n_context - self.T) or not self.train_sigma:
            raise ValueError(f"batch must be <= the training windows and train_sigma non-empty; got batch "
                             f"{self.batch}, train_sigma {self.train_sigma}")
        if not 0 <= self.teacher_decay <= 1 or not self.lr > 0 or self.lambda_scar < 0:
            raise ValueError("need 0 <= teacher_decay <= 1, lr > 0 and lambda_scar >= 0")
        hd.curriculum_stages(self.T, self.steps, self.curriculum)


# Within 10 minutes on 2 CPU cores: the JT model only (the one the checks score), T = 12 with a curriculum.
QUICK = HiddenEP2DConfig(models=("joint",))
# Ayed 2022 sec. 2.7.3 (Tables 2.6-2.8): ResNet of 64 filters, 3 downsamplings, 3 blocks; horizon 6 after 4
# context frames; Adam 1e-3; scheduled sampling 0.9999; lambda_scar 0.1; about 30000 training and 12000
# validation windows (simulations of 22 windows each). The thesis trains about 5000 epochs; FULL stops at
# 20000 steps of 16 windows.
FULL = HiddenEP2DConfig(n_train=1364, n_val=546, n_test=100, width=64, est_width=16, T=6, curriculum=((1.0, 1.0),),
                        batch=16, steps=20000, lr=1e-3, val_every=500, teacher_decay=0.9999)


class ScarField(nn.Module):
    """``F(v, h, scar) = (F_v, F_h, 0)``: the wrapped network's field, the scar held constant."""

    net: nn.Module

    @nn.compact
    def __call__(self, x):
        out = self.net(x)
        return jnp.concatenate([out[..., :2, :, :], jnp.zeros_like(x[..., 2:, :, :])], axis=-3)


def simulate_set(key, n: int, shape: str, sigma, n_onsets: int, cfg: HiddenEP2DConfig) -> np.ndarray:
    """``[n, n_frames + 1, 3, size, size]`` float32 states ``(v, h, scar)``; ``sigma``: a value or values
    to draw from (one per simulation)."""
    k_scar, k_stim, k_sig = jax.random.split(key, 3)
    scars = ms.sample_scars(n, cfg.size, shape, key=k_scar)
    sig = jnp.asarray(np.atleast_1d(sigma), jnp.float32)[jax.random.randint(k_sig, (n,), 0, np.size(sigma))]
    stim = ms.sample_stimulus(1.0 - scars, n_onsets, key=k_stim)
    ys = np.asarray(ms.simulate_batch(1.0 - scars, stim, sig, n_frames=cfg.n_frames, dt=cfg.dt))
    scar = np.broadcast_to(np.asarray(scars)[:, None, None], (n, ys.shape[1], 1, *ys.shape[-2:]))
    return np.concatenate([ys, scar], axis=2).astype(np.float32)


def windows(states: np.ndarray, length: int, n_context: int, starts=None) -> dict:
    """:func:`hd.windows` observing ``(v, scar)``, plus ``scar [N, H, W]`` for the penalty."""
    w = hd.windows(states, (0, 2), length, n_context, starts)
    return dict(w, scar=w["x0"][:, 2])


def build_model(setting: str, cfg: HiddenEP2DConfig) -> hd.HiddenModel:
    """Setting ``"joint"`` (UNet estimator) or ``"canonical"``; one Euler step per 1 ms frame."""
    field = ScarField(ResNet(3, width=cfg.width, n_down=cfg.n_down, n_blocks=cfg.n_blocks, padding="REFLECT"))
    est = UNet(3, width=cfg.est_width, depth=3, out_gain=0.1, padding="REFLECT") if setting == "joint" else None
    return hd.HiddenModel(field, hd.ChannelProjection([0, 2], 3), estimator=est, setting=setting,
                          n_context=cfg.n_context, interval=1.0, substeps=1, method="euler")


def score(states: np.ndarray, truth: np.ndarray, horizons) -> dict[str, float]:
    """MSEs of ``v`` and ``h`` and the penetration of ``states [H + 1, B, 3, n, n]`` against ``truth``."""
    mse = {c: np.mean((states[:, :, i] - truth[:, :, i]) ** 2, axis=(-2, -1)).T for i, c in enumerate("vh")}
    scar = truth[0, :, 2]
    pen = (np.abs(states[:, :, 0]) * scar).sum(axis=(-2, -1)).T / np.maximum(scar.sum(axis=(-2, -1)), 1.0)[:, None]
    row = {f"mse_{c}_{h}ms": v for c in "vh" for h, v in hd.horizon_means(mse[c], horizons).items()}
    return dict(row, scar_abs_v=hd.horizon_means(pen, horizons[-1:])[horizons[-1]])


def run_seed(k_data, k_models, cfg: HiddenEP2DConfig):
    """Data, models, per-test-set scores and persistence for one seed."""
    t0, K, H = time.perf_counter(), cfg.n_context, cfg.horizons[-1]
    k_tr, k_va, k_te = jax.random.split(k_data, 3)
    tr, va = (simulate_set(k, n, "rectangle", cfg.train_sigma, 1, cfg)
              for k, n in ((k_tr, cfg.n_train), (k_va, cfg.n_val)))
    tests = {name: simulate_set(jax.random.fold_in(k_te, i), cfg.n_test, shape, sigma, onsets, cfg)
             for i, (name, shape, sigma, onsets, _) in enumerate(TEST_SETS)}
    s0 = cfg.test_start
    truth = {name: np.moveaxis(te[:, s0 + K - 1:s0 + K + H], 1, 0) for name, te in tests.items()}
    times, rows, preds = {"data_s": time.perf_counter() - t0}, {name: {} for name in tests}, {}
    train_w, val_w = windows(tr, K + cfg.T, K), windows(va, K + cfg.T, K)
    for i, setting in enumerate(cfg.models):
        t1, model = time.perf_counter(), build_model(setting, cfg)
        penalties = [(cfg.lambda_scar, hd.masked_zero_penalty("scar", channels=(0,)))]
        params = hd.fit(model, train_w, val_w, key=jax.random.fold_in(k_models, i), steps=cfg.steps, lr=cfg.lr,
                        batch_size=cfg.batch, val_every=cfg.val_every, curriculum=cfg.curriculum,
                        teacher=hd.exponential_schedule(cfg.teacher_decay), penalties=penalties).best_params
        times[f"{setting}_s"] = time.perf_counter() - t1
        for name, te in tests.items():
            w = windows(te, K + H, K, starts=(s0,))
            states = hd.forecast(model, params, jnp.asarray(w["obs"][:, :K]), jnp.asarray(w["x0"]), H)
            rows[name][setting] = score(states, truth[name], cfg.horizons)
            if name in ("rectangular", "complex"):
                preds[(setting, name)] = (states[:, 0], truth[name][:, 0])
    for name, t in truth.items():
        rows[name]["persistence"] = score(np.broadcast_to(t[:1], t.shape), t, cfg.horizons)
    return rows, preds, times


def figure(preds, path: Path) -> str:
    """``v`` and the hidden channel against the truth on the first test sequences."""
    kw = {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}
    panels = [p for (setting, name), (pred, truth) in preds.items()
              for p in ((f"true v ({name})", truth[:, 0], kw), (f"{setting}: pred v", pred[:, 0], kw),
                        ("true h", truth[:, 1], kw),
                        (f"{setting}: hidden ch." + (" (JT)" if setting == "joint" else ""), pred[:, 1], kw))]
    steps = [s for s in (0, 3, 6, 12, 24) if s < len(panels[0][1])]
    return save_image_grid(panels, steps, path, "hidden-ep2d: test sequence 0 (scar: v = h = 0)", "+{} ms")


@register("hidden-ep2d", "Cardiac Mitchell-Schaeffer 2-D with scars, v observed, gate hidden: EP-Net 2.0 OOD scar "
          "shapes, onsets, conductivity (Ayed 2022 thesis sec. 2.7.3)", configs={"quick": QUICK, "full": FULL}, budget=("steps", "val_every"))
def run(cfg: HiddenEP2DConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    outs = [run_seed(kd, km, cfg) for kd, km in zip(seed_keys(seeds, 0), seed_keys(seeds, 1))]
    per_seed, hz, main = [o[0] for o in outs], cfg.horizons, cfg.models[0]
    fig = figure(outs[0][1], out_dir / "hidden_ep2d_rollout.png")

    def mses(test, method=main):
        return [float(np.mean([r[test][method][f"mse_v_{h}ms"] for r in per_seed])) for h in hz]

    rows = []
    for name, _, _, _, refs in TEST_SETS:
        for method in (*cfg.models, "persistence"):
            # a JT hidden channel is defined up to a diffeomorphism (Prop. 2.1): no MSE against h
            values = {k: [r[name][method][k] for r in per_seed] for k in per_seed[0][name][method]
                      if not (method == "joint" and k.startswith("mse_h"))}
            ref = {f"mse_v_{h}ms": e for h, e in zip(THESIS_HORIZONS, refs) if h in hz} if method == "joint" else {}
            rows.append(Row(f"{NAMES.get(method, 'Persistence')} / {name}", values, ref))
    fmt = lambda vals: "/".join(f"{v:.2e}" for v in vals)  # noqa: E731
    rect, tri, circ, comp, multi, s07, s6 = (mses(n) for n, *_ in TEST_SETS)
    pers = mses("rectangular", "persistence")
    pen = float(np.mean([r["rectangular"][main]["scar_abs_v"] for r in per_seed]))
    checks = [band(f"{NAMES[main]}, rectangular scar: MSE of v at {h} ms (Ayed 2022, Table 2.6)", m,
                   TEST_SETS[0][4][THESIS_HORIZONS.index(h)], MSE_TOL, "log10")
              for h, m in zip(hz, rect) if h in THESIS_HORIZONS and main == "joint"]
    checks += [
        Check("OOD scar shapes rank rectangular < triangular ~ circular < complex at every horizon (Table 2.6)",
              all(r < min(t, c) and max(t, c) < x for r, t, c, x in zip(rect, tri, circ, comp)),
              f"MSE of v: rectangular {fmt(rect)}, triangular {fmt(tri)}, circular {fmt(circ)}, complex {fmt(comp)}"),
        Check("in-distribution MSE grows with the horizon (Table 2.6)", all(np.diff(rect) > 0),
              f"rectangular {fmt(rect)}"),
        Check(f"multiple onsets worse than one at {hz[0]} ms (Table 2.7)", multi[0] > rect[0],
              f"{multi[0]:.2e} vs {rect[0]:.2e}"),
        Check("sigma = 0.7 and 6 worse than sigma = 2 at every horizon (Table 2.8)",
              all(a > r and b > r for a, b, r in zip(s07, s6, rect)),
              f"sigma=0.7 {fmt(s07)}, sigma=6 {fmt(s6)}, sigma=2 {fmt(rect)}"),
        Check("the model beats persistence in distribution at every horizon", all(a < b for a, b in zip(rect, pers)),
              f"{fmt(rect)} vs persistence {fmt(pers)}"),
        Check(f"penetration into the scar near zero: mean |v| predicted on the scar <= 0.02 over {hz[-1]} ms",
              pen <= 0.02, f"{pen:.4f}"),
    ]
    times = {k: np.mean([o[2][k] for o in outs]) for k in outs[0][2]}
    notes = (
        f"Data: {cfg.size}x{cfg.size} mm slab, explicit Euler at {cfg.dt} ms, {cfg.n_frames + 1} frames 1 ms apart; "
        f"{cfg.n_train}/{cfg.n_val} training/validation simulations (sigma from {cfg.train_sigma}), {cfg.n_test} per "
        f"test set, test windows from frame {cfg.test_start}. K = {cfg.n_context}, T = {cfg.T} (curriculum "
        f"{cfg.curriculum}), {cfg.steps} Adam steps per model (lr {cfg.lr}, batch {cfg.batch}, ResNet width "
        f"{cfg.width}), scheduled sampling {cfg.teacher_decay}^step, lambda_scar {cfg.lambda_scar}; seeds "
        f"{list(seeds)}. "
        "mse_v_Xms: MSE of v over the first X forecast frames; thesis references (Tables 2.6-2.8) sit beside the JT "
        "model's. The thesis' data come from an LBM solver, 30000 training windows and about 5000 epochs. Wall "
        "seconds per part (mean over seeds): " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)
