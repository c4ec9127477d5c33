"""``leads-gs`` and ``leads-ns``: LEADS on Gray-Scott and Navier-Stokes (thesis Table 3.14).

Gray-Scott (:mod:`dynajax.systems.gray_scott`): 3 environments ``(F, k)``, 1 training
trajectory each, ``K = 10`` frames at ``dt = 40``; ``f`` and each ``g_e`` are ConvNets
(4 layers of 64 channels, 3x3, circular padding, Swish, ``N(0, 0.1)``, output x 1e-3);
RK4 3/8, one step per frame; thesis ``lambda = 1e2``, ``alpha = 1e-2``.

Navier-Stokes (:mod:`dynajax.systems.navier_stokes`, vorticity only): 4 forcings, 8
training trajectories each, 10 frames ``t = 0..9`` at ``dt = 1`` (the code's); FNO2d (modes 6,
width 10, 4 Fourier layers, fc 128, Swish, grid channels); explicit Euler, one step per
frame; thesis ``lambda = 1e5``, ``alpha = 1e-5``.

``--scale full`` is the thesis budget for a GPU (long runs: the code trains 120k steps).
``--scale quick`` only shows the pipeline runs: few steps, fewer trajectories and, for GS, a
16-channel ConvNet; its numbers are not a reproduction. On CPU, the conv fields' fixed-step
loops unroll and training steps run as a loop (``unroll="auto"``, :mod:`dynajax._unroll`).
Parameters are selected on a validation split.
"""

from __future__ import annotations

import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

from dynajax.experiments.leads_lv import per_env_figure
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row
from dynajax.forecast import leads_baselines
from dynajax.nn import ConvNet, FNO2d, normal
from dynajax.systems import gray_scott, navier_stokes

_ALL = ("one_for_all", "one_per_env", "leads_no_min", "leads")
SIZES = {
    "gs": {
        "quick": {"n_steps": 30, "width": 16, "n_train": 1, "n_val": 1, "n_test": 4, "chunk": 10, "variants": _ALL},
        "full": {"n_steps": 50000, "width": 64, "n_train": 1, "n_val": 8, "n_test": 32, "chunk": 500, "variants": _ALL},
    },
    "ns": {
        "quick": {"n_steps": 50, "width": 10, "n_train": 2, "n_val": 1, "n_test": 2, "chunk": 25, "variants": _ALL},
        "full": {"n_steps": 50000, "width": 10, "n_train": 8, "n_val": 8, "n_test": 32, "chunk": 500, "variants": _ALL},
    },
}
HPARAMS = {
    "gs": {"lam": 1e2, "alpha": 1e-2, "dt": 40.0, "solver": "rk4_38"},
    "ns": {"lam": 1e5, "alpha": 1e-5, "dt": 1.0, "solver": "euler"},
}
# Table 3.14 (train MSE, test MSE).
REF = {
    "gs": {"One-For-All": (1.55e-2, 1.43e-2), "One-Per-Env": (8.48e-5, 6.43e-3),
           "LEADS no min": (7.65e-5, 5.53e-3), "LEADS": (5.75e-5, 2.08e-3)},
    "ns": {"One-For-All": (5.17e-2, 7.31e-2), "One-Per-Env": (5.60e-6, 1.10e-2),
           "LEADS no min": (3.20e-4, 7.10e-3), "LEADS": (1.03e-4, 5.95e-3)},
}
_NAMES = {"leads": "LEADS", "leads_no_min": "LEADS no min", "one_per_env": "One-Per-Env",
          "one_for_all": "One-For-All"}


class GridField(nn.Module):
    """Wraps a channels-last grid network for channels-first states ``[..., C, H, W]``.

    Attributes:
        inner: a network ``[N, H, W, C] -> [N, H, W, C]``.
        scale: output multiplier (LEADS' Gray-Scott network uses ``1e-3``).
    """

    inner: nn.Module
    scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        lead = x.shape[:-3]
        y = jnp.moveaxis(x, -3, -1).reshape((-1, *x.shape[-2:], x.shape[-3]))
        out = self.inner(y)
        return self.scale * jnp.moveaxis(out.reshape((*lead, *out.shape[1:])), -1, -3)


