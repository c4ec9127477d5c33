"""``node-gradients``: discretise-then-optimise vs optimise-then-discretise on a neural-ODE classifier.

The model is :class:`dynajax.arch.ContinuousClassifier` (embedding 2 -> 8, ODE block
``du/dt = tanh(K(t) u + b(t))`` on ``[0, 1]`` with linearly interpolated weights, linear head)
on scikit-learn's two moons. Its block is solved by forward Euler with ``N`` steps (a ResNet
of depth ``N``), and its gradient computed two ways:

* ``discretize``: backpropagation through the ``N`` Euler steps (``adjoint="discretize"``,
  the fixed-step scan that stores one state per step);
* ``backsolve``: the continuous adjoint solved backwards with the same Euler step
  (``adjoint="backsolve"``, Chen et al. 2018), which stores no trajectory.

Measured per ``N`` (float64, at the initial parameters of each seed):

* ``grad_err_fd``: ``|<g, v> - FD| / |FD|`` with ``FD`` the central finite difference of the
  *discrete* loss along a random direction ``v`` (step ``1e-5``): the gradient of the network
  that is actually evaluated;
* ``grad_err_limit``: ``||g - g_inf|| / ||g_inf||`` with ``g_inf`` the continuous-time gradient
  (discretised RK4 with ``fine_steps`` steps, converged to round-off);
* ``wall_ms``: median wall time of one compiled gradient evaluation (batch of the train
  split); ``temp_mb``: XLA's compiled temporary-buffer size of the gradient program
  (``memory_analysis().temp_size_in_bytes``), the peak working memory beyond inputs/outputs.

Then both routes train the ``train_n_steps`` model (float32, Adam) and report test accuracy
of the parameters with the best validation loss. Gholami et al. (2019) and the slides'
advice: discretise-then-optimise gives the exact gradient of the discrete network at a cost
that is fixed per step, while the adjoint's gradient is only ``O(h)`` accurate.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.arch import ContinuousClassifier, accuracy, stored_bytes
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.train import fit, init_state, make_step

SIZES = {
    "quick": {"n_train": 256, "n_val": 256, "n_test": 1024, "steps_list": (4, 16, 64),
              "fine_steps": 256, "train_n_steps": 16, "train_steps": 400, "repeats": 5, "width": 8},
    "full": {"n_train": 1024, "n_val": 512, "n_test": 4096, "steps_list": (4, 16, 64, 256, 1024),
             "fine_steps": 1024, "train_n_steps": 32, "train_steps": 3000, "repeats": 10, "width": 16},
}


def moons(n: int, seed: int, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standardised two-moons points ``[n, 2]`` and labels ``[n]`` (scikit-learn)."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    x = (x - np.array([0.5, 0.25])) / np.array([0.87, 0.5])
    return x.astype(np.float64), y.astype(np.int32)


def splits(sizes: dict, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Independent train / val / test draws (distinct sklearn seeds)."""
    return {name: moons(sizes[f"n_{name}"], 1000 * seed + i) for i, name in enumerate(("train", "val", "test"))}


def _flat(tree) -> jnp.ndarray:
    return jnp.concatenate([v.ravel() for v in jax.tree_util.tree_leaves(tree)])


def _median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gradient_rows(sizes: dict, seed: int) -> dict[str, dict[str, float]]:
    """Gradient accuracy, time and memory of both routes for every ``N`` (one seed)."""
    out: dict[str, dict[str, float]] = {}
    with jax.enable_x64(True):
        data = splits(sizes, seed)["train"]
        x, y = jnp.asarray(data[0]), jnp.asarray(data[1])
        base = ContinuousClassifier(dim_in=2, width=sizes["width"], n_nodes=4, n_steps=1)
        params = base.init(jax.random.key(seed), jnp.float64)
        v = jax.tree_util.tree_map(
            lambda p: jax.random.normal(jax.random.fold_in(jax.random.key(seed + 7), p.size), p.shape, p.dtype), params
        )
        fine = ContinuousClassifier(**{**base.__dict__, "solver": "rk4", "n_steps": sizes["fine_steps"]})
        g_inf = _flat(jax.jit(jax.grad(fine.loss))(params, x, y))
        for n in sizes["steps_list"]:
            disc = ContinuousClassifier(**{**base.__dict__, "n_steps": n})
            loss = jax.jit(disc.loss)
            eps = 1e-5
            shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * d, params, v)
            fd = float((loss(shift(eps), x, y) - loss(shift(-eps), x, y)) / (2 * eps))
            for route in ("discretize", "backsolve"):
                model = ContinuousClassifier(**{**disc.__dict__, "adjoint": route})
                grad = jax.jit(jax.grad(model.loss))
                g = grad(params, x, y)
                gv = float(sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(v))))
                gf = _flat(g)
                out[f"{route} N={n}"] = {
                    "grad_err_fd": abs(gv - fd) / abs(fd),
                    "grad_err_limit": float(jnp.linalg.norm(gf - g_inf) / jnp.linalg.norm(g_inf)),
                    "wall_ms": 1e3 * _median_time(grad, params, x, y, repeats=sizes["repeats"]),
                    "stored_mb": stored_bytes(lambda p, m=model: m.loss(p, x, y), params) / 2**20,
                }
    return out


