"""``lap-digits`` (thesis §4.6.2 Fig. 4.4 and §4.9.1 Table 4.1; spec E3 + E4) on 8x8 digits.

scikit-learn's digits (1797 images, shipped with the package) stand in for MNIST: a fixed
797-image test set, a fixed 200-image validation split, training subsets of ``n`` images
drawn per seed from the remaining 800. Network ``F o T o phi``: linear encoder 64 -> 32,
``T`` = 9 residual blocks ``x + v_k(x)`` (``v_k`` = Dense 32 -> ReLU -> Dense, ``dt = 1``),
head Dense 32 -> ReLU -> Dense 10. SGD (momentum 0.9, weight decay 1e-4, lr 0.01, batch
``min(128, n)``), gradients clipped to global norm ``CLIP`` so large gains do not diverge.

Arms (paired: the same subset, initialisation and minibatches per seed): ``ResNet`` (CE),
``LAP-ResNet`` (Uzawa, thesis MNIST values lambda0 = 5, tau = 1, s = 5, with the released
code's per-element-mean penalty), ``Reg. lam=0.05`` and ``Reg. lam=0.2`` (CE + lam * the
same penalty). Accuracy is reported three ways: ``test_acc`` (the model picked on the
validation split: our headline), ``max_test_acc`` (the thesis protocol: best test accuracy
over training, test-selected) and ``final_test_acc``.

* E3 (Fig. 4.4 analogue): vanilla ResNets over orthogonal / normal initialisations x gains,
  scatter of test transport vs test accuracy and its least-squares slope.
* E4 (Table 4.1 analogue): every arm at ``n`` in 50..500, at the thesis gain 0.01 and at a
  "bad" gain 1.0, with 95% t-intervals over seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.nn.initializers import normal, orthogonal
from dynajax.train import init_state, make_step, sample_minibatch
from dynajax.transport.least_action import (
    ResidualFlow,
    VelocityMLP,
    lap_uzawa,
    regularized_loss,
    transport_penalty,
)

SIZES = {
    "quick": {"steps": 300, "eval_every": 15, "sizes": (50, 100, 500),
              "e3_gains": (0.01, 0.1, 0.5, 1.0, 2.0), "e3_n": 100, "e3_seeds": 3,
              "arms": ("ResNet", "LAP-ResNet")},
    "full": {"steps": 600, "eval_every": 10, "sizes": (50, 100, 200, 300, 400, 500),
             "e3_gains": (0.01, 0.1, 0.5, 1.0, 2.0), "e3_n": 100, "e3_seeds": 10,
             "arms": ("ResNet", "LAP-ResNet", "Reg. lam=0.05", "Reg. lam=0.2")},
}
N_TEST, N_VAL, D, K, N_CLASSES = 797, 200, 32, 9, 10
LR, MOMENTUM, WD, MAX_BATCH, CLIP = 0.01, 0.9, 1e-4, 128, 5.0
LAP = {"lambda0": 5.0, "tau": 1.0, "s": 5}
REDUCTION = "mean"  # released code: per block, mean over batch x features (1/d of the thesis sum)
ARMS = ("ResNet", "LAP-ResNet", "Reg. lam=0.05", "Reg. lam=0.2")
GAINS_E4 = (0.01, 1.0)
TABLE_4_1 = {500: (90.8, 90.9), 400: (88.4, 88.4), 300: (83.5, 86.2), 200: (74.9, 82.0),
             100: (56.4, 70.0)}


def load_splits(seed: int = 0):
    """``(pool_x [1000, 64], pool_y, val_x [200, 64], val_y, test_x [797, 64], test_y)``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(x))
    test, val, pool = perm[:N_TEST], perm[N_TEST:N_TEST + N_VAL], perm[N_TEST + N_VAL:]
    return x[pool], y[pool], x[val], y[val], x[test], y[test]


class Classifier(nn.Module):
    """Encoder ``phi`` (Dense to ``d``) and head ``F`` (MLP); ``T`` is a :class:`ResidualFlow`."""

    d: int = D
    n_classes: int = N_CLASSES

    def setup(self):
        self.enc = nn.Dense(self.d)
        self.h1 = nn.Dense(self.d)
        self.h2 = nn.Dense(self.n_classes)

    def encode(self, x):
        return self.enc(x)

    def head(self, z):
        return self.h2(nn.relu(self.h1(z)))

    def __call__(self, x):
        return self.head(self.encode(x))


