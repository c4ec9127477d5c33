"""``mfg-crowd``: crowd motion around an obstacle, a mean-field game in growing dimension.

Protocol (after Ruthotto et al., PNAS 2020, Sec. 4 "crowd motion" and its d-scaling study): agents
start at ``rho_0 = N((0, 3), 0.3 I)`` in the first two coordinates and must reach
``rho_1 = N((0, -3), 0.3 I)`` there, past an obstacle: the running cost is ``lambda_P Q(x)``
with ``Q`` a Gaussian bump at the origin of the plane (:func:`dynajax.cnf.obstacle`) plus the
entropy congestion ``lambda_E E log rho`` (:func:`dynajax.cnf.entropy_congestion`), the terminal
cost ``alpha_G KL(rho(1) || rho_1)`` (:func:`dynajax.cnf.kl_terminal`). The other ``d - 2``
coordinates are standard Gaussian in ``rho_0`` and ``rho_1`` and carry no cost. The problem is
the same in every ``d``: the objective and the agents' planar trajectories must agree across
``d`` (the paper's claim), with the HJB residual reported. The weights here are this module's,
not the paper's: the run checks the agreement across ``d``, not the paper's values.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.cnf import Potential, characteristics, entropy_congestion, kl_terminal, mfg_objective, obstacle
from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row
from dynajax.train import fit, init_state, make_step
from dynajax.transport import gaussian_log_density

OBJ_SPREAD = 0.05  # relative spread of the objective across d
PATH_TOL = 0.1  # RMS distance of planar paths to the d=2 paths, relative to the 6-unit travel


@dataclasses.dataclass(frozen=True, kw_only=True)
class MfgCrowdConfig(ExperimentConfig):
    """Problem and training sizes.

    Attributes:
        dims: dimensions ``d``.
        obstacle_height, obstacle_std: the bump ``Q = h exp(-|x_{1:2}|^2 / (2 std^2))``.
        lambda_p, lambda_e, alpha_g, alpha_hjb: cost weights.
        width, n_layers, n_steps, batch, lr, lr_halving, nt: potential and training.
        n_eval: agents in the evaluation.
    """

    dims: tuple[int, ...] = (2, 10)
    obstacle_height: float = 5.0
    obstacle_std: float = 0.8
    lambda_p: float = 1.0
    lambda_e: float = 0.01
    alpha_g: float = 10.0
    alpha_hjb: tuple[float, float] = (1.0, 0.0)
    width: int = 32
    n_layers: int = 2
    n_steps: int = 600
    batch: int = 512
    lr: float = 0.01
    lr_halving: int = 250
    nt: int = 8
    n_eval: int = 2000


QUICK = MfgCrowdConfig(seeds=1)
# PNAS 2020 d-scaling: d = 2, 10, 50, 100; longer training.
FULL = MfgCrowdConfig(seeds=2, dims=(2, 10, 50, 100), n_steps=2000, lr_halving=600, batch=1024)


def solve(cfg: MfgCrowdConfig, d: int, key, x2_eval):
    m0 = jnp.zeros(d).at[1].set(3.0)
    m1 = jnp.zeros(d).at[1].set(-3.0)
    std = jnp.ones(d).at[:2].set(jnp.sqrt(0.3))
    log_rho0, log_rho1 = gaussian_log_density(m0, jnp.diag(std**2)), gaussian_log_density(m1, jnp.diag(std**2))
    Q = lambda z: cfg.obstacle_height * jnp.exp(-jnp.sum(z[:, :2] ** 2, 1) / (2 * cfg.obstacle_std**2))  # noqa: E731
    running = (obstacle(Q, cfg.lambda_p), entropy_congestion(cfg.lambda_e))
    terminal = kl_terminal(log_rho1, cfg.alpha_g)
    pot = Potential(d, width=cfg.width, n_layers=cfg.n_layers)
    opt = optax.adam(optax.exponential_decay(cfg.lr, cfg.lr_halving, 0.5))

    def objective(params, x):
        return mfg_objective(pot, params, x, log_rho0(x), terminal=terminal, running=running,
                             alpha_hjb=cfg.alpha_hjb, n_steps=cfg.nt)

    def loss(params, x, k):
        J, t = objective(params, x)
        return J, {"kinetic": t.kinetic, "running": t.running, "terminal": t.terminal, "hjb": t.hjb}

    k1, k2, k3 = jax.random.split(key, 3)
    sampler = lambda k, step: m0 + std * jax.random.normal(k, (cfg.batch, d))  # noqa: E731
    params = fit(make_step(loss, opt), init_state(pot.init(key=k1), opt, key=k2), sampler, n_steps=cfg.n_steps,
                 chunk_size=min(100, cfg.n_steps), progress=False).state.params
    # the same planar starting points in every d; fresh standard coordinates for the rest
    x = jnp.concatenate([x2_eval, jax.random.normal(k3, (x2_eval.shape[0], d - 2))], 1)
    J, t = jax.jit(objective)(params, x)
    path = jax.jit(lambda q: characteristics(pot, q, x, n_steps=cfg.nt, path=True).z[:, :, :2])(params)
    vals = {"objective": float(J), "kinetic": float(t.kinetic), "running": float(t.running),
            "terminal": float(t.terminal), "hjb": float(t.hjb)}
    return vals, np.asarray(path)


@register("mfg-crowd", "crowd motion past an obstacle as an MFG: objective and planar paths agree across d",
          configs={"quick": QUICK, "full": FULL}, budget=("n_steps", "lr_halving"))
def run(cfg: MfgCrowdConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    keys = seed_keys(seeds, 25)
    rows, objs, dev = [], {}, {}
    for i, key in enumerate(keys):
        x2 = jnp.asarray([0.0, 3.0]) + jnp.sqrt(0.3) * jax.random.normal(jax.random.fold_in(key, 99), (cfg.n_eval, 2))
        paths = {}
        for d in cfg.dims:
            vals, paths[d] = solve(cfg, d, jax.random.fold_in(key, d), x2)
            objs.setdefault(d, []).append(vals)
        base = paths[min(cfg.dims)]
        for d in cfg.dims:
            dev.setdefault(d, []).append(float(np.sqrt(np.mean(np.sum((paths[d] - base) ** 2, -1)))) / 6.0)
    for d in cfg.dims:
        vals = {k: [v[k] for v in objs[d]] for k in objs[d][0]}
        rows.append(Row(f"MFG potential, d={d}", {**vals, "path_dev_rel": dev[d]}, {"hjb": 0.0}))
    J = [float(np.mean([v["objective"] for v in objs[d]])) for d in cfg.dims]
    spread = (max(J) - min(J)) / abs(float(np.mean(J)))
    worst = max(float(np.mean(dev[d])) for d in cfg.dims)
    checks = [
        Check(f"the objective agrees across d (relative spread < {OBJ_SPREAD:g})", spread < OBJ_SPREAD,
              "objectives " + ", ".join(f"d={d}: {j:.4g}" for d, j in zip(cfg.dims, J))),
        Check(f"planar trajectories agree with d={min(cfg.dims)} (RMS < {PATH_TOL:g} of the travel)", worst < PATH_TOL,
              f"worst relative RMS deviation {worst:.3g}"),
    ]
    notes = (f"Obstacle Q = {cfg.obstacle_height:g} exp(-|x_12|^2 / (2 {cfg.obstacle_std:g}^2)), lambda_P = "
             f"{cfg.lambda_p:g}, entropy lambda_E = {cfg.lambda_e:g}, terminal alpha_G = {cfg.alpha_g:g}, HJB weights "
             f"{cfg.alpha_hjb}; potential width {cfg.width}, {cfg.n_layers} layers; {cfg.n_steps} Adam steps (lr "
             f"{cfg.lr:g}, halved every {cfg.lr_halving}), batch {cfg.batch}, RK4 nt = {cfg.nt}. Evaluation on "
             f"{cfg.n_eval} agents with the same planar starting points in every d; {len(seeds)} seed(s).")
    return Result(rows=rows, checks=checks, notes=notes)
