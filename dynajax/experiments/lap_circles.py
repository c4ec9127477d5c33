"""``lap-circles`` (thesis §4.6.1 Fig. 4.5, spec E2): concentric circles under a bad initialisation.

Points of ``make_circles`` are transported in the plane (identity encoder) by 9 residual
blocks ``x + v_k(x)`` (``v_k`` = Dense 16 -> batch-statistics norm -> ReLU -> Dense 2) to a
linear head initialised at logits ``(0, x1 + x2)`` (the classes start split by the line
``x1 + x2 = 0``) and learned jointly (``LEARNED_HEAD``; a fixed head trained worse here). Blocks are initialised with Kaiming normal (good) or ``N(0, 5^2)`` (bad,
std 5). Adam lr 0.01, betas (0.9, 0.99), batch 10, as the authors' 2-D script. Arms (paired
seeds): CE only, and LAP (Uzawa on ``CE + C / lambda``, lambda0 = 0.1, tau = 0.1, s = 5)
with the script's penalty ``C = sum_k ||r_k||_F`` (Frobenius norm of the block's residuals
over the minibatch, not squared; ``transport_penalty(..., "norm")``). The reported test
transport is the thesis diagnostic ``sum_k E||r_k||^2``. Batch statistics at test time are those of the
whole test set.
"""

from __future__ import annotations

import functools
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.experiments.lap_digits import (
    make_arm_step,
    scale_kernels,
    summarize,
    train_eval,
)
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.nn.initializers import normal
from dynajax.train import init_state
from dynajax.transport.least_action import ResidualFlow, VelocityMLP, transport_penalty

SIZES = {
    "quick": {"n_train": 300, "n_val": 200, "n_test": 1000, "epochs": 100, "eval_every": 150},
    "full": {"n_train": 200, "n_val": 500, "n_test": 2000, "epochs": 100, "eval_every": 20},
}
K, WIDTH, BATCH, LR, BETAS = 9, 16, 10, 0.01, (0.9, 0.99)
NOISE, FACTOR, BAD_STD = 0.05, 0.5, 5.0
LAP = {"lambda0": 0.1, "tau": 0.1, "s": 5}
SETTINGS = (("Kaiming init", "kaiming", "ResNet"), ("N(0,5) init", "normal", "ResNet"),
            ("N(0,5) init", "normal", "LAP-ResNet"))
# Sensitivity row (not used by the checks): a 10x faster multiplier ascent, since at quick
# scale (3000 steps) lambda grows too slowly with the script's tau = 0.1.
SENSITIVITY = ("N(0,5) init", "normal", "LAP-ResNet tau=1", {"lambda0": 0.1, "tau": 1.0, "s": 5})
REF = {"N(0,5) init ResNet": 98.0, "N(0,5) init LAP-ResNet": 99.7}
TRANSPORT_FACTOR = 10.0
LEARNED_HEAD = True  # linear head initialised at the fixed head, then learned jointly
PENALTY = "norm"  # the authors' 2-D script: sum_k ||r_k||_F over the batch (not squared)


def make_data(n: int, seed: int):
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n, noise=NOISE, factor=FACTOR, random_state=seed)
    return x.astype(np.float32), y.astype(np.int32)


def head(z):
    """Fixed linear head: logits ``(0, x1 + x2)``."""
    return jnp.stack([jnp.zeros(z.shape[:-1]), z[..., 0] + z[..., 1]], -1)


def make_flow(init: str) -> ResidualFlow:
    kinit = nn.initializers.kaiming_normal() if init == "kaiming" else normal(1.0)
    return ResidualFlow(VelocityMLP((WIDTH,), "relu", kinit, batch_norm=True), n_blocks=K, dt=1.0)


def forward(flow, params, x):
    tz, res, states = flow.residuals(params["flow"], x)
    if LEARNED_HEAD:
        return tz @ params["head"]["w"] + params["head"]["b"], res, states
    return head(tz), res, states