def make_model(init: str = "orthogonal", d: int = D, hidden: int = D, activation="relu",
               batch_norm: bool = False, n_classes: int = N_CLASSES):
    """``(Classifier, ResidualFlow)`` with block kernels from ``init`` at gain 1 (scale later)."""
    kinit = {"orthogonal": orthogonal(1.0), "normal": normal(1.0),
             "kaiming": nn.initializers.kaiming_normal()}[init]
    flow = ResidualFlow(VelocityMLP((hidden,), activation, kinit, batch_norm), n_blocks=K, dt=1.0)
    return Classifier(d, n_classes), flow


def scale_kernels(params, gain):
    """Multiplies every kernel by ``gain`` (``orthogonal(g) = g orthogonal(1)``, same for normal)."""
    return jax.tree_util.tree_map_with_path(
        lambda p, a: a * gain if "kernel" in jax.tree_util.keystr(p) else a, params
    )


def forward(net: Classifier, flow: ResidualFlow, params, x):
    """``(logits, residuals [K, n, d], states [K + 1, n, d])``."""
    z = net.apply({"params": params["net"]}, x, method=Classifier.encode)
    tz, res, states = flow.residuals(params["flow"], z)
    return net.apply({"params": params["net"]}, tz, method=Classifier.head), res, states