def make_net(system: str, width: int) -> nn.Module:
    """The network of ``f`` and each ``g_e`` for ``"gs"`` or ``"ns"``."""
    if system == "gs":
        conv = ConvNet((width, width, width, 2), padding="circular", activation="swish",
                       kernel_init=normal(0.1))
        return GridField(conv, scale=1e-3)
    return GridField(FNO2d(modes=6, width=width, out_channels=1, depth=4, fc_width=128,
                           activation="swish", append_grid=True))


def _data(system: str, sizes: dict):
    f32 = lambda d: jnp.asarray(d.by_env(), jnp.float32)  # noqa: E731
    if system == "gs":
        gen = lambda split, n: gray_scott.generate(split, n_per_env=n)  # noqa: E731
    else:
        gen = lambda split, n: navier_stokes.generate(split, n_per_env=n, with_scalar=False, n_frames=9)  # noqa: E731
    return (f32(gen("train", sizes["n_train"])), f32(gen("val", sizes["n_val"])),
            f32(gen("test", sizes["n_test"])))


def run_system(system: str, scale: str, seeds: int, out_dir: Path) -> Result:
    """Table 3.14 column for ``system`` (``"gs"`` or ``"ns"``)."""
    sizes, hp = SIZES[system][scale], HPARAMS[system]
    t0 = time.time()
    train, val, test = _data(system, sizes)
    t_data = time.time() - t0
    keys = jax.random.split(jax.random.key(0), seeds)
    net = make_net(system, sizes["width"])
    results, mean = {}, {}
    for variant in sizes["variants"]:
        model, res = leads_baselines.train_variant(
            variant, net, train, val, dt=hp["dt"], n_steps=sizes["n_steps"], keys=keys,
            chunk_size=sizes["chunk"], lam=hp["lam"], alpha=hp["alpha"], solver=hp["solver"],
            state_ndim=3)
        p = res.best_params
        results[_NAMES[variant]] = (leads_baselines.evaluate(model, p, train),
                                    leads_baselines.evaluate(model, p, test))
    rows = []
    for name, (tr, te) in results.items():
        mean[name] = float(te.mean())
        rows.append(Row(name, {"train_mse": tr.mean(-1), "test_mse": te.mean(-1)},
                        {"train_mse": REF[system][name][0], "test_mse": REF[system][name][1]}))
    checks = []
    if "LEADS" in mean and "One-Per-Env" in mean:
        checks.append(Check("LEADS below One-Per-Env", mean["LEADS"] < mean["One-Per-Env"],
                            f"{mean['LEADS']:.3g} vs {mean['One-Per-Env']:.3g}"
                            + (" (quick scale: pipeline check, not a reproduction)" if scale == "quick" else "")))
    fig = per_env_figure({name: r[1] for name, r in results.items()},
                         f"LEADS {system.upper()}: per-environment test MSE",
                         out_dir / f"leads_{system}_per_env.png", figsize=(6, 3.5), ncol=1)
    notes = (f"scale {scale}: {sizes['n_steps']} Adam steps, width {sizes['width']}, "
             f"{sizes['n_train']} train / {sizes['n_val']} val / {sizes['n_test']} test trajectories per "
             f"environment, {seeds} seeds; lambda = {hp['lam']}, alpha = {hp['alpha']} (thesis); "
             f"solver {hp['solver']}, one step per frame, unrolled. Full batch of the training "
             f"trajectories each step. Data {t_data:.0f} s, total {time.time() - t0:.0f} s.")
    return Result(rows=rows, checks=checks, figures=[fig], notes=notes)


@register("leads-gs", "LEADS on Gray-Scott (3 environments): Table 3.14 GS column (full scale needs a GPU)",
          quick_suite=False)
def run_gs(scale: str, seeds: int, out_dir: Path) -> Result:
    return run_system("gs", scale, seeds, out_dir)


@register("leads-ns", "LEADS on Navier-Stokes (4 forcings, FNO): Table 3.14 NS column (full scale needs a GPU)",
          quick_suite=False)
def run_ns(scale: str, seeds: int, out_dir: Path) -> Result:
    return run_system("ns", scale, seeds, out_dir)
