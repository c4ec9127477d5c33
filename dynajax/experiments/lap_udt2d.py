"""``lap-udt2d`` (Ayed 2022 thesis, §4.4 Fig. 4.3 / 4.6): 2-D translation vs initialisation gain.

A residual flow of ``K`` Euler blocks (``dt = 1/K``, tanh MLP, orthogonal kernels times the
gain ``sigma``) is trained to push ``alpha`` onto ``beta`` with an RBF MMD discriminator,
either alone ("MMD only", the CycleGAN-like baseline) or with the kinetic energy ``sum_k
E||r_k||^2 / dt`` and the weight ``1 / lambda_i`` on the discrepancy, ``lambda_i`` decaying
linearly from 1 to ``lam_end`` (Algorithm 4). Two problems with a known quadratic-cost
Monge map: shifted unit disks (``T*(x) = x + (3, 0)``, ``W2^2 = 9``) and Gaussian ->
Gaussian (affine map in closed form). Every (gain, seed) pair trains in one vmapped
program, with the same keys for both arms (paired seeds). The thesis figures give no
numbers; the kinetic energy of the penalised flow is band-checked against the analytic
``W2^2`` (the action of the optimal constant-speed flow when ``K dt = 1``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, save_figure
from dynajax.nn.initializers import orthogonal
from dynajax.train import init_state, make_step
from dynajax.transport.diagnostics import kinetic_energy, monge_map_distance, optimality_gap, transport_cost
from dynajax.transport.least_action import (
    ResidualFlow, VelocityMLP, linear_decay, mmd_discrepancy, scale_kernels, udt_loss)
from dynajax.transport.ot import gaussian_monge_map, gaussian_w2, mmd2

PROBLEMS = ("disks", "gaussians")
ARMS = ("MMD only", "MMD + transport")
FLAT_RATIO, KE_TOL = 1.25, 0.05  # trend threshold; relative band of KE / W2^2 around 1
# The problems: disks shifted by (SHIFT, 0); Gaussian target N(G_MEAN, G_COV) from N(0, I).
SHIFT = 3.0
G_MEAN = np.array([SHIFT, 1.0])
G_COV = np.array([[2.0, 0.6], [0.6, 0.5]])


@dataclasses.dataclass(frozen=True, kw_only=True)
class LapUdt2dConfig(ExperimentConfig):
    """Protocol of the 2-D translation experiment.

    Attributes:
        steps, batch: Adam steps and samples per distribution per step.
        gains: initialisation gains ``sigma`` of the sweep (> 0).
        problems: from :data:`PROBLEMS`.
        n_test, test_seed: fresh test samples per distribution and their seed (the same for
            every model); n_gap: points of the exact-OT optimality ratio (at most ``n_test``).
        n_blocks, width: Euler blocks ``K`` (``dt = 1/K``) and hidden width.
        lr, betas: Adam step size and betas.
        lam_end, decay_fraction: ``lambda`` decays linearly 1 -> ``lam_end`` over this
            fraction of the steps, then stays.
        bandwidths: RBF bandwidths of the MMD discriminator.
    """

    steps: int = 6000
    batch: int = 256
    gains: tuple[float, ...] = (0.01, 0.1, 1.0, 3.0)
    problems: tuple[str, ...] = PROBLEMS
    n_test: int = 2000
    test_seed: int = 12345
    n_gap: int = 500
    n_blocks: int = 9
    width: int = 64
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    lam_end: float = 1e-3
    decay_fraction: float = 0.6
    bandwidths: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)

    def __post_init__(self):
        if self.steps < 1 or self.batch < 2 or self.n_test < 2 or self.n_gap < 2:
            raise ValueError(f"need steps >= 1 and batch, n_test, n_gap >= 2; got {self.steps}, "
                             f"{self.batch}, {self.n_test}, {self.n_gap}")
        if len(self.gains) < 2 or min(self.gains) <= 0:
            raise ValueError(f"gains: at least two (the checks compare the ends), all > 0; got {self.gains}")
        if not self.problems or not set(self.problems) <= set(PROBLEMS):
            raise ValueError(f"problems must be a non-empty subset of {PROBLEMS}, got {self.problems}")
        if not 0 < self.lam_end <= 1 or not 0 < self.decay_fraction <= 1:
            raise ValueError(f"need 0 < lam_end <= 1 and 0 < decay_fraction <= 1; got {self.lam_end}, "
                             f"{self.decay_fraction}")


QUICK = LapUdt2dConfig(seeds=3, steps=1500, batch=128, n_test=1000, gains=(0.01, 1.0, 3.0))
# Thesis Fig. 4.3 / 4.6 protocol (Ayed 2022 §4.4): the gain sweep at the full budget.
FULL = LapUdt2dConfig(seeds=3)


def sample(problem: str, key, n: int, which: str):
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


def train_arms(cfg: LapUdt2dConfig, problem: str, seeds: tuple[int, ...]):
    """Trains both arms for every (gain, seed) in one vmapped program (paired keys).

    Returns the flow and stacked params ``[2 * G * S, ...]``: arm-major (``ARMS`` order),
    then gain, then seed. The "MMD only" arm minimises ``D``; the other ``KE + D / lambda``.
    """
    flow = ResidualFlow(VelocityMLP((cfg.width,), "tanh", orthogonal(1.0)), n_blocks=cfg.n_blocks,
                        dt=1.0 / cfg.n_blocks)
    disc = mmd_discrepancy(cfg.bandwidths)
    opt = optax.adam(cfg.lr, b1=cfg.betas[0], b2=cfg.betas[1])

    def loss_fn(params, batch_xy, key):
        x, y, lam, w = batch_xy
        _, aux = udt_loss(flow, params, x, y, lam, disc)
        # w = 0: D alone (lam fixed to 1); w = 1: KE + D / lam (Algorithm 4)
        return w * aux["kinetic"] + aux["discrepancy"] / lam, aux

    step = make_step(loss_fn, opt)
    n_arms, n_seeds, n_decay = len(ARMS), len(seeds), max(1, int(cfg.decay_fraction * cfg.steps))
    g = jnp.tile(jnp.repeat(jnp.asarray(cfg.gains, jnp.float32), n_seeds), n_arms)
    w = jnp.repeat(jnp.arange(n_arms, dtype=jnp.float32), len(cfg.gains) * n_seeds)
    keys = jnp.tile(seed_keys(seeds), (n_arms * len(cfg.gains),))

    def init(key, gain):
        params = scale_kernels(flow.init(jax.random.fold_in(key, 1), jnp.zeros((2, 2))), gain)
        return init_state(params, opt, key=jax.random.fold_in(key, 2))

    def train(state, w):
        def body(st, _):
            kx, ky = jax.random.split(jax.random.fold_in(st.key, st.step))
            lam = jnp.where(w > 0, linear_decay(st.step, n_decay, 1.0, cfg.lam_end), 1.0)
            xy = (sample(problem, kx, cfg.batch, "source"), sample(problem, ky, cfg.batch, "target"), lam, w)
            return step(st, xy)

        return jax.lax.scan(body, state, None, length=cfg.steps)

    states, _ = jax.jit(jax.vmap(train))(jax.vmap(init)(keys, g), w)
    return flow, states.params


def evaluate(cfg: LapUdt2dConfig, problem: str, flow: ResidualFlow, params) -> dict[str, np.ndarray]:
    """Per (arm, gain, seed) metrics on fresh samples (the same test samples for every model)."""
    kx, ky = jax.random.split(jax.random.key(cfg.test_seed))
    x, y = sample(problem, kx, cfg.n_test, "source"), sample(problem, ky, cfg.n_test, "target")
    tmap, w2 = monge_map(problem)
    ref = tmap(x)

    def one(p):
        tx, res, _ = flow.residuals(p, x)
        sx = flow.inverse(p, tx)
        return {
            "monge_distance": monge_map_distance(tx, ref),
            "transport_cost": transport_cost(x, tx),
            "kinetic_energy": kinetic_energy(residuals=res, dt=flow.dt),
            "mmd": mmd2(tx, y, cfg.bandwidths),
            "inverse_error": jnp.sqrt(jnp.mean(jnp.sum((sx - x) ** 2, -1))),
            "tx": tx,
        }

    out = jax.jit(jax.vmap(one))(params)
    n_gap = min(cfg.n_test, cfg.n_gap)
    gaps = [float(optimality_gap(x[:n_gap], t[:n_gap]).ratio) for t in np.asarray(out["tx"])]
    res = {k: np.asarray(v) for k, v in out.items() if k != "tx"}
    res["optimality_ratio"] = np.asarray(gaps)
    res["kinetic_over_w2"] = res["kinetic_energy"] / w2
    res["w2_squared"] = np.full(len(gaps), w2)
    res["mmd_alpha_beta"] = np.full(len(gaps), float(mmd2(x, y, cfg.bandwidths)))
    return res


def trajectory_figure(problem, flow, params_by_arm, gains, n_seeds, out_dir: Path) -> str:
    """Particles through the blocks, first seed of every (arm, gain)."""
    import matplotlib.pyplot as plt

    x = sample(problem, jax.random.key(7), 60, "source")
    ref = np.asarray(monge_map(problem)[0](x))
    fig, axes = plt.subplots(2, len(gains), figsize=(3.2 * len(gains), 6.4), squeeze=False)
    for i, arm in enumerate(ARMS):
        for j, gain in enumerate(gains):
            p = jax.tree_util.tree_map(lambda a, j=j: a[j * n_seeds], params_by_arm[arm])
            st = np.asarray(flow.residuals(p, x)[2])
            ax = axes[i, j]
            ax.plot(st[:, :, 0], st[:, :, 1], "-", lw=0.6, color="tab:blue", alpha=0.6)
            ax.scatter(st[0, :, 0], st[0, :, 1], s=4, c="k")
            ax.scatter(st[-1, :, 0], st[-1, :, 1], s=4, c="tab:red")
            ax.scatter(ref[:, 0], ref[:, 1], s=4, marker="x", c="tab:green")
            ax.set_title(f"{arm}, gain {gain:g}", fontsize=9)
            ax.set_aspect("equal")
    fig.suptitle(f"{problem}: particles through the {flow.n_blocks} blocks (green x: Monge map)")
    return save_figure(fig, out_dir / f"trajectories_{problem}.png")


def cost_figure(metrics, gains, out_dir: Path) -> str:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for problem, per_arm in metrics.items():
        for arm, m in per_arm.items():
            for ax, key in zip(axes, ("monge_distance", "transport_cost")):
                v = m[key].reshape(len(gains), -1)
                ax.errorbar(gains, v.mean(1), v.std(1), marker="o", capsize=3, label=f"{problem}: {arm}")
                ax.set_xscale("log")
                ax.set_xlabel("initialisation gain")
                ax.set_ylabel(key)
    axes[0].legend(fontsize=7)
    return save_figure(fig, out_dir / "gain_sweep.png")


@register("lap-udt2d", "2-D translation (disks, Gaussians): MMD vs MMD + transport cost across init gains",
          configs={"quick": QUICK, "full": FULL}, budget=("steps",))
def run(cfg: LapUdt2dConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    gains, n_seeds = cfg.gains, len(seeds)
    rows, checks, figures = [], [], []
    all_metrics: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for problem in cfg.problems:
        flow, params = train_arms(cfg, problem, seeds)
        m_all = evaluate(cfg, problem, flow, params)
        per = len(gains) * n_seeds
        by_arm, all_metrics[problem] = {}, {}
        for i, arm in enumerate(ARMS):
            by_arm[arm] = jax.tree_util.tree_map(lambda a, i=i: a[i * per:(i + 1) * per], params)
            m = all_metrics[problem][arm] = {k: v[i * per:(i + 1) * per] for k, v in m_all.items()}
            for j, gain in enumerate(gains):
                rows.append(Row(f"{problem} {arm} gain={gain:g}",
                                {k: v[j * n_seeds:(j + 1) * n_seeds].tolist() for k, v in m.items()},
                                {"transport_cost": None, "monge_distance": None,
                                 "kinetic_over_w2": 1.0 if i else None}))
        figures.append(trajectory_figure(problem, flow, by_arm, gains, n_seeds, out_dir))
        van, pen = (all_metrics[problem][a] for a in ARMS)

        def by_gain(m, key):
            return m[key].reshape(len(gains), n_seeds)

        dv, cv = by_gain(van, "monge_distance"), by_gain(van, "transport_cost")
        grows = (dv.mean(1)[-1] > dv.mean(1)[0] and cv.mean(1)[-1] > cv.mean(1)[0]
                 and dv.std(1)[-1] >= dv.std(1)[0])
        checks.append(Check(
            f"{problem}: without the penalty, distance to Monge map and cost grow with the gain", bool(grows),
            f"distance by gain {np.round(dv.mean(1), 3).tolist()} (std {np.round(dv.std(1), 3).tolist()}), "
            f"cost {np.round(cv.mean(1), 3).tolist()}"))
        cp, dp = by_gain(pen, "transport_cost").mean(1), by_gain(pen, "monge_distance").mean(1)
        checks.append(Check(
            f"{problem}: with the penalty, cost flat in the gain (max/min <= {FLAT_RATIO})",
            bool(cp.max() / cp.min() <= FLAT_RATIO and dp.max() < dv.mean(1)[-1]),
            f"cost by gain {np.round(cp, 3).tolist()}, distance {np.round(dp, 3).tolist()}"))
        ke = by_gain(pen, "kinetic_over_w2").mean(1)
        checks += [band(f"{problem} gain {gain:g}: with the penalty, kinetic energy / W2^2 "
                        f"(analytic 1, W2^2 = {van['w2_squared'][0]:.3f})", ke[j], 1.0, KE_TOL, "rel")
                   for j, gain in enumerate(gains)]
        mp, mv, m0 = pen["mmd"].mean(), van["mmd"].mean(), van["mmd_alpha_beta"][0]
        checks.append(Check(
            f"{problem}: with the penalty the target is still fitted (MMD < 5% of MMD(alpha, beta))",
            bool(mp < 0.05 * m0), f"MMD^2 penalised {mp:.2e}, MMD only {mv:.2e}, before training {m0:.2e}"))
    figures.append(cost_figure(all_metrics, gains, out_dir))
    notes = (
        "Thesis Fig. 4.3 gives no numbers (figures only): the band checks compare the kinetic "
        f"energy of the penalised flow with the analytic W2^2 (relative band {KE_TOL:g}). Metrics on "
        f"{cfg.n_test} fresh test samples (seed {cfg.test_seed}); optimality_ratio = E||T(x)-x||^2 / "
        f"exact W2^2(x, T(x)) on {min(cfg.n_test, cfg.n_gap)} points; inverse_error = RMS of "
        f"reversed-Euler(T(x)) - x. Discriminator: RBF MMD (bandwidths {cfg.bandwidths}), not a GAN "
        f"critic. {cfg.n_blocks} blocks of width {cfg.width}; Adam lr {cfg.lr:g}, betas {cfg.betas}; "
        f"{cfg.steps} steps, batch {cfg.batch}, {n_seeds} paired seeds, gains {gains}; lambda 1 -> "
        f"{cfg.lam_end:g} linearly over {cfg.decay_fraction:.0%} of the steps."
    )
    return Result(rows=rows, checks=checks, figures=figures, notes=notes)
