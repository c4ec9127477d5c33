"""``lap-circles`` (Ayed 2022 thesis, §4.6.1 Fig. 4.5): concentric circles under a bad initialisation.

Points of ``make_circles`` are transported in the plane (identity encoder) by ``n_blocks``
residual blocks ``x + v_k(x)`` (``v_k`` = Dense ``width`` -> batch-statistics norm -> ReLU ->
Dense 2) to a linear head initialised at logits ``(0, x1 + x2)`` (the classes start split by
the line ``x1 + x2 = 0``) and, by default, learned jointly (thesis §4.1: ``F`` is learned with
``T``). Blocks are initialised with Kaiming normal (good) or ``N(0, bad_std^2)`` (bad). Adam,
batch 10, as the authors' 2-D script. Arms (paired seeds): CE only, and LAP (Uzawa on ``CE +
C / lambda``) with the script's penalty ``C = sum_k ||r_k||_F`` (Frobenius norm of the block's
residuals over the minibatch, not squared; ``transport_penalty(..., "norm")``). The reported
test transport is the thesis diagnostic ``sum_k E||r_k||^2``. Batch statistics at test time
are those of the whole test set.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, save_figure
from dynajax.nn.initializers import normal
from dynajax.train import init_state, scan_fit
from dynajax.transport.least_action import (
    REDUCTIONS, ResidualFlow, VelocityMLP, accuracy_evaluator, classifier_step, lap_uzawa,
    scale_kernels, select_by_validation)

# Thesis Fig. 4.5: best test accuracy over training (percent) under the N(0, 5^2) init.
REF = {"N(0,5) init ResNet": 98.0, "N(0,5) init LAP-ResNet": 99.7}
ACC_BAND = 1.0  # accuracy points
TRANSPORT_FACTOR = 10.0  # the claim: LAP cuts the test transport by more than this factor


@dataclasses.dataclass(frozen=True, kw_only=True)
class LapCirclesConfig(ExperimentConfig):
    """Protocol of the circles experiment.

    Attributes:
        n_train, n_val, n_test: points per split (``make_circles``); data_seed: seed of the
            training split (validation ``+1``, test ``+2``); noise, factor: ``make_circles``
            noise std and inner/outer radius ratio.
        epochs, batch, eval_every: training epochs, minibatch size, steps between evaluations.
        lr, betas: Adam step size and betas.
        width, n_blocks: hidden width of a block and number of blocks ``K``.
        bad_std: std of the bad ``N(0, bad_std^2)`` initialisation.
        lap_lambda0, lap_tau, lap_s: LAP Uzawa multiplier start, step and period (steps).
        penalty: transport-penalty reduction of the LAP loss (``transport_penalty``).
        learned_head: learn the linear head (else it stays at logits ``(0, x1 + x2)``).
        kaiming_baseline: also train the Kaiming-init ResNet.
        sensitivity: also train LAP with ``tau = sensitivity_tau`` (a row the checks ignore).
    """

    n_train: int = 200
    n_val: int = 500
    n_test: int = 2000
    data_seed: int = 0
    noise: float = 0.05
    factor: float = 0.5
    epochs: int = 100
    batch: int = 10
    eval_every: int = 20
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    width: int = 16
    n_blocks: int = 9
    bad_std: float = 5.0
    lap_lambda0: float = 0.1
    lap_tau: float = 0.1
    lap_s: int = 5
    penalty: str = "norm"
    learned_head: bool = True
    kaiming_baseline: bool = True
    sensitivity: bool = True
    sensitivity_tau: float = 1.0

    @property
    def steps(self) -> int:
        """Training steps: whole epochs, rounded down to a multiple of ``eval_every``."""
        s = self.epochs * (self.n_train // self.batch)
        return s - s % self.eval_every

    def __post_init__(self):
        if not 1 <= self.batch <= self.n_train or min(self.n_val, self.n_test) < 2:
            raise ValueError(f"need 1 <= batch <= n_train and n_val, n_test >= 2; got batch {self.batch}, "
                             f"sizes {self.n_train}, {self.n_val}, {self.n_test}")
        if not 1 <= self.eval_every <= self.epochs * (self.n_train // self.batch):
            raise ValueError(f"eval_every must be in [1, epochs * (n_train // batch)], got {self.eval_every}")
        if self.penalty not in REDUCTIONS or len(self.betas) != 2 or not 0 < self.factor < 1:
            raise ValueError(f"penalty from {REDUCTIONS}, two betas and 0 < factor < 1; got "
                             f"{self.penalty!r}, {self.betas}, {self.factor}")


QUICK = LapCirclesConfig(seeds=20, n_train=300, n_val=200, n_test=1000, eval_every=150)
# Thesis Fig. 4.5 (Ayed 2022 §4.6.1): 1000 points split 80/20 (800 training points: the LAP
# multiplier grows once every lap_s steps, so it needs the thesis's number of steps per epoch), 20
# seeds, 100 epochs; 200 validation points for the selected-model comparison.
FULL = LapCirclesConfig(seeds=20, n_train=800, n_val=200)
# The showcase: LAP vs plain ResNet transport under the bad init at a tiny budget.
DEMO = LapCirclesConfig(seeds=2, n_train=100, n_val=100, n_test=300, epochs=20, eval_every=50,
                        kaiming_baseline=False, sensitivity=False)


def make_data(n: int, seed: int, cfg: LapCirclesConfig):
    from sklearn.datasets import make_circles

    x, y = make_circles(n_samples=n, noise=cfg.noise, factor=cfg.factor, random_state=seed)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32)


def forward(flow: ResidualFlow, learned_head: bool, params, x):
    """``(logits [n, 2], residuals, states)``; the fixed head gives logits ``(0, x1 + x2)``."""
    tz, res, states = flow.residuals(params["flow"], x)
    if learned_head:
        return tz @ params["head"]["w"] + params["head"]["b"], res, states
    return jnp.stack([jnp.zeros(tz.shape[:-1]), tz[..., 0] + tz[..., 1]], -1), res, states


def run_setting(cfg: LapCirclesConfig, init: str, lap_tau: float | None, seeds, data):
    """Trains one setting for every seed (vmapped); ``lap_tau=None`` is the plain ResNet."""
    (xtr, ytr), val, test = data
    kinit = nn.initializers.kaiming_normal() if init == "kaiming" else normal(1.0)
    flow = ResidualFlow(VelocityMLP((cfg.width,), "relu", kinit, batch_norm=True), n_blocks=cfg.n_blocks, dt=1.0)
    fwd = functools.partial(forward, flow, cfg.learned_head)
    opt = optax.adam(cfg.lr, b1=cfg.betas[0], b2=cfg.betas[1])
    uz = None if lap_tau is None else lap_uzawa(cfg.lap_lambda0, lap_tau, cfg.lap_s)
    step = classifier_step(fwd, opt, uzawa=uz, reduction=cfg.penalty)
    gain = cfg.bad_std if init == "normal" else 1.0

    def one(key):
        k1, k2 = jax.random.split(key)
        params = {"flow": scale_kernels(flow.init(k1, jnp.zeros((4, 2))), gain)}
        if cfg.learned_head:
            params["head"] = {"w": jnp.array([[0.0, 1.0], [0.0, 1.0]]), "b": jnp.zeros(2)}
        st, ev = scan_fit(step, init_state(params, opt, key=k2, uzawa=uz), {"x": xtr, "y": ytr},
                          n_steps=cfg.steps, batch_size=cfg.batch, eval_every=cfg.eval_every,
                          evaluate=accuracy_evaluator(fwd, val, test))
        return ev, st.params

    ev, params = jax.jit(jax.vmap(one))(seed_keys(seeds, 7))
    return select_by_validation({k: np.asarray(v, np.float64) for k, v in ev.items()}), (flow, params)


def figure(trained, xte, yte, path: Path) -> str:
    """Test points after blocks 0, 1, 5 and K of the first seed of each setting."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(trained), 4, figsize=(13, 3.2 * len(trained)), squeeze=False)
    for i, (name, (flow, params)) in enumerate(trained.items()):
        st = np.asarray(flow.residuals(jax.tree_util.tree_map(lambda a: a[0], params)["flow"], xte)[2])
        for j, k in enumerate((0, 1, min(5, flow.n_blocks), flow.n_blocks)):
            ax, lim = axes[i, j], np.abs(st[k]).max() * 1.05
            ax.scatter(st[k, :, 0], st[k, :, 1], c=np.asarray(yte), s=3, cmap="coolwarm")
            ax.plot([-lim, lim], [lim, -lim], "k:", lw=0.8)
            ax.set_title(f"{name}: after block {k}" if k else f"{name}: input", fontsize=9)
    return save_figure(fig, path)