def run_setting(init: str, arm: str, seeds: int, cfg, data, lap=None) -> tuple[dict, object]:
    (xtr, ytr), (xva, yva), (xte, yte) = jax.tree_util.tree_map(jnp.asarray, data)
    flow = make_flow(init)
    fwd = functools.partial(forward, flow)
    opt = optax.adam(LR, b1=BETAS[0], b2=BETAS[1])
    step, uz = make_arm_step(arm, fwd, opt, reduction=PENALTY, lap=lap or LAP)
    gain = BAD_STD if init == "normal" else 1.0
    steps_per_epoch = cfg["n_train"] // BATCH
    steps = cfg["epochs"] * steps_per_epoch
    steps -= steps % cfg["eval_every"]

    def evaluate(params):
        lv, _, _ = fwd(params, xva)
        lt, rt, _ = fwd(params, xte)
        return {"val_acc": jnp.mean(jnp.argmax(lv, -1) == yva),
                "test_acc": jnp.mean(jnp.argmax(lt, -1) == yte),
                "test_transport": transport_penalty(rt, "batch_mean")}

    def one(key):
        k1, k2 = jax.random.split(key)
        params = {"flow": scale_kernels(flow.init(k1, jnp.zeros((4, 2))), gain)}
        if LEARNED_HEAD:
            params["head"] = {"w": jnp.array([[0.0, 1.0], [0.0, 1.0]]), "b": jnp.zeros(2)}
        state = init_state(params, opt, k2, uzawa=uz)
        st, ev = train_eval(step, state, {"x": xtr, "y": ytr}, steps=steps, batch=BATCH,
                            eval_every=cfg["eval_every"], eval_fn=evaluate)
        return ev, st.params

    ev, params = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(7), seeds))
    return summarize({k: np.asarray(v, np.float64) for k, v in ev.items()}), (flow, params)


def _figure(trained, xte, yte, out_dir: Path) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(trained), 4, figsize=(13, 3.2 * len(trained)), squeeze=False)
    for i, (name, (flow, params)) in enumerate(trained.items()):
        p = jax.tree_util.tree_map(lambda a: a[0], params)
        _, _, st = flow.residuals(p["flow"], jnp.asarray(xte))
        st = np.asarray(st)
        for j, k in enumerate((0, 1, 5, 9)):
            ax = axes[i, j]
            ax.scatter(st[k, :, 0], st[k, :, 1], c=yte, s=3, cmap="coolwarm")
            lim = np.abs(st[k]).max() * 1.05
            ax.plot([-lim, lim], [lim, -lim], "k:", lw=0.8)
            ax.set_title(f"{name}: after block {k}" if k else f"{name}: input", fontsize=9)
    return save_figure(fig, out_dir / "circles_trajectories.png")


@register("lap-circles", "concentric circles, N(0,5) init: LAP cuts test transport >10x at equal accuracy",
          default_seeds=20)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    cfg = SIZES[scale]
    data = tuple(make_data(cfg[k], s) for k, s in (("n_train", 0), ("n_val", 1), ("n_test", 2)))
    rows, res, trained = [], {}, {}
    settings = [(*s, None) for s in SETTINGS]
    if cfg.get("sensitivity", True):
        settings.append(SENSITIVITY)
    for name, init, arm, lap in settings:
        m, fp = run_setting(init, arm, seeds, cfg, data, lap)
        label = f"{name} {arm}"
        res[label] = m
        trained[label] = fp
        rows.append(Row(label, {k: v.tolist() for k, v in m.items()},
                        {"max_test_acc": REF.get(label), "test_acc": None}))
    van, lap = res["N(0,5) init ResNet"], res["N(0,5) init LAP-ResNet"]
    ratio = float(np.nanmean(van["test_transport"]) / np.nanmean(lap["test_transport"]))
    dacc = float(np.nanmean(lap["test_acc"] - van["test_acc"]))
    se = float(np.nanstd(lap["test_acc"] - van["test_acc"], ddof=1) / np.sqrt(seeds)) if seeds > 1 else float("nan")
    checks = [
        Check(f"N(0,5): LAP cuts test transport by > {TRANSPORT_FACTOR:g}x", ratio > TRANSPORT_FACTOR,
              f"mean test transport {np.nanmean(van['test_transport']):.3g} -> "
              f"{np.nanmean(lap['test_transport']):.3g} (x{ratio:.1f})"),
        Check("N(0,5): LAP does not lose accuracy (paired mean difference >= -1 point)", dacc >= -1.0,
              f"val-selected test acc {np.nanmean(van['test_acc']):.2f} -> {np.nanmean(lap['test_acc']):.2f} "
              f"(paired diff {dacc:+.2f} +/- {se:.2f} s.e.); thesis 98 -> 99.7"),
    ]
    fig = _figure({k: trained[k] for k in ("N(0,5) init ResNet", "N(0,5) init LAP-ResNet")},
                  data[2][0], data[2][1], out_dir)
    notes = (
        "Thesis references (98 -> 99.7) are best test accuracies over training (attached to "
        "max_test_acc). test_acc is selected on a validation set. Energy lower bound for this "
        "head: every point must at least reach its side of x1 + x2 = 0. The head is linear, "
        "initialised at logits (0, x1 + x2) and learned jointly (thesis §4.1: F is learned "
        "with T). The 'LAP-ResNet tau=1' row is a sensitivity run (tau chosen after seeing the "
        "tau = 0.1 result), not used by the checks."
    )
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)
