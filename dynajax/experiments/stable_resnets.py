"""``stable-resnets``: forward stability of standard, antisymmetric and Hamiltonian networks.

Haber & Ruthotto (2017) call forward propagation stable when
``||F(y + e) - F(y)|| <= M ||e||`` with ``M`` moderate. Each network is an opening layer
(2 -> ``width``, tanh), a deep block ``F`` of ``depth`` layers with step ``h`` (so the block
integrates to time ``depth * h``: deeper is longer) and a linear head, on two interleaved
spirals:

* ``ResNet``: ``y <- y + h tanh(K_j y + b_j)``;
* ``Antisymmetric``: ``K_j = W_j - W_j^T - gamma I`` (Haber & Ruthotto eq. 3.4), whose
  linearised flow neither grows nor decays beyond the damping ``gamma``;
* ``Hamiltonian (leapfrog)``: Stormer-Verlet on a separable Hamiltonian (see
  :mod:`dynajax.arch.stable`), plain autodiff; symplectic, so perturbations neither grow nor decay
  on average;
* ``Hamiltonian reversible``: the same network with the backward pass recomputing the
  activations with the inverse step (``jax.custom_vjp``).

Metrics: the growth ratio ``M`` (:func:`dynajax.arch.growth_ratio`: mean over test inputs of the
largest ratio over ``n_dirs`` random perturbations of norm ``eps``) of the block at
initialisation for each depth in ``depths`` (all networks draw ``K`` entries from the same
``N(0, 1/width)``), after training at ``train_depth``, test accuracy (parameters with the best
validation loss), and the memory reverse mode stores for the backward pass of the loss gradient
(``stored_mb``, :func:`dynajax.arch.stored_bytes`) at each depth. The band checks compare the
stable networks' growth with the analytic ``M = 1`` of a norm-preserving flow.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.arch import StableClassifier, accuracy, growth_ratio, stored_bytes
from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, save_figure
from dynajax.train import fit, init_state, make_step

NETWORKS = {
    "ResNet": {"kind": "resnet"},
    "Antisymmetric": {"kind": "antisymmetric"},
    "Hamiltonian (leapfrog)": {"kind": "hamiltonian"},
    "Hamiltonian reversible": {"kind": "hamiltonian", "reversible": True},
}
GROWTH_FACTOR = 2.0  # band of the stable networks' growth around the analytic 1 (a factor)
GRAD_TOL = 1e-3  # float32 band of the reversible gradient's relative difference from autodiff (exact: 0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class StableResnetsConfig(ExperimentConfig):
    """Protocol of the stability comparison.

    Attributes:
        n_train, n_val, n_test: spiral points per split (drawn per seed).
        noise, turns: Gaussian noise std and number of turns of the spirals.
        depths: block depths of the growth and memory measurements; train_depth: depth trained.
        width, h, gamma: state width, layer step and antisymmetric damping.
        eps, n_dirs: perturbation norm and number of random directions of the growth ratio.
        train_steps, lr, n_validations: full-batch Adam steps, learning rate, validations.
    """

    seeds: int = 2
    n_train: int = 512
    n_val: int = 256
    n_test: int = 1024
    noise: float = 0.05
    turns: float = 1.5
    depths: tuple[int, ...] = (8, 32, 128)
    train_depth: int = 32
    width: int = 8
    h: float = 0.1
    gamma: float = 0.01
    eps: float = 1e-4
    n_dirs: int = 4
    train_steps: int = 600
    lr: float = 1e-2
    n_validations: int = 6

    def __post_init__(self):
        if min(self.n_train, self.n_val, self.n_test, self.train_depth, self.width, self.n_dirs,
               self.train_steps, self.n_validations) < 1 or not self.depths or min(self.depths) < 1:
            raise ValueError("sizes, depths, train_depth, width, n_dirs, train_steps and n_validations must be >= 1")
        if not (self.h > 0 and self.gamma >= 0 and self.eps > 0 and self.lr > 0 and self.noise >= 0 and self.turns > 0):
            raise ValueError("need h, eps, lr, turns > 0 and gamma, noise >= 0")


QUICK = StableResnetsConfig()
# Haber & Ruthotto (2017) show the stability of these blocks on 2-D toy classification problems
# without a table of growth ratios: FULL is the deepest and widest sweep of this set-up.
FULL = StableResnetsConfig(n_train=2048, n_val=512, n_test=4096, depths=(8, 32, 128, 512), train_depth=64,
                           width=16, train_steps=5000, lr=5e-3)


def spirals(key: jax.Array, n: int, noise: float, turns: float) -> tuple[jax.Array, jax.Array]:
    """Two interleaved spirals: ``n`` points ``[n, 2]`` in about ``[-1, 1]^2`` and labels ``[n]``."""
    k_lab, k_t, k_noise = jax.random.split(key, 3)
    lab = jax.random.bernoulli(k_lab, 0.5, (n,)).astype(jnp.int32)
    t = jnp.sqrt(jax.random.uniform(k_t, (n,), minval=0.02, maxval=1.0))  # uniform density along the arm
    ang = 2 * jnp.pi * turns * t + jnp.pi * lab
    x = jnp.stack([t * jnp.cos(ang), t * jnp.sin(ang)], axis=1) + noise * jax.random.normal(k_noise, (n, 2))
    return x, lab


def seed_rows(cfg: StableResnetsConfig, k_data: jax.Array, key: jax.Array) -> dict[str, dict[str, float]]:
    data = {s: spirals(jax.random.fold_in(k_data, i), getattr(cfg, f"n_{s}"), cfg.noise, cfg.turns)
            for i, s in enumerate(("train", "val", "test"))}
    (xt, yt), (xv, yv) = data["test"], data["val"]
    model_at = lambda depth, **kw: StableClassifier(dim_in=2, width=cfg.width, depth=depth, h=cfg.h,
                                                    gamma=cfg.gamma, **kw)
    growth = lambda m, p, k: float(growth_ratio(jax.jit(lambda y: m.block(p["block"], y)), m.embed(p, xt), key=k,
                                                eps=cfg.eps, n_dirs=cfg.n_dirs))
    out: dict[str, dict[str, float]] = {}
    for name, kw in NETWORKS.items():
        row: dict[str, float] = {}
        for depth in cfg.depths:
            model = model_at(depth, **kw)
            params = model.init(jax.random.fold_in(key, depth))
            row[f"growth_init_L{depth}"] = growth(model, params, jax.random.fold_in(key, 1))
            row[f"stored_mb_L{depth}"] = stored_bytes(lambda p, m=model: m.loss(p, *data["train"]), params) / 2**20
        model = model_at(cfg.train_depth, **kw)
        opt = optax.adam(cfg.lr)
        step = make_step(lambda p, batch, k, m=model: (m.loss(p, *batch), {}), opt)
        t = time.perf_counter()
        res = fit(step, init_state(model.init(jax.random.fold_in(key, 10_000)), opt, key=jax.random.fold_in(key, 2)),
                  data["train"], n_steps=cfg.train_steps, chunk_size=max(1, cfg.train_steps // cfg.n_validations),
                  validate=jax.jit(lambda p, m=model: m.loss(p, xv, yv)), progress=False)
        row["train_wall_s"] = time.perf_counter() - t
        row["test_acc"] = float(accuracy(jax.jit(model.apply)(res.best_params, xt), yt))
        row["growth_trained"] = growth(model, res.best_params, jax.random.fold_in(key, 3))
        out[name] = row
    # the reversible backward pass against plain autodiff on the trained-depth network
    plain = model_at(cfg.train_depth, kind="hamiltonian")
    p = plain.init(jax.random.fold_in(key, 5))
    ga, gr = (jax.tree_util.tree_leaves(jax.jit(jax.grad(m.loss))(p, *data["train"]))
              for m in (plain, dataclasses.replace(plain, reversible=True)))
    out["Hamiltonian reversible"]["grad_rel_diff_vs_autodiff"] = float(
        max(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-30) for a, b in zip(ga, gr)))
    return out


@register("stable-resnets", "Growth of ||F(y+e)-F(y)||/||e|| with depth for ResNet, antisymmetric and Hamiltonian "
          "nets; reversible memory", configs={"quick": QUICK, "full": FULL}, budget=("train_steps",))
def run(cfg: StableResnetsConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    k_data, k_model = seed_keys(seeds, 0), seed_keys(seeds, 1)
    per_seed = [seed_rows(cfg, k_data[i], k_model[i]) for i in range(len(seeds))]
    rows = [Row(name, {k: [s[name][k] for s in per_seed] for k in per_seed[0][name]}) for name in NETWORKS]
    m = lambda name, metric: float(np.mean([s[name][metric] for s in per_seed]))
    L, H, A = cfg.depths[-1], "Hamiltonian (leapfrog)", "Antisymmetric"
    g = lambda name, d=L: m(name, f"growth_init_L{d}")
    mem = lambda name: m(name, f"stored_mb_L{L}")
    checks = [
        band(f"antisymmetric growth at depth {L} (init; analytic 1)", g(A), 1.0, GROWTH_FACTOR, "factor"),
        band(f"Hamiltonian growth at depth {L} (init; analytic 1)", g(H), 1.0, GROWTH_FACTOR, "factor"),
        band("reversible backward equals autodiff (max rel. diff, exact: 0)",
             m("Hamiltonian reversible", "grad_rel_diff_vs_autodiff"), 0.0, GRAD_TOL),
        Check(f"ResNet growth at depth {L} exceeds the antisymmetric net's 10x", g("ResNet") > 10 * g(A),
              f"ResNet {g('ResNet'):.3g}, antisymmetric {g(A):.3g}"),
        Check(f"antisymmetric growth stays bounded (<= 3) up to depth {L}", max(g(A, d) for d in cfg.depths) <= 3,
              ", ".join(f"L={d}: {g(A, d):.3g}" for d in cfg.depths)),
        Check(f"Hamiltonian growth at depth {L} is below the ResNet's", g(H) < g("ResNet"),
              f"{g(H):.3g} vs {g('ResNet'):.3g}"),
        Check(f"reversible Hamiltonian uses less gradient memory than plain autodiff at depth {L}",
              mem("Hamiltonian reversible") < mem(H),
              f"{mem('Hamiltonian reversible'):.3f} MB vs {mem(H):.3f} MB (ResNet {mem('ResNet'):.3f} MB)"),
        Check("the stable networks train (test accuracy >= 0.9)", min(m(n, "test_acc") for n in (A, H)) >= 0.9,
              ", ".join(f"{n}: {m(n, 'test_acc'):.3f}" for n in NETWORKS)),
    ]
    notes = (
        f"Two spirals ({cfg.turns} turns, noise {cfg.noise}), {cfg.n_train}/{cfg.n_val}/{cfg.n_test} points per "
        f"seed; width {cfg.width}, step h = {cfg.h} (depth L integrates to time L h), K ~ N(0, 1/width) for every "
        f"network, gamma = {cfg.gamma}, tanh. Training at depth {cfg.train_depth}: Adam {cfg.lr}, full batch, "
        f"{cfg.train_steps} steps, best of {cfg.n_validations} validations. Growth: mean over test inputs of the max "
        f"over {cfg.n_dirs} perturbations of norm {cfg.eps} of ||F(y+e)-F(y)||/||e|| (F: the deep block); band: "
        f"within a factor {GROWTH_FACTOR:g} of the norm-preserving 1 (Haber & Ruthotto 2017). Memory: bytes reverse "
        "mode stores between forward and backward passes of the loss gradient on the train batch (jax.vjp residuals)."
    )
    return Result(rows=rows, checks=checks, figures=[_plot(out_dir, cfg, m)], notes=notes)


def _plot(out_dir: Path, cfg: StableResnetsConfig, m) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    for name in NETWORKS:
        axes[0].plot(cfg.depths, [m(name, f"growth_init_L{d}") for d in cfg.depths], "o-", label=name)
        axes[1].plot(cfg.depths, [m(name, f"stored_mb_L{d}") for d in cfg.depths], "o-", label=name)
    axes[0].set(xscale="log", yscale="log", xlabel="depth", title="growth ratio at init")
    axes[1].set(xscale="log", yscale="log", xlabel="depth", title="stored for backward (MB)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir / "stable_resnets.png")
