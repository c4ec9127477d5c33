"""``pinn-superres``: super-resolution of a 2-D Navier-Stokes velocity from ~5% scattered samples.

Data: a vorticity field drawn from the LEADS / FNO Gaussian random field on a ``64 x 64``
periodic grid, evolved for ``T`` time units by :func:`dynajax.systems.navier_stokes.simulate`
(``nu = 1e-3``, forcing ``xi1``, float64), turned into the divergence-free velocity
:func:`~dynajax.systems.navier_stokes.velocity_from_vorticity`. ``frac`` of the grid nodes
(5%, about 205) are observed at random; 10% of those are held out for model selection.
Every method reconstructs the full ``[2, 64, 64]`` velocity:

* ``Cubic (Clough-Tocher)``: :func:`scipy.interpolate.griddata` ``method="cubic"`` (the
  scattered-data analogue of bicubic interpolation) on the samples tiled 3 x 3 periodically,
  nearest-neighbour fill where undefined;
* ``GP (RBF kernel)``: scikit-learn's Gaussian-process regression with an RBF + white-noise
  kernel whose hyper-parameters maximise the marginal likelihood of the samples, then
  conditioned on the periodically tiled samples;
* ``MFN``: a Fourier multiplicative filter network (:class:`dynajax.arch.MFN`) on periodic
  features ``(cos 2 pi x, sin 2 pi x, cos 2 pi y, sin 2 pi y)`` fitted to the samples;
* ``MFN + div-free``: the same plus ``lambda * mean (div u)^2 / (2 pi)^2`` at ``n_col``
  random collocation points redrawn each step (:func:`dynajax.arch.divergence_penalty`).

Metrics on the grid: relative L2 error of the velocity; divergence norm
``rms(div u) / rms(curl u_true)`` (spectral derivatives, the same for every method); and the
energy-spectrum error ``sum_k |E(k) - E_true(k)| / sum_k E_true(k)`` over the shells
``1 <= k <= 21`` of the 2/3-dealiased band (``spectrum_err``), and, as a diagnostic of the
high-wavenumber tail, ``log_spectrum_err = mean_k |log10 E(k) / E_true(k)|`` over the same
shells (dominated by shells where the smooth true field has almost no energy).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.arch import MFN, divergence_penalty, energy_spectrum, spectral_divergence
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.systems import navier_stokes as ns
from dynajax.train import fit, init_state, make_step

SIZES = {
    "quick": {"n": 64, "T": 2.0, "frac": 0.05, "train_steps": 1500, "n_col": 256, "hidden": 64,
              "n_filters": 4, "input_scale": 6.0, "lam": 1e-2, "lr": 2e-3},
    "full": {"n": 64, "T": 2.0, "frac": 0.05, "train_steps": 20000, "n_col": 2048, "hidden": 128,
             "n_filters": 4, "input_scale": 6.0, "lam": 1e-2, "lr": 1e-3},
}
METHODS = ("Cubic (Clough-Tocher)", "GP (RBF kernel)", "MFN", "MFN + div-free")


def velocity_field(seed: int, n: int, T: float) -> np.ndarray:
    """The true velocity ``[2, n, n]`` (float64) for one seed."""
    with jax.enable_x64(True):
        w0 = ns.sample_vorticity(jax.random.key(seed), 1, size=n)  # [1, n, n]
        ws = ns.simulate(w0, n_frames=1, frame_dt=T, dt=1e-3)
        return np.asarray(ns.velocity_from_vorticity(ws[-1, 0]))


def grid_points(n: int) -> np.ndarray:
    """Grid nodes ``[n * n, 2]`` with ``x`` the slow axis (``indexing="ij"``)."""
    g = np.arange(n) / n
    X, Y = np.meshgrid(g, g, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], axis=1)


def _tile(pts, vals):
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    return (pts[None] + shifts[:, None]).reshape(-1, 2), np.tile(vals, (9, 1))


def cubic(pts, vals, grid) -> np.ndarray:
    """Clough-Tocher cubic interpolation of periodically tiled samples; ``[n*n, 2]``."""
    from scipy.interpolate import griddata

    tp, tv = _tile(pts, vals)
    out = griddata(tp, tv, grid, method="cubic")
    near = griddata(tp, tv, grid, method="nearest")
    return np.where(np.isnan(out), near, out)


def gp(pts, vals, grid, seed: int) -> np.ndarray:
    """GP regression (RBF + white kernel, marginal-likelihood fit) per component; ``[n*n, 2]``."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    tp, tv = _tile(pts, vals)
    out = np.zeros((grid.shape[0], vals.shape[1]))
    for c in range(vals.shape[1]):
        kernel = ConstantKernel(1.0) * RBF(0.1, (1e-3, 1.0)) + WhiteKernel(1e-4, (1e-8, 1e-1))
        fitted = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=0,
                                          random_state=seed).fit(pts, vals[:, c])
        cond = GaussianProcessRegressor(fitted.kernel_, normalize_y=True, optimizer=None).fit(tp, tv[:, c])
        out[:, c] = cond.predict(grid)
    return out


