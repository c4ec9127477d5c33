"""``pinn-superres``: super-resolution of a 2-D Navier-Stokes velocity from ~5% scattered samples.

The study it stands for is Di Carlo et al. (2022): a multiplicative filter network (MFN)
fitted to sparse velocity samples, with a divergence-free penalty, against classical
interpolation. Data: a vorticity field drawn from the LEADS / FNO Gaussian random field on an
``n x n`` periodic grid, evolved for ``T`` time units by :func:`dynajax.systems.navier_stokes.simulate`
(``nu = 1e-3``, forcing ``xi1``, float64), turned into the divergence-free velocity
:func:`~dynajax.systems.navier_stokes.velocity_from_vorticity` (one flow per seed). A fraction
``frac`` of the grid nodes is observed at random; ``val_frac`` of those are held out to pick the
MFN checkpoint. Every method reconstructs the full ``[2, n, n]`` velocity:

* ``Cubic (Clough-Tocher)`` and ``GP (RBF kernel)``: :func:`dynajax.arch.periodic_cubic` and
  :func:`dynajax.arch.periodic_gp` on all observed samples;
* ``MFN``: a Fourier MFN (:class:`dynajax.arch.MFN`) on periodic features
  ``(cos 2 pi x, cos 2 pi y, sin 2 pi x, sin 2 pi y)`` fitted to the training samples;
* ``MFN + div-free``: the same plus ``lam * mean (div u)^2 / (2 pi)^2`` at ``n_col`` random
  collocation points redrawn each step (:func:`dynajax.arch.divergence_penalty`).

Metrics (:func:`dynajax.arch.field_errors`): relative L2 error, divergence norm, energy-spectrum
error and its log form.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.arch import MFN, divergence_penalty, field_errors, grid_points, periodic_cubic, periodic_gp
from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.systems import navier_stokes as ns
from dynajax.train import fit, init_state, make_step

METHODS = ("Cubic (Clough-Tocher)", "GP (RBF kernel)", "MFN", "MFN + div-free")


@dataclasses.dataclass(frozen=True, kw_only=True)
class PinnSuperresConfig(ExperimentConfig):
    """Protocol of the super-resolution comparison.

    Attributes:
        n: grid size of the true field; T: evolution time of the vorticity; sim_dt: solver step.
        frac: fraction of grid nodes observed; val_frac: fraction of those held out (MFN only).
        hidden, n_filters, input_scale: MFN width, number of Fourier filters, filter frequency scale.
        train_steps, lr, lr_final: Adam steps, initial learning rate, final fraction of its cosine decay.
        lam, n_col: divergence penalty weight and collocation points per step.
        n_validations: validations (checkpoint choices) over the run.
    """

    seeds: int = 2
    n: int = 64
    T: float = 2.0
    sim_dt: float = 1e-3
    frac: float = 0.05
    val_frac: float = 0.1
    hidden: int = 64
    n_filters: int = 4
    input_scale: float = 6.0
    train_steps: int = 1500
    lr: float = 2e-3
    lr_final: float = 0.05
    lam: float = 1e-2
    n_col: int = 256
    n_validations: int = 20

    def __post_init__(self):
        if min(self.n, self.hidden, self.n_filters, self.train_steps, self.n_col, self.n_validations) < 1:
            raise ValueError("n, hidden, n_filters, train_steps, n_col and n_validations must be >= 1")
        if not (0 < self.frac <= 1 and 0 < self.val_frac < 1 and round(self.frac * self.n**2) >= 4):
            raise ValueError(f"need 0 < frac <= 1 with >= 4 observed nodes and 0 < val_frac < 1, "
                             f"got frac={self.frac}, val_frac={self.val_frac}, n={self.n}")
        if not (self.T > 0 and self.sim_dt > 0 and self.lr > 0 and 0 <= self.lr_final <= 1 and self.lam > 0):
            raise ValueError("need T, sim_dt, lr, lam > 0 and 0 <= lr_final <= 1")


QUICK = PinnSuperresConfig()
# The largest training budget of this set-up (the method of Di Carlo et al. 2022 on a synthetic
# flow; no table of the paper is reproduced number for number).
FULL = PinnSuperresConfig(hidden=128, train_steps=20000, lr=1e-3, n_col=2048)


def velocity_field(key: jax.Array, n: int, T: float, dt: float) -> np.ndarray:
    """The true velocity ``[2, n, n]`` (float64) of the vorticity drawn from ``key``."""
    with jax.enable_x64(True):
        ws = ns.simulate(ns.sample_vorticity(1, key=key, size=n), n_frames=1, frame_dt=T, dt=dt)
        return np.asarray(ns.velocity_from_vorticity(ws[-1, 0]))


def _features(x):
    t = 2 * jnp.pi * x
    return jnp.concatenate([jnp.cos(t), jnp.sin(t)], axis=-1)


def mfn_fit(cfg: PinnSuperresConfig, train, val, grid, key, lam: float) -> np.ndarray:
    """Fits the MFN (with the divergence penalty when ``lam > 0``); its grid prediction ``[n*n, 2]``."""
    (pts, vals), (val_pts, val_vals) = train, val
    scale = float(np.std(vals))
    net = MFN(hidden=cfg.hidden, n_filters=cfg.n_filters, out=2, input_scale=cfg.input_scale)
    xs, ys = jnp.asarray(pts, jnp.float32), jnp.asarray(vals / scale, jnp.float32)
    xv, yv = jnp.asarray(val_pts, jnp.float32), jnp.asarray(val_vals / scale, jnp.float32)
    mse = lambda p, x, y: jnp.mean(jnp.sum((net.apply(p, _features(x)) - y) ** 2, axis=-1))

    def loss(p, col, k):
        data = mse(p, xs, ys)
        if lam == 0:
            return data, {"data": data}
        div = divergence_penalty(lambda x: net.apply(p, _features(x)), col) / (2 * math.pi) ** 2
        return data + lam * div, {"data": data, "div": div}

    opt = optax.adam(optax.cosine_decay_schedule(cfg.lr, cfg.train_steps, alpha=cfg.lr_final))
    state = init_state(net.init(key, jnp.zeros((1, 4))), opt, key=jax.random.fold_in(key, 1))
    res = fit(make_step(loss, opt), state, lambda k, step: jax.random.uniform(k, (cfg.n_col, 2)),
              n_steps=cfg.train_steps, chunk_size=max(1, cfg.train_steps // cfg.n_validations), progress=False,
              validate=jax.jit(lambda p: mse(p, xv, yv)))
    pred = jax.jit(net.apply)(res.best_params, _features(jnp.asarray(grid, jnp.float32)))
    return np.asarray(pred, np.float64) * scale


def seed_rows(cfg: PinnSuperresConfig, keys: tuple[jax.Array, ...]) -> tuple[dict, dict[str, np.ndarray]]:
    """Metrics and wall time per method, and the reconstructed fields, for one seed's flow."""
    k_flow, k_obs, k_mfn = keys
    n = cfg.n
    true = velocity_field(k_flow, n, cfg.T, cfg.sim_dt)  # [2, n, n]
    grid, flat = grid_points(n), true.reshape(2, -1).T  # [n*n, 2] each, in grid order
    n_obs = round(cfg.frac * n * n)
    idx = np.asarray(jax.random.choice(k_obs, n * n, (n_obs,), replace=False))
    va, tr = idx[:max(1, round(cfg.val_frac * n_obs))], idx[max(1, round(cfg.val_frac * n_obs)):]
    fits = {
        "Cubic (Clough-Tocher)": lambda: periodic_cubic(grid[idx], flat[idx], grid),
        "GP (RBF kernel)": lambda: periodic_gp(grid[idx], flat[idx], grid),
        "MFN": lambda: mfn_fit(cfg, (grid[tr], flat[tr]), (grid[va], flat[va]), grid, k_mfn, 0.0),
        "MFN + div-free": lambda: mfn_fit(cfg, (grid[tr], flat[tr]), (grid[va], flat[va]), grid, k_mfn, cfg.lam),
    }
    out, fields = {}, {"true": true}
    for m, f in fits.items():
        t = time.perf_counter()
        fields[m] = f().T.reshape(2, n, n)
        out[m] = {**field_errors(fields[m], true), "wall_s": time.perf_counter() - t}
    return out, fields


