"""``node-gradients``: discretise-then-optimise vs optimise-then-discretise on a neural-ODE classifier.

The model is :class:`dynajax.arch.ContinuousClassifier` (embedding 2 -> ``width``, ODE block
``du/dt = tanh(K(t) u + b(t))`` on ``[0, 1]`` with weights linearly interpolated between
``n_nodes`` time nodes, linear head) on scikit-learn's two moons. Its block is solved by forward
Euler with ``N`` steps (a ResNet of depth ``N``), and its gradient computed two ways:

* ``discretize``: backpropagation through the ``N`` Euler steps (``adjoint="discretize"``);
* ``backsolve``: the continuous adjoint solved backwards with the same Euler step
  (``adjoint="backsolve"``, Chen et al. 2018), which stores no trajectory.

Measured per ``N`` (float64, at the initial parameters of each seed):

* ``grad_err_fd``: ``|<g, v> - FD| / |FD|`` with ``FD`` the central finite difference of the
  *discrete* loss along a random direction ``v`` (step ``fd_eps``): the gradient of the network
  that is actually evaluated;
* ``grad_err_limit``: ``||g - g_inf|| / ||g_inf||`` with ``g_inf`` the continuous-time gradient
  (discretised RK4 with ``fine_steps`` steps);
* ``wall_ms``: median wall time of one compiled gradient evaluation on the train split;
  ``stored_mb``: what reverse mode keeps between the forward and backward passes
  (:func:`dynajax.arch.stored_bytes`).

Then both routes train the ``train_n_steps`` model (float32, Adam) and report the test accuracy
of the parameters with the best validation loss. Discretise-then-optimise gives the exact
gradient of the discrete network (Gholami et al. 2019, ANODE: analytic error 0), while the
adjoint's gradient differs from it by the discretisation error, ``O(h)`` for Euler (analytic
order 1 in ``h = 1 / N``); the band checks compare with these two analytic values.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.arch import ContinuousClassifier, accuracy, stored_bytes
from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, median_seconds, save_figure
from dynajax.train import fit, init_state, make_step

ROUTES = ("discretize", "backsolve")
FD_TOL = 1e-6  # band of the discretise route's relative error against FD (exact: 0; FD's own error ~1e-10)
ORDER_TOL = 0.1  # relative band of the adjoint's measured order around 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class NodeGradientsConfig(ExperimentConfig):
    """Protocol of the gradient-route comparison.

    Attributes:
        n_train, n_val, n_test, noise: two-moons points per split (drawn per seed) and their noise.
        width, n_nodes: ODE state width and time nodes of the weights.
        steps_list: Euler step counts ``N`` of the gradient measurements (increasing).
        fine_steps: RK4 steps of the continuous-time reference gradient.
        fd_eps: finite-difference step; repeats: timed gradient evaluations per ``N`` (median).
        train_n_steps, train_steps, lr, n_validations: Euler steps of the trained model, Adam
            steps, learning rate and validations (best checkpoint).
    """

    seeds: int = 2
    n_train: int = 256
    n_val: int = 256
    n_test: int = 1024
    noise: float = 0.1
    width: int = 8
    n_nodes: int = 4
    steps_list: tuple[int, ...] = (4, 16, 64)
    fine_steps: int = 256
    fd_eps: float = 1e-5
    repeats: int = 5
    train_n_steps: int = 16
    train_steps: int = 400
    lr: float = 1e-2
    n_validations: int = 8

    def __post_init__(self):
        if len(self.steps_list) < 2 or list(self.steps_list) != sorted(set(self.steps_list)) or self.steps_list[0] < 1:
            raise ValueError(f"steps_list needs >= 2 increasing step counts >= 1, got {self.steps_list}")
        if min(self.n_train, self.n_val, self.n_test, self.width, self.n_nodes, self.fine_steps, self.repeats,
               self.train_n_steps, self.train_steps, self.n_validations) < 1:
            raise ValueError("sizes, width, n_nodes, fine_steps, repeats, train_n_steps, train_steps and "
                             "n_validations must be >= 1")
        if not (self.fd_eps > 0 and self.lr > 0 and self.noise >= 0):
            raise ValueError("need fd_eps > 0, lr > 0 and noise >= 0")


QUICK = NodeGradientsConfig()
# Gholami et al. (2019) compare the two routes on image classifiers without a table for this
# set-up: FULL is the widest range of depths of this comparison.
FULL = NodeGradientsConfig(n_train=1024, n_val=512, n_test=4096, width=16, steps_list=(4, 16, 64, 256, 1024),
                           fine_steps=1024, repeats=10, train_n_steps=32, train_steps=3000)


def moons(key: jax.Array, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standardised two-moons points ``[n, 2]`` (float64) and labels ``[n]`` (scikit-learn)."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=noise, random_state=int(jax.random.randint(key, (), 0, 2**31 - 1)))
    return (x - np.array([0.5, 0.25])) / np.array([0.87, 0.5]), y.astype(np.int32)



def gradient_rows(cfg: NodeGradientsConfig, x, y, k_init, k_dir) -> dict[str, dict[str, float]]:
    """Gradient accuracy, time and memory of both routes for every ``N`` (one seed)."""
    out = {}
    with jax.enable_x64(True):
        x, y = jnp.asarray(x), jnp.asarray(y)
        base = ContinuousClassifier(dim_in=2, width=cfg.width, n_nodes=cfg.n_nodes, n_steps=1)
        params = base.init(k_init, jnp.float64)
        v = jax.tree_util.tree_map(lambda p: jax.random.normal(jax.random.fold_in(k_dir, p.size), p.shape, p.dtype),
                                   params)
        flat = lambda t: jnp.concatenate([a.ravel() for a in jax.tree_util.tree_leaves(t)])
        fine = dataclasses.replace(base, solver="rk4", n_steps=cfg.fine_steps)
        g_inf = flat(jax.jit(jax.grad(fine.loss))(params, x, y))
        shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * d, params, v)
        for n in cfg.steps_list:
            loss = jax.jit(dataclasses.replace(base, n_steps=n).loss)
            fd = float((loss(shift(cfg.fd_eps), x, y) - loss(shift(-cfg.fd_eps), x, y)) / (2 * cfg.fd_eps))
            for route in ROUTES:
                model = dataclasses.replace(base, n_steps=n, adjoint=route)
                grad = jax.jit(jax.grad(model.loss))
                g = flat(grad(params, x, y))
                out[f"{route} N={n}"] = {
                    "grad_err_fd": abs(float(jnp.vdot(g, flat(v))) - fd) / abs(fd),
                    "grad_err_limit": float(jnp.linalg.norm(g - g_inf) / jnp.linalg.norm(g_inf)),
                    "wall_ms": 1e3 * median_seconds(grad, params, x, y, repeats=cfg.repeats),
                    "stored_mb": stored_bytes(lambda p, m=model: m.loss(p, x, y), params) / 2**20,
                }
    return out


def train_rows(cfg: NodeGradientsConfig, data: dict, key: jax.Array) -> dict[str, dict[str, float]]:
    """Trains the ``train_n_steps`` model with both gradient routes; test accuracy (one seed)."""
    data = {k: (jnp.asarray(a, jnp.float32), jnp.asarray(b)) for k, (a, b) in data.items()}
    (xv, yv), (xt, yt) = data["val"], data["test"]
    out = {}
    for route in ROUTES:
        model = ContinuousClassifier(dim_in=2, width=cfg.width, n_nodes=cfg.n_nodes, n_steps=cfg.train_n_steps,
                                     adjoint=route)
        opt = optax.adam(cfg.lr)
        step = make_step(lambda p, batch, k, m=model: (m.loss(p, *batch), {}), opt)
        t = time.perf_counter()
        res = fit(step, init_state(model.init(key), opt, key=jax.random.fold_in(key, 1)), data["train"],
                  n_steps=cfg.train_steps, chunk_size=max(1, cfg.train_steps // cfg.n_validations),
                  validate=jax.jit(lambda p, m=model: m.loss(p, xv, yv)), progress=False)
        out[f"{route} training (N={cfg.train_n_steps})"] = {
            "test_acc": float(accuracy(jax.jit(model.apply)(res.best_params, xt), yt)),
            "train_wall_s": time.perf_counter() - t,
        }
    return out


def order(ns, errs) -> float:
    """Least-squares slope of ``log(err)`` against ``log(h)``, ``h = 1 / N``."""
    return float(np.polyfit(-np.log(np.asarray(ns, float)), np.log(np.asarray(errs)), 1)[0])


@register("node-gradients", "Neural-ODE classifier on two moons: discretise-then-optimise vs adjoint gradients "
          "(error, time, memory vs depth)", configs={"quick": QUICK, "full": FULL}, budget=("train_steps",))
def run(cfg: NodeGradientsConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    k_data, k_init, k_dir = (seed_keys(seeds, s) for s in range(3))
    per_seed = []
    for i in range(len(seeds)):
        data = {s: moons(jax.random.fold_in(k_data[i], j), getattr(cfg, f"n_{s}"), cfg.noise)
                for j, s in enumerate(("train", "val", "test"))}
        per_seed.append({**gradient_rows(cfg, *data["train"], k_init[i], k_dir[i]), **train_rows(cfg, data, k_init[i])})
    rows = [Row(name, {k: [s[name][k] for s in per_seed] for k in per_seed[0][name]}) for name in per_seed[0]]
    m = lambda name, metric: float(np.mean([s[name][metric] for s in per_seed]))
    ns = cfg.steps_list
    lo, hi = ns[0], ns[-1]
    col = lambda route, k: [m(f"{route} N={n}", k) for n in ns]
    d_fd, b_fd, d_lim, b_lim = col("discretize", "grad_err_fd"), col("backsolve", "grad_err_fd"), \
        col("discretize", "grad_err_limit"), col("backsolve", "grad_err_limit")
    d_mem, b_mem = col("discretize", "stored_mb"), col("backsolve", "stored_mb")
    accs = {r: m(f"{r} training (N={cfg.train_n_steps})", "test_acc") for r in ROUTES}
    checks = [
        band("discretise-then-optimise gradient vs FD of the discrete loss (max rel. err over N; exact: 0)",
             max(d_fd), 0.0, FD_TOL),
        band(f"order in h of the adjoint gradient's error vs FD (N = {lo}..{hi}; analytic 1)",
             order(ns, b_fd), 1.0, ORDER_TOL, "rel"),
        Check("the adjoint gradient misses the discrete gradient by O(h): error vs FD shrinks >= N ratio / 4",
              b_fd[0] / b_fd[-1] >= (hi / lo) / 4, f"N={lo}: {b_fd[0]:.2e}, N={hi}: {b_fd[-1]:.2e}"),
        Check("both routes converge to the continuous gradient as N grows", b_lim[-1] < b_lim[0] and d_lim[-1] < d_lim[0],
              f"backsolve {b_lim[0]:.2e} -> {b_lim[-1]:.2e}; discretize {d_lim[0]:.2e} -> {d_lim[-1]:.2e}"),
        Check("discretise memory grows with depth (>= N ratio / 4), the adjoint's stays flat (< 1.1x)",
              d_mem[-1] / d_mem[0] >= (hi / lo) / 4 and b_mem[-1] / b_mem[0] < 1.1,
              "stored MB discretize " + ", ".join(f"{x:.3f}" for x in d_mem)
              + "; backsolve " + ", ".join(f"{x:.3f}" for x in b_mem)),
        Check("both routes train to >= 0.9 test accuracy", min(accs.values()) >= 0.9,
              ", ".join(f"{k}: {v:.3f}" for k, v in accs.items())),
    ]
    notes = (
        f"Two moons (noise {cfg.noise}), {cfg.n_train}/{cfg.n_val}/{cfg.n_test} train/val/test points per seed, "
        f"width {cfg.width}, {cfg.n_nodes} weight nodes in time, forward Euler on [0, 1] with N in {list(ns)}. "
        f"Gradient metrics in float64 at the initial parameters; the continuous-time reference is RK4 with "
        f"{cfg.fine_steps} steps. FD: central difference of the discrete loss (step {cfg.fd_eps}) along a Gaussian "
        "direction. Memory is what reverse mode stores between the forward and backward passes (residuals of "
        f"jax.vjp, abstractly evaluated). Training at N = {cfg.train_n_steps}: Adam {cfg.lr}, full batch, "
        f"{cfg.train_steps} steps, best of {cfg.n_validations} validations. Bands: analytic values (the discrete "
        f"gradient is exact, Gholami et al. 2019: within {FD_TOL:g} of FD; the Euler adjoint's error is of order 1 "
        f"in h: within {ORDER_TOL:.0%})."
    )
    return Result(rows=rows, checks=checks, figures=[_plot(out_dir, ns, per_seed)], notes=notes)


def _plot(out_dir: Path, ns, per_seed) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for route, c in zip(ROUTES, ("C0", "C3")):
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