def train_rows(sizes: dict, seed: int) -> dict[str, dict[str, float]]:
    """Trains the ``train_n_steps`` model with both gradient routes; test accuracy (one seed)."""
    data = {k: (jnp.asarray(a, jnp.float32), jnp.asarray(b)) for k, (a, b) in splits(sizes, seed).items()}
    out = {}
    for route in ("discretize", "backsolve"):
        model = ContinuousClassifier(dim_in=2, width=sizes["width"], n_nodes=4, n_steps=sizes["train_n_steps"],
                                     adjoint=route)
        params = model.init(jax.random.key(seed))
        opt = optax.adam(1e-2)
        step = make_step(lambda p, batch, key, m=model: (m.loss(p, *batch), {}), opt)
        state = init_state(params, opt, jax.random.key(seed + 1))
        xv, yv = data["val"]
        t = time.perf_counter()
        res = fit(step, state, data["train"], n_steps=sizes["train_steps"],
                  chunk_size=max(1, sizes["train_steps"] // 8),
                  validate=jax.jit(lambda p, m=model, xv=xv, yv=yv: m.loss(p, xv, yv)), progress=False)
        wall = time.perf_counter() - t
        xt, yt = data["test"]
        out[f"{route} training (N={sizes['train_n_steps']})"] = {
            "test_acc": float(accuracy(jax.jit(model.apply)(res.best_params, xt), yt)),
            "train_wall_s": wall,
        }
    return out


def _collect(per_seed: list[dict], key: str) -> dict[str, list[float]]:
    return {m: [s[key][m] for s in per_seed] for m in per_seed[0][key]}


@register(
    "node-gradients",
    "Neural-ODE classifier on two moons: discretise-then-optimise vs adjoint gradients (error, time, memory vs depth)",
    default_seeds=2,
)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    sizes = SIZES[scale]
    per_seed = [{**gradient_rows(sizes, s), **train_rows(sizes, s)} for s in range(seeds)]
    rows = [Row(name, _collect(per_seed, name), {}) for name in per_seed[0]]

    def m(name, metric):
        return float(np.mean([s[name][metric] for s in per_seed]))

    ns = sizes["steps_list"]
    lo, hi = ns[0], ns[-1]
    d_fd = [m(f"discretize N={n}", "grad_err_fd") for n in ns]
    b_fd = [m(f"backsolve N={n}", "grad_err_fd") for n in ns]
    b_lim = [m(f"backsolve N={n}", "grad_err_limit") for n in ns]
    d_mem = [m(f"discretize N={n}", "stored_mb") for n in ns]
    b_mem = [m(f"backsolve N={n}", "stored_mb") for n in ns]
    accs = {r: m(f"{r} training (N={sizes['train_n_steps']})", "test_acc") for r in ("discretize", "backsolve")}
    checks = [
        Check("discretise-then-optimise is the exact gradient of the discrete network (FD rel. err < 1e-6 at every N)",
              max(d_fd) < 1e-6, f"max rel. err {max(d_fd):.2e}"),
        Check("the adjoint gradient misses the discrete gradient by O(h): error vs FD shrinks >= N ratio / 4",
              b_fd[0] / b_fd[-1] >= (hi / lo) / 4, f"N={lo}: {b_fd[0]:.2e}, N={hi}: {b_fd[-1]:.2e}"),
        Check("both routes converge to the continuous gradient as N grows",
              b_lim[-1] < b_lim[0] and m(f"discretize N={hi}", "grad_err_limit") < m(f"discretize N={lo}", "grad_err_limit"),
              f"backsolve {b_lim[0]:.2e} -> {b_lim[-1]:.2e}; discretize "
              f"{m(f'discretize N={lo}', 'grad_err_limit'):.2e} -> {m(f'discretize N={hi}', 'grad_err_limit'):.2e}"),
        Check("discretise memory grows with depth (>= N ratio / 4), the adjoint's stays flat (< 1.1x)",
              d_mem[-1] / d_mem[0] >= (hi / lo) / 4 and b_mem[-1] / b_mem[0] < 1.1,
              "stored MB discretize " + ", ".join(f"{x:.3f}" for x in d_mem)
              + "; backsolve " + ", ".join(f"{x:.3f}" for x in b_mem)),
        Check("both routes train to >= 0.9 test accuracy", min(accs.values()) >= 0.9,
              ", ".join(f"{k}: {v:.3f}" for k, v in accs.items())),
    ]
    figures = [_plot(out_dir, ns, per_seed)]
    notes = (
        f"Two moons (noise 0.1), {sizes['n_train']}/{sizes['n_val']}/{sizes['n_test']} train/val/test points, "
        f"width {sizes['width']}, 4 weight nodes in time, forward Euler on [0, 1]. Gradient metrics in float64 "
        f"at the initial parameters; the continuous-time reference is RK4 with {sizes['fine_steps']} steps. "
        "FD: central difference of the discrete loss (step 1e-5) along a Gaussian direction. Memory is what reverse "
        "mode stores between the forward and backward passes (residuals of jax.vjp, abstractly evaluated). Training: Adam 1e-2, full batch, "
        f"{sizes['train_steps']} steps, best validation loss. No published numbers exist for this set-up "
        "(the slides state the qualitative claim), so references are empty."
    )
    return Result(rows=rows, checks=checks, figures=figures, notes=notes)


def _plot(out_dir: Path, ns, per_seed) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for route, c in (("discretize", "C0"), ("backsolve", "C3")):
        for ax, metric, ls in ((axes[0], "grad_err_fd", "-"), (axes[0], "grad_err_limit", "--"),
                               (axes[1], "wall_ms", "-"), (axes[2], "stored_mb", "-")):
            vals = [np.mean([s[f"{route} N={n}"][metric] for s in per_seed]) for n in ns]
            ax.plot(ns, np.maximum(vals, 1e-17), ls, color=c, marker="o", label=f"{route} {metric}")
    axes[0].set(xscale="log", yscale="log", xlabel="Euler steps N", title="relative gradient error")
    axes[1].set(xscale="log", yscale="log", xlabel="Euler steps N", title="gradient wall time (ms)")
    axes[2].set(xscale="log", xlabel="Euler steps N", title="stored for backward (MB)")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, out_dir / "node_gradients.png")