@register("pinn-superres", "NS velocity super-resolution from 5% samples: MFN with/without div-free penalty vs "
          "cubic and GP interpolation", configs={"quick": QUICK, "full": FULL}, budget=("train_steps",))
def run(cfg: PinnSuperresConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    streams = [seed_keys(seeds, s) for s in range(3)]
    results = [seed_rows(cfg, tuple(k[i] for k in streams)) for i in range(len(seeds))]
    per_seed = [r[0] for r in results]
    rows = [Row(m, {k: [s[m][k] for s in per_seed] for k in per_seed[0][m]}) for m in METHODS]
    mean = lambda m, k: float(np.mean([s[m][k] for s in per_seed]))
    pairs = [("the divergence penalty lowers the MFN's divergence", "div_norm", "MFN"),
             ("MFN + div-free beats cubic interpolation in relative L2", "rel_l2", "Cubic (Clough-Tocher)"),
             ("MFN + div-free beats GP interpolation in relative L2", "rel_l2", "GP (RBF kernel)"),
             ("MFN + div-free has a lower spectrum error than cubic interpolation", "spectrum_err",
              "Cubic (Clough-Tocher)")]
    checks = [Check(name, mean("MFN + div-free", k) < mean(other, k),
                    f"{k}: {mean('MFN + div-free', k):.3g} vs {mean(other, k):.3g}") for name, k, other in pairs]
    n_obs = round(cfg.frac * cfg.n**2)
    notes = (
        f"{cfg.n}x{cfg.n} periodic grid, GRF vorticity evolved T = {cfg.T} (nu = 1e-3, xi1, euler_cn dt = "
        f"{cfg.sim_dt}), one flow per seed; {n_obs} nodes ({cfg.frac:.0%}) observed, {cfg.val_frac:.0%} of them "
        f"held out to pick the MFN checkpoint (lowest validation MSE of {cfg.n_validations}). MFN: {cfg.n_filters} "
        f"Fourier filters x {cfg.hidden}, input scale {cfg.input_scale}, Adam (cosine from {cfg.lr}), "
        f"{cfg.train_steps} steps; div-free weight lambda = {cfg.lam} on {cfg.n_col} random collocation points per "
        "step. The baselines use all observed samples (train + validation). Trend checks only: no number of "
        "Di Carlo et al. (2022) is banded here."
    )
    return Result(rows=rows, checks=checks, figures=[_plot(out_dir, results[0][1])], notes=notes)


def _plot(out_dir: Path, fields: dict[str, np.ndarray]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["true", *METHODS]
    fig, axes = plt.subplots(1, len(names), figsize=(2.4 * len(names), 2.6))
    vmax = float(np.max(np.abs(fields["true"][0])))
    for ax, name in zip(axes, names):
        ax.imshow(fields[name][0].T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_title(name, fontsize=7)
        ax.set(xticks=[], yticks=[])
    fig.tight_layout()
    return save_figure(fig, out_dir / "pinn_superres.png")
