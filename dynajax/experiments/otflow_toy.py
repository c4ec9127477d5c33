"""``otflow-toy``: OT-Flow on the seven 2-D toy densities of FFJORD and OT-Flow.

Protocol (Onken et al., AAAI 2021, Sec. 5.1 and Fig. 4; the authors' toy script): a potential of
width 32 and 2 layers, ``alpha = (1, 100, 5)``, RK4 with ``nt = 8`` steps over ``[0, 1]``, Adam
with lr 0.1 halved every 100 steps, a fresh batch every ``resample`` steps, trained from data
(:func:`dynajax.cnf.sample_toy`) to ``N(0, I)`` (:func:`dynajax.cnf.otflow_step` in
:func:`dynajax.train.fit`). Reported per density: the test NLL, the MMD between model samples
(inverse flow) and data, the kinetic energy ``2 L`` against ``W2^2`` between the data and the
Gaussian (POT's exact OT on ``n_ot`` samples each, an estimate biased upwards), the trajectory
straightness (1 for straight constant-speed paths) and the time per training step.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.cnf import TOY_DENSITIES, Potential, characteristics, otflow_log_density, otflow_sample, otflow_step, sample_toy
from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band, median_seconds
from dynajax.train import fit, init_state
from dynajax.transport import exact_w2, mmd2, path_straightness

W2_BAND = 0.1  # relative: 2L vs the POT estimate of W2^2 (finite alpha_C, sampling bias)
STRAIGHT_MAX = 1.05


@dataclasses.dataclass(frozen=True, kw_only=True)
class OtflowToyConfig(ExperimentConfig):
    """Sizes (the authors' toy defaults where not stated).

    Attributes:
        densities: names from :data:`dynajax.cnf.TOY_DENSITIES`.
        width, n_layers, alpha, nt: the potential, objective weights and RK4 steps.
        n_steps, batch, resample: Adam steps, batch size, steps between fresh batches.
        lr, lr_halving: Adam step size, halved every ``lr_halving`` steps.
        n_test, n_ot, n_mmd: test samples (NLL), samples per side of the POT and MMD estimates.
    """

    densities: tuple[str, ...] = TOY_DENSITIES
    width: int = 32
    n_layers: int = 2
    alpha: tuple[float, float, float] = (1.0, 100.0, 5.0)
    nt: int = 8
    n_steps: int = 1000
    batch: int = 2048
    resample: int = 25
    lr: float = 0.1
    lr_halving: int = 100
    n_test: int = 10_000
    n_ot: int = 2000
    n_mmd: int = 2000


QUICK = OtflowToyConfig(seeds=1, n_steps=400, batch=1024)
# The authors' CPU setting of trainToyOTflow (1000 steps, batch 2048); 3 seeds.
FULL = OtflowToyConfig(seeds=3)


def one(cfg: OtflowToyConfig, name: str, key) -> dict[str, float]:
    k_init, k_state, k_test, k_ot, k_s = jax.random.split(key, 5)
    pot = Potential(2, width=cfg.width, n_layers=cfg.n_layers)
    opt = optax.adam(optax.exponential_decay(cfg.lr, cfg.lr_halving, 0.5, staircase=True))
    step = otflow_step(pot, opt, alpha=cfg.alpha, n_steps=cfg.nt)
    # a batch is kept for `resample` steps: its key depends on the step's block only
    sampler = lambda k, i: sample_toy(name, cfg.batch, key=jax.random.fold_in(k_init, i // cfg.resample))  # noqa: E731
    state = init_state(pot.init(key=k_init), opt, key=k_state)
    t_step = median_seconds(jax.jit(step), state, sampler(k_init, 0), repeats=5)
    params = fit(step, state, sampler, n_steps=cfg.n_steps, chunk_size=min(100, cfg.n_steps), progress=False).state.params

    x = sample_toy(name, cfg.n_test, key=k_test)
    x_ot = sample_toy(name, cfg.n_ot, key=k_ot)

    @jax.jit
    def evaluate(q):
        path = characteristics(pot, q, x_ot, n_steps=cfg.nt, path=True)
        gen, _ = otflow_sample(pot, q, cfg.n_mmd, key=k_s, n_steps=cfg.nt)
        return (-jnp.mean(otflow_log_density(pot, q, x, n_steps=cfg.nt)), 2 * jnp.mean(path.kinetic[-1]),
                path_straightness(path.z), mmd2(gen, x[: cfg.n_mmd], (0.1, 0.5, 1.0)))

    nll, two_l, straight, mmd = (float(v) for v in evaluate(params))
    w2 = float(exact_w2(x_ot, jax.random.normal(jax.random.fold_in(k_ot, 1), (cfg.n_ot, 2))))
    return {"test_nll": nll, "mmd2": mmd, "2L": two_l, "W2^2_pot": w2, "straightness": straight,
            "step_ms": 1e3 * t_step}


@register("otflow-toy", "OT-Flow on the seven 2-D toy densities: NLL, MMD, 2L vs W2^2, straightness",
          configs={"quick": QUICK, "full": FULL}, budget=("n_steps", "lr_halving"))
def run(cfg: OtflowToyConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    keys = seed_keys(seeds, 24)
    rows, checks, straight = [], [], {}
    for name in cfg.densities:
        res = [one(cfg, name, k) for k in keys]
        vals = {k: [r[k] for r in res] for k in res[0]}
        mean = {k: float(np.mean(v)) for k, v in vals.items()}
        rows.append(Row(f"OT-Flow, {name}", vals, {"2L": mean["W2^2_pot"]}))
        checks.append(band(f"{name}: 2L vs W2^2 (POT on samples, relative)", mean["2L"], mean["W2^2_pot"], W2_BAND, "rel"))
        straight[name] = mean["straightness"]
    worst = max(straight, key=straight.get)
    checks.append(Check(f"trajectories nearly straight (straightness < {STRAIGHT_MAX:g}) for every density",
                        straight[worst] < STRAIGHT_MAX, f"worst {worst}: {straight[worst]:.4f}"))
    notes = (f"Potential width {cfg.width}, {cfg.n_layers} layers; alpha (L, C, R) = {cfg.alpha}; RK4 nt = {cfg.nt}; "
             f"{cfg.n_steps} Adam steps, lr {cfg.lr:g} halved every {cfg.lr_halving}, batch {cfg.batch} renewed every "
             f"{cfg.resample} steps. Test NLL on {cfg.n_test} fresh samples (nats); MMD^2 (Gaussian kernels of "
             f"bandwidths 0.1, 0.5, 1) between {cfg.n_mmd} inverse-flow samples and data; W2^2 by POT between "
             f"{cfg.n_ot} data and Gaussian samples; step_ms is the median of 5 compiled training steps on this "
             f"machine. {len(seeds)} seed(s).")
    return Result(rows=rows, checks=checks, notes=notes)
