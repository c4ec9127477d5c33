"""``hidden-ns``: Navier-Stokes with a passive density, density observed, velocity hidden (thesis sec. 2.5).

Data: 2-D periodic Navier-Stokes (:mod:`dynajax.systems.navier_stokes`, pseudo-spectral,
``rk4_cn``), ``nu = 1e-3``, ``kappa = 3e-3``, no forcing, 32 x 32; initial vorticity a GRF
with ``tau = 60`` (energy down to smaller eddies, which decorrelate faster per pixel of
displacement) scaled by 90 and a Gaussian density blob of standard deviation 0.25 (8 px; the
velocity moves ``rho`` only where ``grad rho != 0``: at 0.1, the library's default, 23% of the
pixels have ``|grad rho|`` above 10% of its maximum, at 0.25 97%, so the hidden velocity is
observable almost everywhere the cosine is measured); frames every 0.1 time units: about
1.8 px of displacement per frame and a velocity-persistence cosine of 0.51 at 10 frames
(0.65 at 5, 0.20 at 50; measured on 16 sequences), the spec's calibration (sections 5.2-5.3:
1-2 px per frame, persistence cosine at 10 frames ~0.5). The earlier ``tau = 20``, ``x 30``
gave 1.4 px per frame but a persistence cosine of 0.70 at 10 frames: too slow to tell models
apart. State ``X = (rho, u_x, u_y)`` with the
velocity divided by its training RMS; observation ``Y = rho``.

Models (all trained on observations only, Adam with cosine decay, model selection on the
validation loss; the same protocol for every model: steps, learning rate, batch and a horizon
curriculum: 30% of the steps on the first ``T/4`` targets of each window, 30% on ``T/2``,
40% on all ``T``): setting 2 (``X0`` given), setting 1 (jointly trained UNet estimator from 4
frames, scheduled sampling), and the ablations: direct ResNet map, UNet map, ResNet without
skips (all given ``X0``), "Mod. H" (setting 2 observing ``u_x``), and PKnI (``full`` scale only:
a UNet displacement estimator and Gaussian-kernel transport of the last frame). Restructuring: a small
ConvNet from setting-1 states to canonical states, fitted on 10 training sequences.

Metrics on the test split, averaged over steps ``1..h``: ratio-of-squares relative error on
observations (``rel_err``, and eq. 2.6's pointwise form ``rel_err_pw``), per-pixel cosine of
the hidden velocity (``cos``); persistence beside them. Training uses a Python loop over a
jitted step, because XLA:CPU runs convolutions inside :func:`dynajax.train.fit`'s rolled
chunk scan about 9x slower (measured here: 12.4 s against 1.37 s per step); inside a step
:func:`hd.rollout` unrolls its scan automatically (:func:`hd.should_unroll` is True for every
model here) and substeps are a Python loop.

Quick-scale recipe, chosen on the VALIDATION split only (seed 0, 8 validation sequences;
ratio-of-squares error / hidden cosine at the horizons given). First round, blob 0.1, setting
2, 400 steps, horizons 5/10/20 (velocity persistence cosine 0.636 / 0.504 / 0.380):

* previous recipe (ReLU, fixed T = 4, lr 2e-3): 0.414 / 0.536 / 0.723, cos 0.613 / 0.465 / 0.293;
* lr 5e-3: 0.409 / 0.535 / 0.701, cos 0.582 / 0.434 / 0.306 (lr kept at 2e-3);
* output gain 1e-3 (F ~ 0 at the start): 0.418 / 0.571 / 0.830, cos 0.585 / 0.456 / 0.330 (kept 0.1);
* GELU, T = 4: 0.367 / 0.504 / 0.446, cos 0.532 / 0.357 / 0.199;
* ReLU, curriculum to T = 8: 0.338 / 0.461 / 0.526, cos 0.628 / 0.490 / 0.341;
* GELU, curriculum to T = 8 (kept): 0.265 / 0.369 / 0.350, cos 0.643 / 0.496 / 0.338.

Second round, horizons 5/10/50 (velocity persistence cosine 0.636 / 0.504 / 0.207), setting 2:

* GRF density, 400 steps: 0.027 / 0.034 / 0.017, cos 0.683 / 0.562 / 0.159; 1200 steps:
  0.023 / 0.032 / 0.020, cos 0.731 / 0.656 / 0.285;
* blob 0.25, 400 steps: 0.056 / 0.076 / 0.035, cos 0.685 / 0.567 / 0.158; 1000 steps (kept;
  the blob is the thesis' initial density): 0.033 / 0.050 / 0.045, cos 0.822 / 0.759 / 0.327
  (0.034 / 0.055 / 0.046, cos 0.818 / 0.759 / 0.287 through this module's training loop,
  which keeps the best validation checkpoint, and with exact-erf GELU; the probes above used
  the last parameters and the tanh approximation).

Setting 1 at 1000 steps: estimator width 8: 0.080 / 0.092 / 0.040; width 16 (kept): 0.068 /
0.081 / 0.037 (width 8 ran with the tanh GELU, width 16 with the exact one). Restructuring
regressor on the width-8 model's states (velocity cosine at 5 steps; raw -0.039): 3-layer
ConvNet, 200 steps 0.182, 600 steps (kept) 0.298; 5 layers 0.321 at twice the cost; a UNet
0.213 (training-fit cosine 0.945: it overfits the 10 sequences).

A fixed T = 8 is ~2x the step cost of T = 4; the curriculum's early short-horizon steps
cost ~1.25x of T = 4 overall. The same GELU ResNet is used for every ResNet row (the direct
ResNet ablation is "the same network" as F). The ``full`` scale keeps its untuned recipe.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax import train
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.forecast import hidden as hd
from dynajax.forecast.hidden_baselines import (
    PKnI,
    ResNet,
    UNet,
    fit_restructuring,
    pkni_penalty,
)
from dynajax.systems import navier_stokes as ns

SIZES = {
    "quick": {"n_train": 48, "n_val": 8, "n_test": 16, "train_frames": 24, "width": 16, "n_down": 2,
              "n_blocks": 3, "unet_width": 8, "est_width": 16, "T": 8, "substeps": 3, "batch": 8,
              "steps": 1000, "lr": 2e-3, "val_every": 50, "restr_seqs": 10, "restr_steps": 600,
              "teacher_decay": 0.99, "horizon": 50, "activation": "gelu",
              "horizon_curriculum": ((0.25, 0.3), (0.5, 0.3), (1.0, 0.4)),
              "models": ("setting2", "setting1", "resnet", "unet", "noskip", "modh")},
    "full": {"n_train": 300, "n_val": 100, "n_test": 100, "train_frames": 50, "width": 32, "n_down": 2,
             "n_blocks": 3, "unet_width": 16, "est_width": 16, "T": 6, "substeps": 3, "batch": 8,
             "steps": 2000, "lr": 1e-3, "val_every": 100, "restr_seqs": 10, "restr_steps": 500,
             "teacher_decay": 0.999, "horizon": 50,
             "models": ("setting2", "setting1", "resnet", "unet", "noskip", "modh", "pkni")},
}
DATA = {"n": 32, "tau": 60.0, "amp": 90.0, "frame_dt": 0.1, "dt": 5e-3, "nu": 1e-3, "kappa": 3e-3, "blob_width": 0.25}
K = 4
HORIZONS = (5, 10, 50)
NAMES = {
    "setting1": "Ours, Setting 1 (JT)", "setting2": "Ours, Setting 2 (X0 given)",
    "resnet": "ResNet (direct map)", "unet": "UNET (direct map)", "noskip": "ResNet No Skip (direct map)",
    "modh": "Ours (Set. 2, Mod. H: observe u_x)", "pkni": "PKnI",
}
REFS = {  # Tables 2.1-2.3 (rel_err, cos) at T = 5, 10, 50
    "setting2": ((0.118, 0.180, 0.483), (0.798, 0.679, 0.483)),
    "setting1": ((0.152, 0.243, 0.650), (None, None, None)),
    "modh": ((0.191, 0.288, 0.49), (0.732, 0.620, 0.534)),
    "resnet": ((0.288, 0.391, 0.73), (0.604, 0.333, 0.032)),
    "unet": ((0.659, 0.692, 0.84), (0.069, 0.028, 0.023)),
    "noskip": ((0.615, 0.71, 0.897), (0.162, 0.060, -0.04)),
    "pkni": ((0.194, 0.221, 0.752), (0.243, 0.207, 0.098)),
}
PKNI_PENALTY = 1.0  # weight of pkni_penalty in the PKnI loss


@functools.lru_cache(maxsize=8)
def _simulator(n_frames: int, data_items: tuple):
    d = dict(data_items)
    p = {"nu": d["nu"], "kappa": d["kappa"], "forcing": ns.FORCINGS.index("none")}
    return jax.jit(jax.vmap(lambda y: ns.simulate(y, p, n_frames=n_frames, frame_dt=d["frame_dt"],
                                                  dt=d["dt"], scheme="rk4_cn")))


def simulate_states(key, n_sims: int, n_frames: int) -> np.ndarray:
    """``[n_sims, n_frames + 1, 3, n, n]`` float32 states ``(rho, u_x, u_y)`` (unnormalised)."""
    kw, kr = jax.random.split(key)
    with jax.enable_x64(True):
        w = ns.dealias(ns.sample_vorticity(kw, n_sims, size=DATA["n"], tau=DATA["tau"]) * DATA["amp"])
        rho = ns.sample_scalar(kr, n_sims, size=DATA["n"], kind="blob", blob_width=DATA["blob_width"])
        y0 = jnp.stack([w, rho], axis=1)
        sim = _simulator(n_frames, tuple(sorted(DATA.items())))
        ys = np.concatenate([np.asarray(sim(y0[i:i + 16])) for i in range(0, n_sims, 16)])
        u = np.asarray(ns.velocity_from_vorticity(ys[:, :, 0]))
    return np.concatenate([ys[:, :, 1:2], u], axis=2).astype(np.float32)


def _windows(states, obs_ch, length):
    """All windows ``(obs [K + T], x0 = state at frame K - 1)`` of each sequence."""
    n_sims, n_t = states.shape[:2]
    starts = range(n_t - length + 1)
    obs = np.stack([states[i, s:s + length, obs_ch:obs_ch + 1] for i in range(n_sims) for s in starts])
    x0 = np.stack([states[i, s + K - 1] for i in range(n_sims) for s in starts])
    return {"obs": obs, "x0": x0}


def build_model(kind: str, cfg: dict) -> hd.HiddenModel:
    """The model of one row (``kind`` in :data:`NAMES`)."""
    obs = hd.ChannelProjection([1 if kind == "modh" else 0], 3)
    res = {"width": cfg["width"], "n_down": cfg["n_down"], "n_blocks": cfg["n_blocks"],
           "activation": cfg.get("activation", "relu")}
    common = {"n_context": K, "substeps": cfg["substeps"]}
    if kind in ("setting2", "modh"):
        return hd.HiddenModel(ResNet(3, **res), obs, setting="canonical", **common)
    if kind == "setting1":
        est = UNet(3, width=cfg["est_width"], depth=3, out_gain=0.1)
        return hd.HiddenModel(ResNet(3, **res), obs, estimator=est, setting="joint", **common)
    net = {"resnet": ResNet(3, out_gain=1.0, **res), "noskip": ResNet(3, skip=False, out_gain=1.0, **res),
           "unet": UNet(3, width=cfg["unet_width"], depth=3)}[kind]
    return hd.HiddenModel(net, obs, setting="canonical", method="direct", **common)


def curriculum_stages(T: int, steps: int, curriculum=((1.0, 1.0),)) -> list[tuple[int, int]]:
    """``[(horizon, n_steps), ...]``: ``curriculum`` holds ``(fraction of T, fraction of the
    steps)`` pairs, horizons ``max(1, round(f * T))``; the last stage takes the rounding rest."""
    fr = [float(f) for _, f in curriculum]
    hs = [max(1, round(float(h) * T)) for h, _ in curriculum]
    if not hs or min(fr) <= 0 or not np.isclose(sum(fr), 1.0) or max(hs) > T or hs[-1] != T:
        raise ValueError(f"curriculum must be (horizon fraction <= 1, step fraction > 0) pairs, step fractions "
                         f"summing to 1 and the last horizon = T; got {curriculum!r}")
    n = [round(f * steps) for f in fr[:-1]]
    return [(h, k) for h, k in zip(hs, [*n, steps - sum(n)]) if k > 0]


def train_model(model, key, train_w, val_w, cfg, teacher=None, penalties=()):
    """Adam + cosine decay, a Python loop over a jitted step; best validation parameters
    (validation on the fit term only, over the full horizon ``T``; ``penalties`` as in
    :func:`hd.make_loss`). ``cfg["horizon_curriculum"]`` (optional, default: the full horizon
    throughout) trains on the first ``h`` targets of each window for a part of the steps
    (:func:`curriculum_stages`); one compiled step per horizon."""
    k_init, k_state, k_data = jax.random.split(key, 3)
    params = jax.jit(model.init)(k_init, jnp.asarray(train_w["obs"][0, :K]))  # one compile, not one per layer
    opt = optax.adam(optax.cosine_decay_schedule(cfg["lr"], cfg["steps"]))
    state = train.init_state(params, opt, k_state)
    step = jax.jit(hd.make_train_step(model, opt, teacher=teacher, penalties=penalties))
    data = jax.tree_util.tree_map(jnp.asarray, train_w)
    T = data["obs"].shape[1] - K
    stages = curriculum_stages(T, cfg["steps"], cfg.get("horizon_curriculum", ((1.0, 1.0),)))

    @functools.partial(jax.jit, static_argnums=1)
    def sample(k, h):
        b = train.sample_minibatch(data, k, cfg["batch"])
        return dict(b, obs=b["obs"][:, :K + h])

    loss = hd.make_loss(model)
    val = jax.tree_util.tree_map(jnp.asarray, val_w)
    val_fn = jax.jit(lambda p: loss(p, val, jax.random.key(0))[1]["fit"])
    best, best_params = np.inf, params
    horizons = np.repeat([h for h, _ in stages], [n for _, n in stages])
    for i in range(cfg["steps"]):
        state, _ = step(state, sample(jax.random.fold_in(k_data, i), int(horizons[i])))
        if (i + 1) % cfg["val_every"] == 0 or i + 1 == cfg["steps"]:
            v = float(val_fn(state.params))
            if v < best:
                best, best_params = v, state.params
    return best_params


def train_pkni(key, train_w, val_w, cfg):
    """PKnI on the same windows: Adam + cosine decay, best validation parameters."""
    net = PKnI(width=cfg["unet_width"], depth=3)
    T = train_w["obs"].shape[1] - K

    def loss(p, batch):
        frames = batch["obs"][:, :, 0]
        pred, w = net.apply(p, frames[:, :K], T)
        fit = jnp.mean(jnp.sum((pred - jnp.moveaxis(frames[:, K:], 1, 0)) ** 2, axis=(-2, -1)))
        return fit + PKNI_PENALTY * pkni_penalty(w), fit

    k_init, k_data = jax.random.split(key)
    params = jax.jit(net.init, static_argnums=2)(k_init, jnp.asarray(train_w["obs"][:1, :K, 0]), 1)
    opt = optax.adam(optax.cosine_decay_schedule(cfg["lr"], cfg["steps"]))
    opt_state = opt.init(params)
    data = jax.tree_util.tree_map(jnp.asarray, train_w)
    val = jax.tree_util.tree_map(jnp.asarray, val_w)

    @jax.jit
    def step(p, s, k):
        g = jax.grad(lambda q: loss(q, train.sample_minibatch(data, k, cfg["batch"]))[0])(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    val_fn = jax.jit(lambda p: loss(p, val)[1])
    best, best_params = np.inf, params
    for i in range(cfg["steps"]):
        params, opt_state = step(params, opt_state, jax.random.fold_in(k_data, i))
        if (i + 1) % cfg["val_every"] == 0 or i + 1 == cfg["steps"]:
            v = float(val_fn(params))
            if v < best:
                best, best_params = v, params
    one = jax.jit(lambda p, f: net.apply(p, f, 1))

    def forecast(context, n_steps):  # context [B, K, H, W] -> rho [n+1, B, 1, H, W], w [n+1, B, 2, H, W]
        frames, preds, ws = context, [context[:, -1]], [jnp.zeros((context.shape[0], 2, *context.shape[-2:]))]
        for _ in range(n_steps):
            pr, w = one(best_params, frames)
            frames = jnp.concatenate([frames[:, 1:], pr[0][:, None]], axis=1)
            preds.append(pr[0])
            ws.append(w[0])
        return np.asarray(jnp.stack(preds))[:, :, None], np.asarray(jnp.stack(ws))

    return forecast


def predict(model, params, context, x0, n_steps):
    """``[n_steps + 1, B, 3, n, n]``: a Python loop over a jitted interval (compiled once)."""
    x = jax.jit(model.initial_state)(params, context, x0)
    adv = jax.jit(model.advance)
    out = [x]
    for _ in range(n_steps):
        x = adv(params, x)
        out.append(x)
    return np.asarray(jnp.stack(out))


def _scores(pred_obs, true_obs, u_pred, u_true):
    row = {}
    err = hd.relative_error(jnp.asarray(pred_obs), jnp.asarray(true_obs))
    pw = hd.relative_error(jnp.asarray(pred_obs), jnp.asarray(true_obs), form="pointwise", eps=1e-2)
    for h, v in hd.horizon_means(err.T, HORIZONS).items():
        row[f"rel_err_h{h}"] = v
    for h, v in hd.horizon_means(pw.T, HORIZONS).items():
        row[f"rel_err_pw_h{h}"] = v
    if u_pred is not None:
        cos = hd.velocity_cosine(jnp.asarray(u_pred), jnp.asarray(u_true))
        for h, v in hd.horizon_means(cos.T, HORIZONS).items():
            row[f"cos_h{h}"] = v
    return row


def run_seed(seed: int, cfg: dict):
    """Data, the models of ``cfg["models"]``, restructuring and persistence for one seed."""
    t0 = time.perf_counter()
    H = cfg["horizon"]
    key = jax.random.key(seed)
    k_tr, k_va, k_te, k_models = jax.random.split(key, 4)
    tr = simulate_states(k_tr, cfg["n_train"], cfg["train_frames"])
    va = simulate_states(k_va, cfg["n_val"], K - 1 + cfg["T"])
    te = simulate_states(k_te, cfg["n_test"], K - 1 + H)
    u_scale = float(np.sqrt(np.mean(tr[:, :, 1:] ** 2)))
    for s in (tr, va, te):
        s[:, :, 1:] /= u_scale
    timings = {"data_s": time.perf_counter() - t0}
    true_u = np.moveaxis(te[:, K - 1:, 1:], 1, 0)  # [H + 1, B, 2, n, n]
    rows, preds = {}, {}
    for i, kind in enumerate(cfg["models"]):
        t1 = time.perf_counter()
        ch = 1 if kind == "modh" else 0
        if kind == "pkni":
            forecast = train_pkni(jax.random.fold_in(k_models, i), _windows(tr, 0, K + cfg["T"]),
                                  _windows(va, 0, K + cfg["T"]), cfg)
            pred_rho, w = forecast(jnp.asarray(te[:, :K, 0]), H)
            # w_i moved frame i-1 to frame i: score it against the velocity at frame i-1
            u_ref = np.concatenate([true_u[:1], true_u[:-1]])
            rows[kind] = _scores(pred_rho, np.moveaxis(te[:, K - 1:, :1], 1, 0), w, u_ref)
            timings[f"{kind}_s"] = time.perf_counter() - t1
            continue
        model = build_model(kind, cfg)
        teacher = hd.exponential_schedule(cfg["teacher_decay"]) if kind == "setting1" else None
        params = train_model(model, jax.random.fold_in(k_models, i), _windows(tr, ch, K + cfg["T"]),
                             _windows(va, ch, K + cfg["T"]), cfg, teacher)
        states = predict(model, params, jnp.asarray(te[:, :K, ch:ch + 1]), jnp.asarray(te[:, K - 1]), H)
        true_obs = np.moveaxis(te[:, K - 1:, ch:ch + 1], 1, 0)
        rows[kind] = _scores(states[:, :, ch:ch + 1], true_obs, states[:, :, 1:], true_u)
        preds[kind] = states
        if kind == "setting1":  # restructuring on `restr_seqs` training sequences
            m = cfg["restr_seqs"]
            n_t = tr.shape[1] - K
            jt = predict(model, params, jnp.asarray(tr[:m, :K, :1]), None, n_t)  # [n_t + 1, m, 3, ...]
            target = np.moveaxis(tr[:m, K - 1:], 1, 0)
            reg = fit_restructuring(jax.random.fold_in(k_models, 99), jnp.asarray(jt.reshape(-1, *jt.shape[2:])),
                                    jnp.asarray(target.reshape(-1, *target.shape[2:])), n_steps=cfg["restr_steps"])
            restr = np.asarray(jax.jit(reg)(jnp.asarray(states)))
            rows["restructured"] = _scores(states[:, :, :1], true_obs, restr[:, :, 1:], true_u)
        timings[f"{kind}_s"] = time.perf_counter() - t1
    pers = np.broadcast_to(te[None, :, K - 1], (H + 1, *te[:, K - 1].shape))
    for ch, name in ((0, "persistence"), (1, "persistence_ux")):
        rows[name] = _scores(pers[:, :, ch:ch + 1], np.moveaxis(te[:, K - 1:, ch:ch + 1], 1, 0),
                             pers[:, :, 1:] if ch == 0 else None, true_u)
    return rows, preds, te, timings


def _figure(preds, te, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = "setting2" if "setting2" in preds else next(iter(preds))
    steps = [s for s in (0, 5, 10, 25, 50) if s < preds[kind].shape[0]]
    truth = te[0, K - 1:]
    pred = preds[kind][:, 0]
    fig, axes = plt.subplots(4, len(steps), figsize=(2.2 * len(steps), 8.4), squeeze=False)
    for j, s in enumerate(steps):
        for r, (img, title) in enumerate([(truth[s, 0], "true rho"), (pred[s, 0], "pred rho"),
                                          (truth[s, 1], "true u_x (hidden)"), (pred[s, 1], "pred u_x")]):
            ax = axes[r, j]
            ref = truth[:, 0] if r < 2 else truth[:, 1]  # shared colour limits: the truth's
            ax.imshow(img, cmap="viridis" if r < 2 else "RdBu_r", vmin=float(ref.min()), vmax=float(ref.max()))
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{title}, t={s}", fontsize=8)
    fig.suptitle(f"hidden-ns: {NAMES[kind]}, test sequence 0")
    fig.tight_layout()
    return save_figure(fig, out_dir / "hidden_ns_rollout.png")


@register("hidden-ns", "Partially observed Navier-Stokes (density observed, velocity hidden): settings 1-2, ablations, restructuring (thesis ch. 2)",
          default_seeds=1,
          quick_suite=False)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    cfg = SIZES[scale]
    per_seed, timings = [], []
    for s in range(seeds):
        rows, preds, te, tm = run_seed(s, cfg)
        per_seed.append(rows)
        timings.append(tm)
        if s == 0:
            fig = _figure(preds, te, out_dir)

    def collect(name):
        return {k: [r[name][k] for r in per_seed] for k in per_seed[0][name]}

    def mean(name, metric):
        return float(np.mean([r[name][metric] for r in per_seed]))

    result_rows = []
    for kind in cfg["models"]:
        err_ref, cos_ref = REFS[kind]
        ref = {f"rel_err_h{h}": e for h, e in zip(HORIZONS, err_ref)}
        ref.update({f"cos_h{h}": c for h, c in zip(HORIZONS, cos_ref)})
        result_rows.append(Row(NAMES[kind], collect(kind), ref))
        if kind == "setting1":
            result_rows.append(Row("Ours, Setting 1 restructured (10 sequences)", collect("restructured"),
                                   {"cos_h5": 0.582}))
    result_rows.append(Row("Persistence (rho; velocity frozen)", collect("persistence"), {}))
    result_rows.append(Row("Persistence (u_x)", collect("persistence_ux"), {}))

    checks = []
    have = set(cfg["models"])
    if {"setting2", "setting1", "resnet", "unet", "noskip"} <= have:
        detail, ok = [], True
        for h in HORIZONS:
            e = {k: mean(k, f"rel_err_h{h}") for k in ("setting2", "setting1", "resnet", "unet", "noskip")}
            ok &= e["setting2"] < e["setting1"] < e["resnet"] < min(e["unet"], e["noskip"])
            detail.append(f"h={h}: " + ", ".join(f"{k} {v:.3f}" for k, v in e.items()))
        checks.append(Check("rel. error ranks setting 2 < setting 1 < ResNet < UNet/no-skip at every horizon",
                            ok, "; ".join(detail)))
    if "setting2" in have:
        e = [(h, mean("setting2", f"rel_err_h{h}"), mean("persistence", f"rel_err_h{h}")) for h in HORIZONS[1:]]
        checks.append(Check("setting 2 beats persistence on observations at 10-50 steps",
                            all(a < b for _, a, b in e),
                            "; ".join(f"h={h}: {a:.3f} vs persistence {b:.3f}" for h, a, b in e)))
        c5, c50 = mean("setting2", f"cos_h{HORIZONS[0]}"), mean("setting2", f"cos_h{HORIZONS[-1]}")
        p = {h: mean("persistence", f"cos_h{h}") for h in HORIZONS}
        c = {h: mean("setting2", f"cos_h{h}") for h in HORIZONS}
        checks.append(Check("setting 2 hidden cosine >= 0.6 at 5 steps and >= 0.35 at 50 (thesis 0.798 / 0.483)",
                            c5 >= 0.6 and c50 >= 0.35, f"measured {c5:.3f} / {c50:.3f}"))
        checks.append(Check("setting 2 hidden cosine above velocity persistence at every horizon",
                            all(c[h] > p[h] for h in HORIZONS),
                            "; ".join(f"h={h}: {c[h]:.3f} vs {p[h]:.3f}" for h in HORIZONS)))
        p10 = mean("persistence", f"cos_h{HORIZONS[1]}")
        checks.append(Check("data calibration: velocity-persistence cosine at 10 steps <= 0.6 (spec: ~0.5)",
                            p10 <= 0.6, f"measured {p10:.3f}"))
    if "setting1" in have:
        raw, restr = mean("setting1", f"cos_h{HORIZONS[0]}"), mean("restructured", f"cos_h{HORIZONS[0]}")
        checks.append(Check("raw setting-1 cosine < 0.3 and restructuring lifts it by >= 0.2 (thesis 0.192 -> 0.582)",
                            raw < 0.3 and restr - raw >= 0.2, f"raw {raw:.3f} -> restructured {restr:.3f}"))
    if {"setting2", "pkni"} <= have:
        e = [(h, mean("setting2", f"rel_err_h{h}"), mean("pkni", f"rel_err_h{h}"),
              mean("setting2", f"cos_h{h}"), mean("pkni", f"cos_h{h}")) for h in HORIZONS]
        checks.append(Check("setting 2 beats PKnI on error and hidden cosine at every horizon (Tables 2.1-2.2)",
                            all(a < b and c > d for _, a, b, c, d in e),
                            "; ".join(f"h={h}: err {a:.3f} vs {b:.3f}, cos {c:.3f} vs {d:.3f}" for h, a, b, c, d in e)))
    if {"setting2", "modh"} <= have:
        r = mean("modh", f"rel_err_h{HORIZONS[0]}") / mean("setting2", f"rel_err_h{HORIZONS[0]}")
        checks.append(Check("Mod. H degrades the error at 5 steps by < 1.7x (thesis 0.118 -> 0.191)",
                            r < 1.7, f"ratio {r:.2f}"))
    tm = {k: float(np.mean([t[k] for t in timings])) for k in timings[0]}
    why = {  # the reasons diagnosed in the quick runs (see the module docstring), for failed checks
        "rel. error ranks": "every direct map is given the true X0 (velocity included), as in the thesis' setting-2 "
        "ablations, and a one-frame map on 32 x 32 is easy to learn, while setting 1 must infer the velocity from 4 "
        "frames of rho; at 50 steps (about 90 px of displacement on the 32 px torus) the direct maps have smoothed "
        "rho towards a blurred field near its mean, which scores better than a sharp misplaced one, and the jointly "
        "trained model can diverge (beyond 6x its training horizon)",
        "setting 2 hidden cosine >=": "the velocity channels are constrained only through their effect on rho; "
        "keeping the turbulent velocity on track for 50 frames needs more than the quick budget (1000 steps on 48 "
        "sequences): the cosine rises with steps (module docstring)",
        "setting 2 hidden cosine above": "no learned velocity dynamics beyond persistence at this budget",
        "raw setting-1 cosine": "the jointly trained hidden channels carry little velocity information a per-frame "
        "ConvNet regressor can recover from 10 sequences",
    }
    failed = [f"{c.name}: {r}" for c in checks if not c.passed for k, r in why.items() if c.name.startswith(k)]
    notes = (
        f"Data {DATA}; K = {K} context frames; config { {k: v for k, v in cfg.items() if k != 'models'} }. "
        + ("Quick recipe (density blob of std 0.25, GELU ResNet, horizon curriculum T/4 -> T/2 -> T = 8, lr 2e-3, "
           "1000 steps for every model, estimator width 16, restructuring 600 steps) chosen on the validation "
           "split of seed 0 (the module docstring lists the probes); never on test. "
           if scale == "quick" else "")
        + "Errors are ratio-of-squares relative errors on the observed channel (rho; u_x for Mod. H), "
        "averaged over steps 1..h; rel_err_pw is eq. 2.6 with eps = 1e-2; cos is eq. 2.7 on the "
        "(normalised) velocity channels. Thesis numbers come from 64x64, Re ~ 1e4 data and a different "
        "generator: compare orderings, not values. Wall seconds per part (mean over seeds): "
        + ", ".join(f"{k} {v:.0f}" for k, v in tm.items())
        + ("" if not failed or scale != "quick" else ". Why the failed checks fail (quick scale): " + "; ".join(failed))
    )
    return Result(rows=result_rows, checks=checks, figures=[fig], notes=notes)