@register("lap-circles", "concentric circles, N(0,5) init: LAP cuts test transport >10x at equal accuracy",
          configs={"demo": DEMO, "quick": QUICK, "full": FULL}, budget=("epochs", "eval_every"))
def run(cfg: LapCirclesConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    data = tuple(make_data(n, cfg.data_seed + i, cfg) for i, n in enumerate((cfg.n_train, cfg.n_val, cfg.n_test)))
    settings = [("Kaiming init", "kaiming", "ResNet", None)] if cfg.kaiming_baseline else []
    settings += [("N(0,5) init", "normal", "ResNet", None), ("N(0,5) init", "normal", "LAP-ResNet", cfg.lap_tau)]
    if cfg.sensitivity:
        settings.append(("N(0,5) init", "normal", f"LAP-ResNet tau={cfg.sensitivity_tau:g}", cfg.sensitivity_tau))
    rows, res, trained = [], {}, {}
    for name, init, arm, tau in settings:
        label = f"{name} {arm}"
        res[label], trained[label] = run_setting(cfg, init, tau, seeds, data)
        rows.append(Row(label, {k: v.tolist() for k, v in res[label].items()},
                        {"max_test_acc": REF.get(label), "test_acc": None}))
    van, lap = res["N(0,5) init ResNet"], res["N(0,5) init LAP-ResNet"]
    t_van, t_lap = np.nanmean(van["test_transport"]), np.nanmean(lap["test_transport"])
    diff = lap["test_acc"] - van["test_acc"]
    se = float(np.nanstd(diff, ddof=1) / np.sqrt(len(seeds))) if len(seeds) > 1 else float("nan")
    checks = [
        Check(f"N(0,5): LAP cuts test transport by > {TRANSPORT_FACTOR:g}x", t_van / t_lap > TRANSPORT_FACTOR,
              f"mean test transport {t_van:.3g} -> {t_lap:.3g} (x{t_van / t_lap:.1f})"),
        Check("N(0,5): LAP does not lose accuracy (paired mean difference >= -1 point)", np.nanmean(diff) >= -1.0,
              f"val-selected test acc {np.nanmean(van['test_acc']):.2f} -> {np.nanmean(lap['test_acc']):.2f} "
              f"(paired diff {np.nanmean(diff):+.2f} +/- {se:.2f} s.e.); thesis 98 -> 99.7"),
        *(band(f"{label}: best test accuracy over training (thesis protocol) vs Fig. 4.5",
               float(np.nanmean(res[label]["max_test_acc"])), ref, ACC_BAND) for label, ref in REF.items()),
    ]
    fig = figure({k: trained[k] for k in REF}, data[2][0], data[2][1], out_dir / "circles_trajectories.png")
    notes = (
        f"make_circles (noise {cfg.noise:g}, factor {cfg.factor:g}): {cfg.n_train} train / {cfg.n_val} val / "
        f"{cfg.n_test} test points; {cfg.epochs} epochs = {cfg.steps} Adam steps (lr {cfg.lr:g}, betas "
        f"{cfg.betas}), batch {cfg.batch}, {len(seeds)} paired seeds; {cfg.n_blocks} blocks of width "
        f"{cfg.width}; bad init N(0, {cfg.bad_std:g}^2); LAP lambda0={cfg.lap_lambda0:g}, tau={cfg.lap_tau:g}, "
        f"s={cfg.lap_s}, penalty '{cfg.penalty}'. Thesis references (98 -> 99.7) are best test "
        "accuracies over training: attached to max_test_acc and band-checked there "
        f"(+/- {ACC_BAND:g} point); test_acc is selected on the validation set. Energy lower bound for "
        "this head: every point must at least reach its side of x1 + x2 = 0. The head is linear, "
        + ("initialised at logits (0, x1 + x2) and learned jointly. " if cfg.learned_head else "fixed. ")
        + (f"The 'LAP-ResNet tau={cfg.sensitivity_tau:g}' row is a sensitivity run of the multiplier "
           "step, not used by the checks." if cfg.sensitivity else "")
    )
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)
