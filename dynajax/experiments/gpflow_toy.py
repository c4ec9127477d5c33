"""``gpflow-toy``: GP-flows turn a trained RealNVP into a cheaper map with the same density.

Protocol (Morel et al., TMLR 2023, Sec. 5, 2-D experiments): a RealNVP ``T``
(:class:`dynajax.transport.RealNVP`) is trained by maximum likelihood from ``N(0, I)`` to 8
Gaussians, moons, and a correlated Gaussian ``N(mu, S)`` (whose Monge map from ``N(0, I)`` is known
in closed form). Then a Gaussian-preserving flow ``s`` (:class:`dynajax.cnf.AntisymmetricField`,
the stream-function form in 2-D, integrated by RK4) is trained to lower ``E |z - T(s(z))|^2``
with ``T`` frozen. Reported: the transport cost of ``T`` and of ``T o s`` against ``W2^2``
(closed form for the Gaussian, POT's exact OT between ``n_ot`` Gaussian samples and data samples
for the others, an estimate biased upwards), the test NLL of both models (their difference is
the time-discretisation error of ``s``: ``s`` preserves ``N(0, I)`` exactly in continuous time).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynajax.cnf import AntisymmetricField, gp_flow, gp_transport_cost, sample_toy, standard_normal_logpdf
from dynajax.experiments.config import ExperimentConfig, seed_keys
from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, band
from dynajax.train import fit, init_state, make_step
from dynajax.transport import RealNVP, exact_w2, gaussian_w2

GAUSS_MEAN, GAUSS_COV = (1.0, 0.0), ((2.0, 1.2), (1.2, 1.0))
W2_BAND = 0.05  # relative: T o s against the closed-form W2^2 (Gaussian target)
NLL_TOL = 1e-2  # nats: the bound on the change of test NLL


@dataclasses.dataclass(frozen=True, kw_only=True)
class GpflowToyConfig(ExperimentConfig):
    """Sizes.

    Attributes:
        targets: data sets (``"gaussian"`` or a name of :data:`dynajax.cnf.TOY_DENSITIES`).
        nf_layers, nf_hidden, nf_steps, nf_lr: the RealNVP and its maximum-likelihood training.
        gp_hidden, gp_steps, gp_lr, nt: the GP-flow field, its training and RK4 steps.
        batch: samples per step; n_test: test samples; n_ot: samples per side of the POT estimate.
    """

    targets: tuple[str, ...] = ("gaussian", "8gaussians", "moons")
    nf_layers: int = 6
    nf_hidden: int = 64
    nf_steps: int = 2000
    nf_lr: float = 2e-3
    gp_hidden: tuple[int, ...] = (64, 64)
    gp_steps: int = 1000
    gp_lr: float = 5e-3
    nt: int = 8
    batch: int = 512
    n_test: int = 20_000
    n_ot: int = 2000


QUICK = GpflowToyConfig(seeds=1, nf_steps=1500, gp_steps=600, nt=6)
# Morel et al. 2023 Sec. 5 (2-D): longer training, finer RK4, 3 seeds.
FULL = GpflowToyConfig(seeds=3, nf_steps=5000, gp_steps=3000, nt=12, n_ot=4000)


def data(name: str, n: int, key):
    if name == "gaussian":
        return jnp.asarray(GAUSS_MEAN) + jax.random.normal(key, (n, 2)) @ jnp.linalg.cholesky(jnp.asarray(GAUSS_COV)).T
    return sample_toy(name, n, key=key)


def one(cfg: GpflowToyConfig, name: str, key) -> dict[str, float]:
    k_nf, k_gp, k_state, k_test, k_z = jax.random.split(key, 5)
    nf = RealNVP(2, n_layers=cfg.nf_layers, hidden=cfg.nf_hidden)

    def nll(params, x, k):  # maximum likelihood of T: x = T(z), z = T^{-1}(x)
        z, ld = nf.apply(params, x, method=nf.inverse)
        return -jnp.mean(standard_normal_logpdf(z) + ld), {}

    opt = optax.adam(cfg.nf_lr)
    sample = lambda k, step: data(name, cfg.batch, k)  # noqa: E731
    nf_params = fit(make_step(nll, opt), init_state(nf.init(k_nf, jnp.zeros((1, 2))), opt, key=k_state), sample,
                    n_steps=cfg.nf_steps, chunk_size=min(250, cfg.nf_steps), progress=False).state.params
    T = lambda y: nf.apply(nf_params, y)[0]  # noqa: E731

    field = AntisymmetricField(2, hidden=cfg.gp_hidden)
    flow = lambda q, z, sign=1.0: gp_flow(lambda a: sign * field(q, a), z, n_steps=cfg.nt)  # noqa: E731
    gopt = optax.adam(cfg.gp_lr)
    cost = lambda q, z, k: (gp_transport_cost(T, flow(q, z), z), {})  # noqa: E731
    zs = lambda k, step: jax.random.normal(k, (cfg.batch, 2))  # noqa: E731
    gp_params = fit(make_step(cost, gopt), init_state(field.init(key=k_gp), gopt, key=jax.random.fold_in(k_state, 1)), zs,
                    n_steps=cfg.gp_steps, chunk_size=min(200, cfg.gp_steps), progress=False).state.params

    @jax.jit
    def evaluate(x, z):
        y, ld = nf.apply(nf_params, x, method=nf.inverse)  # T^{-1}(x)
        nll_t = -jnp.mean(standard_normal_logpdf(y) + ld)
        s_inv = lambda a: flow(gp_params, a[None], -1.0)[0]  # noqa: E731
        ld_s = jax.vmap(lambda a: jnp.linalg.slogdet(jax.jacfwd(s_inv)(a))[1])(y)
        nll_ts = -jnp.mean(standard_normal_logpdf(jax.vmap(s_inv)(y)) + ld_s + ld)
        return nll_t, nll_ts, gp_transport_cost(T, z, z), gp_transport_cost(T, flow(gp_params, z), z)

    z = jax.random.normal(k_z, (cfg.n_test, 2))
    nll_t, nll_ts, before, after = (float(v) for v in evaluate(data(name, cfg.n_test, k_test), z))
    if name == "gaussian":
        w2 = float(gaussian_w2(jnp.zeros(2), jnp.eye(2), jnp.asarray(GAUSS_MEAN), jnp.asarray(GAUSS_COV)))
    else:
        w2 = float(exact_w2(z[: cfg.n_ot], data(name, cfg.n_ot, jax.random.fold_in(k_test, 1))))
    return {"cost_T": before, "cost_T_o_s": after, "W2^2": w2, "test_nll_T": nll_t, "test_nll_T_o_s": nll_ts,
            "nll_change": abs(nll_ts - nll_t)}


@register("gpflow-toy", "GP-flows on a RealNVP (2-D): transport cost drops toward W2^2 at unchanged NLL",
          configs={"quick": QUICK, "full": FULL}, budget=("nf_steps", "gp_steps"))
def run(cfg: GpflowToyConfig, seeds: tuple[int, ...], out_dir: Path) -> Result:
    keys = seed_keys(seeds, 23)
    rows, checks = [], []
    for name in cfg.targets:
        res = [one(cfg, name, k) for k in keys]
        vals = {k: [r[k] for r in res] for k in res[0]}
        mean = {k: float(np.mean(v)) for k, v in vals.items()}
        rows.append(Row(f"RealNVP + GP-flow, {name}", vals, {"cost_T_o_s": mean["W2^2"] if name == "gaussian" else None}))
        gap = (mean["cost_T_o_s"] - mean["W2^2"]) / (mean["cost_T"] - mean["W2^2"])
        checks.append(Check(f"{name}: the GP-flow lowers the transport cost and closes >= half the gap to W2^2",
                            mean["cost_T_o_s"] < mean["cost_T"] and gap <= 0.5,
                            f"cost {mean['cost_T']:.3f} -> {mean['cost_T_o_s']:.3f}, W2^2 {mean['W2^2']:.3f} "
                            f"(remaining gap {gap:.2f} of the initial one)"))
        checks.append(Check(f"{name}: test NLL changes by less than {NLL_TOL:g} nats", mean["nll_change"] < NLL_TOL,
                            f"{mean['test_nll_T']:.4f} -> {mean['test_nll_T_o_s']:.4f}"))
        if name == "gaussian":
            checks.append(band("gaussian: cost of T o s vs closed-form W2^2 (relative)", mean["cost_T_o_s"],
                               mean["W2^2"], W2_BAND, "rel"))
    notes = (f"RealNVP ({cfg.nf_layers} couplings, hidden {cfg.nf_hidden}) trained by maximum likelihood for "
             f"{cfg.nf_steps} Adam steps (lr {cfg.nf_lr:g}); GP-flow field MLP {cfg.gp_hidden} trained {cfg.gp_steps} "
             f"steps (lr {cfg.gp_lr:g}), RK4 with {cfg.nt} steps over unit time; batches of {cfg.batch}. Costs and "
             f"NLLs on {cfg.n_test} test samples; the NLL of T o s inverts s by RK4 with the log-determinant of the "
             f"discrete map. W2^2: closed form for the Gaussian N({GAUSS_MEAN}, {GAUSS_COV}); POT exact OT between "
             f"{cfg.n_ot} Gaussian and {cfg.n_ot} data samples otherwise (biased upwards). {len(seeds)} seed(s).")
    return Result(rows=rows, checks=checks, notes=notes)
