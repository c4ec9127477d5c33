"""``lap-udt2d`` (thesis §4.4, Fig. 4.3 / 4.6; spec E1): 2-D translation vs initialisation gain.

A residual flow of ``K = 9`` Euler blocks (``dt = 1/9``, tanh MLP width 64, orthogonal
kernels times the gain ``sigma``) is trained to push ``alpha`` onto ``beta`` with an RBF
MMD discriminator, either alone ("MMD only", the CycleGAN-like baseline) or with the
kinetic energy ``sum_k E||r_k||^2 / dt`` and the weight ``1 / lambda_i`` on the
discrepancy, ``lambda_i`` decaying linearly from 1 to 1e-3 (Algorithm 4). Two problems with
a known quadratic-cost Monge map: shifted unit disks (``T*(x) = x + (3, 0)``, ``W2^2 = 9``)
and Gaussian -> Gaussian (affine map in closed form). Every (gain, seed) pair trains in one
vmapped program, with the same keys for both arms (paired seeds).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.nn.initializers import orthogonal
from dynajax.train import init_state, make_step
from dynajax.transport.diagnostics import (
    kinetic_energy,
    monge_map_distance,
    optimality_gap,
    transport_cost,
)
from dynajax.transport.least_action import (
    ResidualFlow,
    VelocityMLP,
    linear_decay,
    mmd_discrepancy,
    udt_loss,
)
from dynajax.transport.ot import gaussian_monge_map, gaussian_w2, mmd2

SIZES = {
    "quick": {"steps": 1500, "batch": 128, "n_test": 1000, "gains": (0.01, 1.0, 3.0)},
    "full": {"steps": 6000, "batch": 256, "n_test": 2000, "gains": (0.01, 0.1, 1.0, 3.0)},
}
K, WIDTH, SHIFT = 9, 64, 3.0
LR, BETAS, LAM_END = 1e-3, (0.5, 0.999), 1e-3
DECAY_FRACTION = 0.6  # lambda reaches LAM_END after this fraction of the steps, then stays
BANDWIDTHS = (0.1, 0.3, 1.0, 3.0)
ARMS = ("MMD only", "MMD + transport")
FLAT_RATIO, KE_TOL = 1.25, 0.05

# Gaussian -> Gaussian target (source N(0, I)).
G_MEAN = np.array([SHIFT, 1.0])
G_COV = np.array([[2.0, 0.6], [0.6, 0.5]])


def _sample(problem: str, key, n: int, which: str):
    if problem == "disks":
        k1, k2 = jax.random.split(key)
        r = jnp.sqrt(jax.random.uniform(k1, (n,)))
        th = 2 * jnp.pi * jax.random.uniform(k2, (n,))
        x = jnp.stack([r * jnp.cos(th), r * jnp.sin(th)], -1)
        return x + jnp.array([SHIFT, 0.0]) if which == "target" else x
    z = jax.random.normal(key, (n, 2))
    if which == "source":
        return z
    return jnp.asarray(G_MEAN, jnp.float32) + z @ jnp.asarray(np.linalg.cholesky(G_COV).T, jnp.float32)


def monge_map(problem: str):
    """The quadratic-cost Monge map ``alpha -> beta`` and ``W2^2(alpha, beta)``."""
    if problem == "disks":
        return (lambda x: x + jnp.array([SHIFT, 0.0])), SHIFT**2
    m0, s0 = jnp.zeros(2), jnp.eye(2)
    amap = gaussian_monge_map(m0, s0, jnp.asarray(G_MEAN), jnp.asarray(G_COV))
    w2 = float(gaussian_w2(m0, s0, jnp.asarray(G_MEAN), jnp.asarray(G_COV)))
    return amap, w2


def make_flow() -> ResidualFlow:
    return ResidualFlow(VelocityMLP((WIDTH,), "tanh", orthogonal(1.0)), n_blocks=K, dt=1.0 / K)


def _scale_kernels(params, gain):
    return jax.tree_util.tree_map_with_path(
        lambda p, a: a * gain if "kernel" in jax.tree_util.keystr(p) else a, params
    )


def train_arms(problem: str, gains, seeds: int, steps: int, batch: int):
    """Trains both arms for every (gain, seed) in one vmapped program (paired keys).

    Returns the flow and stacked params ``[2 * G * S, ...]``: arm-major (``ARMS`` order),
    then gain, then seed. The "MMD only" arm minimises ``D``; the other ``KE + D / lambda``.
    """
    flow = make_flow()
    disc = mmd_discrepancy(BANDWIDTHS)
    opt = optax.adam(LR, b1=BETAS[0], b2=BETAS[1])

    def loss_fn(params, batch_xy, key):
        x, y, lam, w = batch_xy
        _, aux = udt_loss(flow, params, x, y, lam, disc)
        # w = 0: D alone (lam fixed to 1); w = 1: KE + D / lam (Algorithm 4)
        loss = w * aux["kinetic"] + aux["discrepancy"] / lam
        return loss, aux

    step = make_step(loss_fn, opt)
    n_arms = len(ARMS)
    g = jnp.tile(jnp.repeat(jnp.asarray(gains, jnp.float32), seeds), n_arms)
    w = jnp.repeat(jnp.arange(n_arms, dtype=jnp.float32), len(gains) * seeds)
    keys = jnp.tile(jax.random.split(jax.random.key(0), seeds), (n_arms * len(gains),))
    x0 = jnp.zeros((2, 2))

    def init(key, gain):
        params = _scale_kernels(flow.init(jax.random.fold_in(key, 1), x0), gain)
        return init_state(params, opt, jax.random.fold_in(key, 2))

    def run(state, w):
        def body(st, _):
            kx, ky = jax.random.split(jax.random.fold_in(st.key, st.step))
            lam = linear_decay(st.step, max(1, int(DECAY_FRACTION * steps)), 1.0, LAM_END)
            lam = jnp.where(w > 0, lam, 1.0)
            xy = (_sample(problem, kx, batch, "source"), _sample(problem, ky, batch, "target"),
                  lam, w)
            return step(st, xy)

        return jax.lax.scan(body, state, None, length=steps)

    states = jax.vmap(init)(keys, g)
    states, _ = jax.jit(jax.vmap(run))(states, w)
    return flow, states.params


def evaluate(problem: str, flow: ResidualFlow, params, n_test: int) -> dict[str, np.ndarray]:
    """Per (gain, seed) metrics on fresh samples (the same test samples for every model)."""
    kx, ky = jax.random.split(jax.random.key(12345))
    x = _sample(problem, kx, n_test, "source")
    y = _sample(problem, ky, n_test, "target")
    tmap, w2 = monge_map(problem)
    ref = tmap(x)

    def one(p):
        tx, res, _ = flow.residuals(p, x)
        sx = flow.inverse(p, tx)
        return {
            "monge_distance": monge_map_distance(tx, ref),
            "transport_cost": transport_cost(x, tx),
            "kinetic_energy": kinetic_energy(residuals=res, dt=flow.dt),
            "mmd": mmd2(tx, y, BANDWIDTHS),
            "inverse_error": jnp.sqrt(jnp.mean(jnp.sum((sx - x) ** 2, -1))),
            "tx": tx,
        }

    out = jax.jit(jax.vmap(one))(params)
    n_gap = min(n_test, 500)
    gaps = [float(optimality_gap(x[:n_gap], t[:n_gap]).ratio) for t in np.asarray(out["tx"])]
    res = {k: np.asarray(v) for k, v in out.items() if k != "tx"}
    res["optimality_ratio"] = np.asarray(gaps)
    res["kinetic_over_w2"] = res["kinetic_energy"] / w2
    res["w2_squared"] = np.full(len(gaps), w2)
    res["mmd_alpha_beta"] = np.full(len(gaps), float(mmd2(x, y, BANDWIDTHS)))
    return res


def _trajectory_figure(problem, flows_params, gains, seeds, out_dir: Path) -> str:
    import matplotlib.pyplot as plt

    flow, _ = flows_params[ARMS[0]]
    x = _sample(problem, jax.random.key(7), 60, "source")
    tmap, _ = monge_map(problem)
    fig, axes = plt.subplots(2, len(gains), figsize=(3.2 * len(gains), 6.4), squeeze=False)
    for i, arm in enumerate(ARMS):
        _, params = flows_params[arm]
        for j, gain in enumerate(gains):
            p = jax.tree_util.tree_map(lambda a, j=j: a[j * seeds], params)
            _, _, st = flow.residuals(p, x)
            st = np.asarray(st)
            ax = axes[i, j]
            for n in range(st.shape[1]):
                ax.plot(st[:, n, 0], st[:, n, 1], "-", lw=0.6, color="tab:blue", alpha=0.6)
            ax.scatter(st[0, :, 0], st[0, :, 1], s=4, c="k")
            ax.scatter(st[-1, :, 0], st[-1, :, 1], s=4, c="tab:red")
            ref = np.asarray(tmap(x))
            ax.scatter(ref[:, 0], ref[:, 1], s=4, marker="x", c="tab:green")
            ax.set_title(f"{arm}, gain {gain:g}", fontsize=9)
            ax.set_aspect("equal")
    fig.suptitle(f"{problem}: particles through the 9 blocks (green x: Monge map)")
    return save_figure(fig, out_dir / f"trajectories_{problem}.png")


def _cost_figure(metrics, gains, out_dir: Path) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for problem, per_arm in metrics.items():
        for arm, m in per_arm.items():
            for ax, key in zip(axes, ("monge_distance", "transport_cost")):
                v = m[key].reshape(len(gains), -1)
                ax.errorbar(gains, v.mean(1), v.std(1), marker="o", capsize=3,
                            label=f"{problem}: {arm}")
                ax.set_xscale("log")
                ax.set_xlabel("initialisation gain")
                ax.set_ylabel(key)
    axes[0].legend(fontsize=7)
    return save_figure(fig, out_dir / "gain_sweep.png")


@register("lap-udt2d", "2-D translation (disks, Gaussians): MMD vs MMD + transport cost across init gains")
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    cfg = SIZES[scale]
    gains = tuple(cfg["gains"])
    rows, checks, figures = [], [], []
    all_metrics: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for problem in cfg.get("problems", ("disks", "gaussians")):
        trained = {}
        all_metrics[problem] = {}
        flow, params = train_arms(problem, gains, seeds, cfg["steps"], cfg["batch"])
        m_all = evaluate(problem, flow, params, cfg["n_test"])
        per = len(gains) * seeds
        for i, arm in enumerate(ARMS):
            sl_arm = slice(i * per, (i + 1) * per)
            trained[arm] = (flow, jax.tree_util.tree_map(lambda a, sl=sl_arm: a[sl], params))
            m = {k: v[sl_arm] for k, v in m_all.items()}
            all_metrics[problem][arm] = m
            for j, gain in enumerate(gains):
                sl = slice(j * seeds, (j + 1) * seeds)
                rows.append(Row(f"{problem} {arm} gain={gain:g}",
                                {k: v[sl].tolist() for k, v in m.items()},
                                {"transport_cost": None, "monge_distance": None}))
        figures.append(_trajectory_figure(problem, trained, gains, seeds, out_dir))
        van, pen = (all_metrics[problem][a] for a in ARMS)

        def by_gain(m, key):
            return m[key].reshape(len(gains), seeds)

        dv, cv = by_gain(van, "monge_distance"), by_gain(van, "transport_cost")
        grows = (dv.mean(1)[-1] > dv.mean(1)[0] and cv.mean(1)[-1] > cv.mean(1)[0]
                 and dv.std(1)[-1] >= dv.std(1)[0])
        checks.append(Check(
            f"{problem}: without the penalty, distance to Monge map and cost grow with the gain",
            bool(grows),
            f"distance by gain {np.round(dv.mean(1), 3).tolist()} (std {np.round(dv.std(1), 3).tolist()}), "
            f"cost {np.round(cv.mean(1), 3).tolist()}"))
        cp = by_gain(pen, "transport_cost").mean(1)
        dp = by_gain(pen, "monge_distance").mean(1)
        flat = cp.max() / cp.min() <= FLAT_RATIO and dp.max() < dv.mean(1)[-1]
        checks.append(Check(
            f"{problem}: with the penalty, cost flat in the gain (max/min <= {FLAT_RATIO})",
            bool(flat),
            f"cost by gain {np.round(cp, 3).tolist()}, distance {np.round(dp, 3).tolist()}"))
        ke = by_gain(pen, "kinetic_over_w2").mean(1)
        checks.append(Check(
            f"{problem}: with the penalty, kinetic energy within {KE_TOL:.0%} of W2^2",
            bool(np.all(np.abs(ke - 1) <= KE_TOL)),
            f"KE / W2^2 by gain {np.round(ke, 3).tolist()} (W2^2 = {van['w2_squared'][0]:.3f})"))
        mp, mv, m0 = pen["mmd"].mean(), van["mmd"].mean(), van["mmd_alpha_beta"][0]
        checks.append(Check(
            f"{problem}: with the penalty the target is still fitted (MMD < 5% of MMD(alpha, beta))",
            bool(mp < 0.05 * m0),
            f"MMD^2 penalised {mp:.2e}, MMD only {mv:.2e}, before training {m0:.2e}"))
    figures.append(_cost_figure(all_metrics, gains, out_dir))
    notes = (
        "Thesis Fig. 4.3 gives no numbers (figures only), so references are null. Metrics on "
        f"fresh test samples; optimality_ratio = E||T(x)-x||^2 / exact W2^2(x, T(x)) on 500 "
        f"points; inverse_error = RMS of reversed-Euler(T(x)) - x. Discriminator: RBF MMD "
        f"(bandwidths {BANDWIDTHS}), not a GAN critic. Adam lr {LR}, betas {BETAS}; "
        f"{cfg['steps']} steps, batch {cfg['batch']}; lambda 1 -> {LAM_END} linearly."
    )
    return Result(rows=rows, checks=checks, figures=figures, notes=notes)