def cross_entropy(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def make_arm_step(arm: str, fwd: Callable, opt, reduction: str = REDUCTION, lap=LAP):
    """The training step of one arm (``fwd(params, x) -> (logits, residuals, states)``)."""
    if arm == "ResNet" or arm.startswith("Reg."):
        lam = 0.0 if arm == "ResNet" else float(arm.split("=")[1])

        def loss_fn(params, batch, key):
            logits, res, _ = fwd(params, batch["x"])
            ce = cross_entropy(logits, batch["y"])
            pen = transport_penalty(res, reduction)
            return regularized_loss(ce, pen, lam), {"ce": ce, "transport": pen}

        return make_step(loss_fn, opt), None
    if arm.startswith("LAP"):
        uz = lap_uzawa(lap["lambda0"], lap["tau"], lap["s"])

        def loss_uz(params, batch, key):
            logits, res, _ = fwd(params, batch["x"])
            ce = cross_entropy(logits, batch["y"])
            pen = transport_penalty(res, reduction)
            return (pen, ce), {"ce": ce, "transport": pen}

        return make_step(loss_uz, opt, uzawa=uz), uz
    raise ValueError(f"unknown arm {arm!r}; allowed: {ARMS}")


def train_eval(step, state, data, *, steps: int, batch: int, eval_every: int, eval_fn):
    """``steps`` minibatch steps; ``eval_fn(params)`` (a dict of scalars) every ``eval_every``.

    Returns ``(final_state, evals)`` with ``evals[k]`` of shape ``[steps // eval_every]``.
    """

    def inner(st, _):
        b = sample_minibatch(data, jax.random.fold_in(st.key, st.step), batch)
        return step(st, b)[0], None

    def chunk(st, _):
        st = jax.lax.scan(inner, st, None, length=eval_every)[0]
        return st, eval_fn(st.params)

    return jax.lax.scan(chunk, state, None, length=steps // eval_every)


def summarize(evals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-seed accuracies from ``evals`` ``[seeds, n_evals]``: validation-selected, max, final."""
    val = np.nan_to_num(evals["val_acc"], nan=-1.0)
    best = np.argmax(val, axis=1)
    rows = np.arange(val.shape[0])
    out = {
        "test_acc": 100 * evals["test_acc"][rows, best],
        "max_test_acc": 100 * np.nanmax(evals["test_acc"], axis=1),
        "final_test_acc": 100 * evals["test_acc"][:, -1],
        "test_transport": evals["test_transport"][rows, best],
    }
    return out


def run_arm(arm: str, n: int, gains, seeds: int, *, steps: int, eval_every: int,
            init: str = "orthogonal", splits=None) -> dict[str, np.ndarray]:
    """Trains ``arm`` on ``n`` images for every (gain, seed), vmapped; per-run metrics."""
    pool_x, pool_y, val_x, val_y, test_x, test_y = splits or load_splits()
    net, flow = make_model(init)
    fwd = functools.partial(forward, net, flow)
    opt = optax.chain(optax.clip_by_global_norm(CLIP), optax.add_decayed_weights(WD),
                      optax.sgd(LR, momentum=MOMENTUM))
    step, uz = make_arm_step(arm, fwd, opt)
    batch = min(MAX_BATCH, n)
    x0 = jnp.zeros((2, 64))

    def evaluate(params):
        logits_v, _, _ = fwd(params, val_x)
        logits_t, res_t, _ = fwd(params, test_x)
        return {"val_acc": jnp.mean(jnp.argmax(logits_v, -1) == val_y),
                "test_acc": jnp.mean(jnp.argmax(logits_t, -1) == test_y),
                # thesis diagnostic C(v) = sum_k ||r_k||^2, averaged over the test set
                "test_transport": transport_penalty(res_t, "batch_mean")}

    def one(seed_key, gain):
        k_data, k_net, k_flow, k_state = jax.random.split(seed_key, 4)
        idx = jax.random.permutation(k_data, pool_x.shape[0])[:n]
        data = {"x": jnp.asarray(pool_x)[idx], "y": jnp.asarray(pool_y)[idx]}
        params = {"net": net.init(k_net, x0)["params"],
                  "flow": scale_kernels(flow.init(k_flow, jnp.zeros((2, D))), gain)}
        state = init_state(params, opt, k_state, uzawa=uz)
        _, ev = train_eval(step, state, data, steps=steps, batch=batch,
                           eval_every=eval_every, eval_fn=evaluate)
        return ev

    seed_keys = jax.random.split(jax.random.key(2024), seeds)
    keys = jnp.tile(seed_keys, (len(gains),))
    g = jnp.repeat(jnp.asarray(gains, jnp.float32), seeds)
    ev = jax.jit(jax.vmap(one))(keys, g)
    return summarize({k: np.asarray(v, np.float64) for k, v in ev.items()})


def t_interval(v) -> tuple[float, float]:
    v = np.asarray(v, np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return (float("nan"), float("nan"))
    lo, hi = stats.t.interval(0.95, v.size - 1, loc=v.mean(), scale=stats.sem(v))
    return float(lo), float(hi)


def _e3(cfg, splits, out_dir: Path):
    gains = cfg["e3_gains"]
    pts = []
    for init in cfg.get("e3_inits", ("orthogonal", "normal")):
        m = run_arm("ResNet", cfg["e3_n"], gains, cfg["e3_seeds"], steps=cfg["steps"],
                    eval_every=cfg["eval_every"], init=init, splits=splits)
        for j, gain in enumerate(gains):
            sl = slice(j * cfg["e3_seeds"], (j + 1) * cfg["e3_seeds"])
            for a, t in zip(m["test_acc"][sl], m["test_transport"][sl]):
                pts.append((init, gain, a, t))
    ok = [(i, g, a, t) for i, g, a, t in pts if np.isfinite(a) and np.isfinite(t) and t > 0]
    acc = np.array([p[2] for p in ok])
    logt = np.log10([p[3] for p in ok])
    reg = stats.linregress(logt, acc)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for init, mk in (("orthogonal", "o"), ("normal", "s")):
        sel = [k for k, p in enumerate(ok) if p[0] == init]
        sc = ax.scatter(logt[sel], acc[sel], c=np.log10([ok[k][1] for k in sel]), marker=mk,
                        cmap="viridis", vmin=-2, vmax=0.4, label=init)
    xs = np.linspace(logt.min(), logt.max(), 10)
    ax.plot(xs, reg.intercept + reg.slope * xs, "k--", label=f"slope {reg.slope:.2f}")
    ax.set_xlabel("log10 test transport  sum_k E||r_k||^2")
    ax.set_ylabel("test accuracy (%)")
    fig.colorbar(sc, label="log10 gain")
    ax.legend(fontsize=8)
    fig_name = save_figure(fig, out_dir / "transport_accuracy.png")
    n_bad = len(pts) - len(ok)
    return reg, len(ok), n_bad, fig_name


@register("lap-digits", "LAP on sklearn digits: transport-accuracy regression, Table 4.1 analogue",
          default_seeds=10)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    cfg = SIZES[scale]
    splits = load_splits()
    rows, checks, figures = [], [], []

    reg, n_ok, n_bad, fig = _e3(cfg, splits, out_dir)
    figures.append(fig)
    checks.append(Check(
        "E3: test transport vs test accuracy has a significantly negative slope",
        bool(reg.slope < 0 and reg.pvalue < 0.05),
        f"slope {reg.slope:.2f} acc-points per decade, p = {reg.pvalue:.2g}, r = {reg.rvalue:.2f}, "
        f"{n_ok} runs ({n_bad} diverged and excluded)"))
    rows.append(Row("E3 regression acc ~ log10 transport", {
        "slope": [reg.slope], "p_value": [reg.pvalue], "r": [reg.rvalue]}, {"slope": None}))

    res: dict[tuple, dict[str, np.ndarray]] = {}
    for n in cfg["sizes"]:
        for arm in [a for a in cfg.get("arms", ARMS) if a in ARMS]:
            m = run_arm(arm, n, GAINS_E4, seeds, steps=cfg["steps"], eval_every=cfg["eval_every"],
                        splits=splits)
            for j, gain in enumerate(GAINS_E4):
                sl = slice(j * seeds, (j + 1) * seeds)
                vals = {k: v[sl] for k, v in m.items()}
                res[(gain, n, arm)] = vals
                lo, hi = t_interval(vals["test_acc"])
                ref = TABLE_4_1.get(n)
                refv = None if ref is None or gain != 0.01 or arm.startswith("Reg.") else (
                    ref[0] if arm == "ResNet" else ref[1])
                rows.append(Row(f"gain={gain:g} n={n} {arm}",
                                {**{k: v.tolist() for k, v in vals.items()},
                                 "ci95_low": [lo], "ci95_high": [hi]},
                                {"max_test_acc": refv}))
    for gain in GAINS_E4:
        gaps = []
        for n in cfg["sizes"]:
            van, lap = res[(gain, n, "ResNet")], res[(gain, n, "LAP-ResNet")]
            gaps.append(float(np.nanmean(lap["test_acc"] - van["test_acc"])))
        ge = all(g >= 0 for g in gaps)
        grows = gaps[0] >= gaps[-1]
        checks.append(Check(
            f"E4 gain {gain:g}: LAP >= ResNet at every n (val-selected test acc, paired)",
            bool(ge), "LAP - ResNet by n " + str(dict(zip(cfg["sizes"], np.round(gaps, 2).tolist())))))
        checks.append(Check(
            f"E4 gain {gain:g}: the gap grows as n shrinks (smallest n vs largest n)",
            bool(grows), f"gap at n={cfg['sizes'][0]}: {gaps[0]:.2f}, at n={cfg['sizes'][-1]}: {gaps[-1]:.2f}"))
        lower = all(np.nanmean(res[(gain, n, "LAP-ResNet")]["test_transport"])
                    < np.nanmean(res[(gain, n, "ResNet")]["test_transport"]) for n in cfg["sizes"])
        checks.append(Check(
            f"E4 gain {gain:g}: LAP test transport lower at every n", bool(lower),
            "transport ResNet/LAP by n " + str({n: (round(float(np.nanmean(res[(gain, n, 'ResNet')]['test_transport'])), 3),
                                                   round(float(np.nanmean(res[(gain, n, 'LAP-ResNet')]['test_transport'])), 3))
                                               for n in cfg["sizes"]})))
        widths = [(np.subtract(*t_interval(res[(gain, n, "ResNet")]["test_acc"])[::-1]),
                   np.subtract(*t_interval(res[(gain, n, "LAP-ResNet")]["test_acc"])[::-1]))
                  for n in cfg["sizes"]]
        narrower = sum(w[1] <= w[0] for w in widths)
        checks.append(Check(
            f"E4 gain {gain:g}: LAP CIs narrower at a majority of n", bool(narrower * 2 > len(widths)),
            "CI widths ResNet/LAP by n " + str({n: (round(float(a), 2), round(float(b), 2))
                                                for n, (a, b) in zip(cfg["sizes"], widths)})))
    notes = (
        "Table 4.1 references (thesis MNIST, max test accuracy over training, 50 instances) "
        "are attached to max_test_acc of the gain-0.01 ResNet / LAP-ResNet rows; they are MNIST "
        "numbers and not expected to match 8x8 digits. test_acc is selected on the validation "
        "split (the honest headline), max_test_acc follows the thesis protocol (test-selected). "
        f"LAP penalty: reduction '{REDUCTION}' (released code: per element mean, 1/d = 1/{D} of "
        f"the thesis sum per point); Uzawa lambda0={LAP['lambda0']}, tau={LAP['tau']}, s={LAP['s']}. "
        f"{cfg['steps']} SGD steps, gradient clipping at global norm {CLIP} (a deviation, so the "
        "normal-init sweep does not diverge). Test transport is the thesis diagnostic sum_k "
        "E_x||r_k(x)||^2 on the test set at the validation-selected checkpoint."
    )
    return Result(rows=rows, checks=checks, figures=figures, notes=notes)
