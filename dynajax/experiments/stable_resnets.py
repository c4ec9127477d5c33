"""``stable-resnets``: forward stability of standard, antisymmetric and Hamiltonian networks.

Haber & Ruthotto (2017) call forward propagation stable when
``||F(y + e) - F(y)|| <= M ||e||`` with ``M`` moderate. Each network is an opening layer
(2 -> ``width``, tanh), a deep block ``F`` of ``depth`` layers with step ``h`` (so the block
integrates to time ``depth * h``: deeper is longer) and a linear head, on two interleaved
spirals:

* ``ResNet``: ``y <- y + h tanh(K_j y + b_j)``;
* ``Antisymmetric``: ``K_j = W_j - W_j^T - gamma I``;
* ``Hamiltonian (leapfrog)``: Stormer-Verlet on a separable Hamiltonian (see
  :mod:`dynajax.arch.stable`), plain autodiff;
* ``Hamiltonian reversible``: the same network with the backward pass recomputing the
  activations with the inverse step (``jax.custom_vjp``).

Metrics: the growth ratio ``M`` (:func:`dynajax.arch.growth_ratio`: mean over test inputs of the
largest ratio over 4 random perturbations of norm ``1e-4``) of the block at initialisation for
each depth in ``depths`` (all networks draw ``K`` entries from the same ``N(0, 1/width)``),
after training at ``train_depth``, test accuracy (parameters with the best validation loss),
and the memory reverse mode stores for the backward pass of the loss gradient
(``stored_mb``, :func:`dynajax.arch.stored_bytes`) at each depth.
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
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.train import fit, init_state, make_step

SIZES = {
    "quick": {"n_train": 512, "n_val": 256, "n_test": 1024, "depths": (8, 32, 128), "train_depth": 32,
              "width": 8, "h": 0.1, "train_steps": 600, "lr": 1e-2},
    "full": {"n_train": 2048, "n_val": 512, "n_test": 4096, "depths": (8, 32, 128, 512), "train_depth": 64,
             "width": 16, "h": 0.1, "train_steps": 5000, "lr": 5e-3},
}

NETWORKS = {
    "ResNet": {"kind": "resnet"},
    "Antisymmetric": {"kind": "antisymmetric", "gamma": 0.01},
    "Hamiltonian (leapfrog)": {"kind": "hamiltonian"},
    "Hamiltonian reversible": {"kind": "hamiltonian", "reversible": True},
}


def spirals(n: int, seed: int, noise: float = 0.05, turns: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: ``n`` points ``[n, 2]`` in about ``[-1, 1]^2`` and labels ``[n]``."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 2, n)
    t = np.sqrt(rng.uniform(0.02, 1.0, n))  # uniform density along the arm
    ang = 2 * np.pi * turns * t + np.pi * lab
    x = np.stack([t * np.cos(ang), t * np.sin(ang)], axis=1) + noise * rng.normal(size=(n, 2))
    return x.astype(np.float32), lab.astype(np.int32)


def _splits(sizes, seed):
    return {k: spirals(sizes[f"n_{k}"], 1000 * seed + i) for i, k in enumerate(("train", "val", "test"))}


def _stored_mb(model: StableClassifier, params, x, y) -> float:
    return stored_bytes(lambda p: model.loss(p, x, y), params) / 2**20


def seed_rows(sizes: dict, seed: int) -> dict[str, dict[str, float]]:
    data = {k: (jnp.asarray(a), jnp.asarray(b)) for k, (a, b) in _splits(sizes, seed).items()}
    xt, yt = data["test"]
    key = jax.random.key(seed)
    out: dict[str, dict[str, float]] = {}
    for name, kw in NETWORKS.items():
        row: dict[str, float] = {}
        for depth in sizes["depths"]:
            model = StableClassifier(dim_in=2, width=sizes["width"], depth=depth, h=sizes["h"], **kw)
            params = model.init(jax.random.fold_in(key, depth))
            F = jax.jit(lambda y, p=params, m=model: m.block(p["block"], y))
            y0 = model.embed(params, xt)
            row[f"growth_init_L{depth}"] = float(growth_ratio(F, y0, jax.random.fold_in(key, 1)))
            row[f"stored_mb_L{depth}"] = _stored_mb(model, params, *data["train"])
        model = StableClassifier(dim_in=2, width=sizes["width"], depth=sizes["train_depth"], h=sizes["h"], **kw)
        params = model.init(jax.random.fold_in(key, 10_000))
        opt = optax.adam(sizes["lr"])
        step = make_step(lambda p, batch, k, m=model: (m.loss(p, *batch), {}), opt)
        xv, yv = data["val"]
        t = time.perf_counter()
        res = fit(step, init_state(params, opt, jax.random.fold_in(key, 2)), data["train"],
                  n_steps=sizes["train_steps"], chunk_size=max(1, sizes["train_steps"] // 6),
                  validate=jax.jit(lambda p, m=model, xv=xv, yv=yv: m.loss(p, xv, yv)), progress=False)
        row["train_wall_s"] = time.perf_counter() - t
        best = res.best_params
        row["test_acc"] = float(accuracy(jax.jit(model.apply)(best, xt), yt))
        F = jax.jit(lambda y, p=best, m=model: m.block(p["block"], y))
        row["growth_trained"] = float(growth_ratio(F, model.embed(best, xt), jax.random.fold_in(key, 3)))
        out[name] = row
    # the reversible backward pass against plain autodiff on the trained-depth network
    plain = StableClassifier(dim_in=2, width=sizes["width"], depth=sizes["train_depth"], h=sizes["h"], kind="hamiltonian")
    rev = dataclasses.replace(plain, reversible=True)
    p = plain.init(jax.random.fold_in(key, 5))
    ga = jax.tree_util.tree_leaves(jax.jit(jax.grad(plain.loss))(p, *data["train"]))
    gr = jax.tree_util.tree_leaves(jax.jit(jax.grad(rev.loss))(p, *data["train"]))
    out["Hamiltonian reversible"]["grad_rel_diff_vs_autodiff"] = float(
        max(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-30) for a, b in zip(ga, gr))
    )
    return out


@register(
    "stable-resnets",
    "Growth of ||F(y+e)-F(y)||/||e|| with depth for ResNet, antisymmetric and Hamiltonian nets; reversible memory",
    default_seeds=2,
)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    sizes = SIZES[scale]
    per_seed = [seed_rows(sizes, s) for s in range(seeds)]
    rows = [Row(name, {k: [s[name][k] for s in per_seed] for k in per_seed[0][name]}, {}) for name in NETWORKS]

    def m(name, metric):
        return float(np.mean([s[name][metric] for s in per_seed]))

    L = sizes["depths"][-1]
    checks = [
        Check(f"ResNet growth at depth {L} exceeds the antisymmetric net's 10x",
              m("ResNet", f"growth_init_L{L}") > 10 * m("Antisymmetric", f"growth_init_L{L}"),
              f"ResNet {m('ResNet', f'growth_init_L{L}'):.3g}, antisymmetric {m('Antisymmetric', f'growth_init_L{L}'):.3g}"),
        Check(f"antisymmetric growth stays bounded (<= 3) up to depth {L}",
              max(m("Antisymmetric", f"growth_init_L{d}") for d in sizes["depths"]) <= 3,
              ", ".join(f"L={d}: {m('Antisymmetric', f'growth_init_L{d}'):.3g}" for d in sizes["depths"])),
        Check(f"Hamiltonian growth at depth {L} is below the ResNet's",
              m("Hamiltonian (leapfrog)", f"growth_init_L{L}") < m("ResNet", f"growth_init_L{L}"),
              f"{m('Hamiltonian (leapfrog)', f'growth_init_L{L}'):.3g} vs {m('ResNet', f'growth_init_L{L}'):.3g}"),
        Check(f"reversible Hamiltonian uses less gradient memory than plain autodiff at depth {L}",
              m("Hamiltonian reversible", f"stored_mb_L{L}") < m("Hamiltonian (leapfrog)", f"stored_mb_L{L}"),
              f"{m('Hamiltonian reversible', f'stored_mb_L{L}'):.3f} MB vs {m('Hamiltonian (leapfrog)', f'stored_mb_L{L}'):.3f} MB"
              f" (ResNet {m('ResNet', f'stored_mb_L{L}'):.3f} MB)"),
        Check("reversible backward equals autodiff (float32, rel. 1e-3)",
              m("Hamiltonian reversible", "grad_rel_diff_vs_autodiff") < 1e-3,
              f"max rel. diff {m('Hamiltonian reversible', 'grad_rel_diff_vs_autodiff'):.2e}"),
        Check("the stable networks train (test accuracy >= 0.9)",
              min(m(n, "test_acc") for n in ("Antisymmetric", "Hamiltonian (leapfrog)")) >= 0.9,
              ", ".join(f"{n}: {m(n, 'test_acc'):.3f}" for n in NETWORKS)),
    ]
    notes = (
        f"Two spirals (1.5 turns, noise 0.05), {sizes['n_train']}/{sizes['n_val']}/{sizes['n_test']} points; "
        f"width {sizes['width']}, step h = {sizes['h']} (depth L integrates to time L h), K ~ N(0, 1/width) for "
        f"every network, gamma = 0.01, tanh. Training at depth {sizes['train_depth']}: Adam {sizes['lr']}, full "
        f"batch, {sizes['train_steps']} steps, best validation loss. Growth: mean over test inputs of the max over "
        "4 perturbations of norm 1e-4 of ||F(y+e)-F(y)||/||e|| (F: the deep block). Memory: bytes reverse mode "
        "stores between forward and backward passes of the loss gradient on the train batch (jax.vjp residuals). Haber & Ruthotto report qualitative "
        "stability, no numbers for this set-up: references are empty."
    )
    return Result(rows=rows, checks=checks, figures=[_plot(out_dir, sizes, per_seed)], notes=notes)


def _plot(out_dir, sizes, per_seed) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
    ds = sizes["depths"]
    for name in NETWORKS:
        g = [np.mean([s[name][f"growth_init_L{d}"] for s in per_seed]) for d in ds]
        mem = [np.mean([s[name][f"stored_mb_L{d}"] for s in per_seed]) for d in ds]
        axes[0].plot(ds, g, "o-", label=name)
        axes[1].plot(ds, mem, "o-", label=name)
    axes[0].set(xscale="log", yscale="log", xlabel="depth", title="growth ratio at init")
    axes[1].set(xscale="log", yscale="log", xlabel="depth", title="stored for backward (MB)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir / "stable_resnets.png")