def _features(x):
    t = 2 * jnp.pi * x
    return jnp.concatenate([jnp.cos(t), jnp.sin(t)], axis=-1)


def mfn_fit(pts, vals, val_pts, val_vals, grid, sizes, seed: int, lam: float) -> tuple[np.ndarray, float]:
    """Fits the MFN (optionally with the divergence penalty); grid prediction and wall time."""
    scale = float(np.std(vals))
    net = MFN(hidden=sizes["hidden"], n_filters=sizes["n_filters"], out=2, input_scale=sizes["input_scale"])
    key = jax.random.key(seed)
    params = net.init(key, jnp.zeros((1, 4)))
    xs, ys = jnp.asarray(pts, jnp.float32), jnp.asarray(vals / scale, jnp.float32)
    xv, yv = jnp.asarray(val_pts, jnp.float32), jnp.asarray(val_vals / scale, jnp.float32)
    u = lambda p: (lambda x: net.apply(p, _features(x)))

    def loss(p, col, k):
        data = jnp.mean(jnp.sum((net.apply(p, _features(xs)) - ys) ** 2, axis=-1))
        aux = {"data": data}
        if lam > 0:
            div = divergence_penalty(u(p), col) / (2 * math.pi) ** 2
            aux["div"] = div
            return data + lam * div, aux
        return data, aux

    opt = optax.adam(optax.cosine_decay_schedule(sizes["lr"], sizes["train_steps"], alpha=0.05))
    step = make_step(loss, opt)
    sample = lambda k: jax.random.uniform(k, (sizes["n_col"], 2))
    t = time.perf_counter()
    res = fit(step, init_state(params, opt, jax.random.fold_in(key, 1)), sample, n_steps=sizes["train_steps"],
              chunk_size=max(1, sizes["train_steps"] // 20), progress=False,
              validate=jax.jit(lambda p: jnp.mean(jnp.sum((net.apply(p, _features(xv)) - yv) ** 2, axis=-1))))
    wall = time.perf_counter() - t
    pred = np.asarray(jax.jit(net.apply)(res.best_params, _features(jnp.asarray(grid, jnp.float32))))
    return pred.astype(np.float64) * scale, wall


def metrics(pred_grid: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Relative L2, normalised divergence and log-spectrum error of a ``[2, n, n]`` prediction."""
    n = true.shape[-1]
    with jax.enable_x64(True):
        curl = ns.vorticity_from_velocity(true)
        div = spectral_divergence(pred_grid)
        Ep, Et = np.asarray(energy_spectrum(pred_grid)), np.asarray(energy_spectrum(true))
    kmax = int((2 / 3) * (n // 2))
    ks = np.arange(1, kmax + 1)
    return {
        "rel_l2": float(np.linalg.norm(pred_grid - true) / np.linalg.norm(true)),
        "div_norm": float(np.sqrt(np.mean(np.asarray(div) ** 2)) / np.sqrt(np.mean(np.asarray(curl) ** 2))),
        "spectrum_err": float(np.sum(np.abs(Ep[ks] - Et[ks])) / np.sum(Et[ks])),
        "log_spectrum_err": float(np.mean(np.abs(np.log10(np.maximum(Ep[ks], 1e-300) / Et[ks])))),
    }


def seed_rows(sizes: dict, seed: int) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    n = sizes["n"]
    true = velocity_field(seed, n, sizes["T"])  # [2, n, n]
    grid = grid_points(n)
    flat = true.reshape(2, -1).T  # [n*n, 2] in grid order
    rng = np.random.default_rng(seed)
    n_obs = round(sizes["frac"] * n * n)
    idx = rng.choice(n * n, n_obs, replace=False)
    n_val = max(1, n_obs // 10)
    tr, va = idx[n_val:], idx[:n_val]
    to_grid = lambda p: p.T.reshape(2, n, n)
    preds, walls = {}, {}
    t = time.perf_counter()
    preds["Cubic (Clough-Tocher)"] = to_grid(cubic(grid[idx], flat[idx], grid))
    walls["Cubic (Clough-Tocher)"] = time.perf_counter() - t
    t = time.perf_counter()
    preds["GP (RBF kernel)"] = to_grid(gp(grid[idx], flat[idx], grid, seed))
    walls["GP (RBF kernel)"] = time.perf_counter() - t
    for name, lam in (("MFN", 0.0), ("MFN + div-free", sizes["lam"])):
        p, walls[name] = mfn_fit(grid[tr], flat[tr], grid[va], flat[va], grid, sizes, seed, lam)
        preds[name] = to_grid(p)
    out = {m: {**metrics(preds[m], true), "wall_s": walls[m]} for m in METHODS}
    return out, {"true": true, **preds}


@register(
    "pinn-superres",
    "NS velocity super-resolution from 5% samples: MFN with/without div-free penalty vs cubic and GP interpolation",
    default_seeds=2,
)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    sizes = SIZES[scale]
    results = [seed_rows(sizes, s) for s in range(seeds)]
    per_seed = [r[0] for r in results]
    rows = [Row(m, {k: [s[m][k] for s in per_seed] for k in per_seed[0][m]}, {}) for m in METHODS]

    def mean(m, k):
        return float(np.mean([s[m][k] for s in per_seed]))

    checks = [
        Check("the divergence penalty lowers the MFN's divergence",
              mean("MFN + div-free", "div_norm") < mean("MFN", "div_norm"),
              f"{mean('MFN + div-free', 'div_norm'):.3g} vs {mean('MFN', 'div_norm'):.3g}"),
        Check("MFN + div-free beats cubic interpolation in relative L2",
              mean("MFN + div-free", "rel_l2") < mean("Cubic (Clough-Tocher)", "rel_l2"),
              f"{mean('MFN + div-free', 'rel_l2'):.3f} vs {mean('Cubic (Clough-Tocher)', 'rel_l2'):.3f}"),
        Check("MFN + div-free beats GP interpolation in relative L2",
              mean("MFN + div-free", "rel_l2") < mean("GP (RBF kernel)", "rel_l2"),
              f"{mean('MFN + div-free', 'rel_l2'):.3f} vs {mean('GP (RBF kernel)', 'rel_l2'):.3f}"),
        Check("MFN + div-free has a lower spectrum error than cubic interpolation",
              mean("MFN + div-free", "spectrum_err") < mean("Cubic (Clough-Tocher)", "spectrum_err"),
              f"{mean('MFN + div-free', 'spectrum_err'):.3f} vs {mean('Cubic (Clough-Tocher)', 'spectrum_err'):.3f}"),
    ]
    notes = (
        f"{sizes['n']}x{sizes['n']} periodic grid, GRF vorticity evolved T = {sizes['T']} (nu = 1e-3, xi1, "
        f"euler_cn dt = 1e-3), {sizes['frac']:.0%} of nodes observed, 10% of those held out to pick the MFN "
        f"checkpoint (lowest validation MSE). MFN: Fourier filters, {sizes['n_filters']} filters x "
        f"{sizes['hidden']}, input scale {sizes['input_scale']}, Adam (cosine from {sizes['lr']}), "
        f"{sizes['train_steps']} steps; div-free weight lambda = {sizes['lam']} on {sizes['n_col']} random "
        "collocation points per step. The baselines use all observed samples (train + validation). "
        "The source slides give no numbers: references are empty."
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
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, out_dir / "pinn_superres.png")
