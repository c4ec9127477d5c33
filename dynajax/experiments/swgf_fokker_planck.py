"""``swgf-fokker-planck``: SW-JKO over normalizing flows on the Fokker-Planck equation (OU target).

Protocol (Bonet et al. 2022, "Efficient gradient flows in sliced-Wasserstein space", section
on Ornstein-Uhlenbeck processes, after Mokrov et al. 2021): the Fokker-Planck equation
``d_t rho = div(rho grad V) + Lap rho`` with ``V(x) = (x - b)^T A (x - b) / 2`` is the Wasserstein
gradient flow of ``KL(rho || N(b, A^{-1}))``; from ``rho_0 = N(0, I)`` its solution is Gaussian
(Ornstein-Uhlenbeck) with

    m_t = b + e^{-A t} (m_0 - b),   S_t = e^{-A t} S_0 e^{-A t} + A^{-1} (I - e^{-2 A t}).

Per dimension ``d`` and seed: ``A = Q diag(lambda) Q^T`` with ``Q`` a Haar rotation and
``lambda ~ U[0.5, 2]``, ``b ~ N(0, I)``. Methods, all with the same number of samples:

* ``SWGF + RealNVP``: :func:`dynajax.transport.nf_jko.nf_sw_jko` with ``F = KL(. || p)``, JKO
  step ``h = 0.05``, the SW term scaled by ``d`` (``SW_2^2 = W_2^2 / d`` for translations) so
  that a step matches a Wasserstein JKO step of the same ``h`` (see notes).
* ``Euler-Maruyama``: ULA particles ``x <- x - dt A (x - b) + sqrt(2 dt) z``, ``dt = 1e-3``.
* ``exact samples``: i.i.d. samples of the true ``rho_t``: the floor that Gaussian fitting
  with this many samples puts under the metric.

Metrics, at ``t`` in ``T_EVAL``, on fresh draws of ``mu_0`` pushed through the trained maps:

* ``symkl_paper_t{t}``: the paper's estimator (its code, ``symKL`` / ``symKL_kernel``):
  ``E_{rho_t}[log rho_t - log q] + E_q[log q - log rho_t]`` by Monte Carlo with ``N_SYMKL``
  samples each way, where ``q`` is the flow's exact density for SWGF (inverse maps for the
  points drawn from ``rho_t``, :func:`dynajax.transport.nf_jko.pull_back_log_density`) and a
  Gaussian KDE of the particles (``scipy.stats.gaussian_kde``, Scott's rule) for
  Euler-Maruyama and for the exact samples (the KDE floor).
* ``symkl_t{t}``: symmetric KL between ``rho_t`` and the Gaussian fitted to the samples (mean
  and covariance only; stricter for the flow than the paper's metric, since Euler-Maruyama
  particles are Gaussian by construction and the Gaussian fit is then the right model).
* ``kl_density_t{t}`` (flow): ``KL(rho_t^NF || rho_t)`` from the exact log-densities.

Time scale: the paper (code ``--fixed_t``) runs SW-JKO with step ``tau / d`` and compares its
state after ``t / tau`` steps with the Fokker-Planck solution at time ``t``; ``sw_scale = d``
with step ``h`` is the same scheme (``d SW^2 / (2 h) = SW^2 / (2 h / d)``).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure
from dynajax.transport.flows import kl_to_target
from dynajax.transport.nf_jko import (
    RealNVP,
    gaussian_log_density,
    nf_sw_jko,
    pull_back_log_density,
    push_forward,
)

H = 0.05
T_EVAL = (0.25, 0.5)
EM_DT = 1e-3
N_SYMKL = 10000  # Monte Carlo samples each way for the paper's SymKL estimator
SIZES = {
    "quick": {"dims": (2, 4, 8), "n": 2048, "batch": 512, "n_inner": 100, "lr": 1e-2,
              "n_proj": 100, "hidden": 32, "n_layers": 4, "max_log_scale": 0.5},
    "full": {"dims": (2, 4, 6, 8, 10, 12), "n": 4096, "batch": 1024, "n_inner": 300, "lr": 5e-3,
             "n_proj": 200, "hidden": 64, "n_layers": 6, "max_log_scale": 0.5},
}


def ou_problem(d: int, seed: int):
    """``(A [d, d], b [d])``: random SPD ``A`` (eigenvalues in [0.5, 2]) and centre ``b``."""
    rng = np.random.default_rng(1000 * d + seed)
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    q = q * np.sign(np.diag(r))
    lam = rng.uniform(0.5, 2.0, size=d)
    return (q * lam) @ q.T, rng.normal(size=d)


def ou_solution(A, b, t, m0=None, S0=None):
    """Mean and covariance of the OU / Fokker-Planck solution at time ``t`` from ``N(m0, S0)``."""
    d = b.shape[0]
    m0 = np.zeros(d) if m0 is None else m0
    S0 = np.eye(d) if S0 is None else S0
    lam, Q = np.linalg.eigh(A)
    E = (Q * np.exp(-lam * t)) @ Q.T
    E2 = (Q * np.exp(-2 * lam * t)) @ Q.T
    Ainv = (Q / lam) @ Q.T
    return b + E @ (m0 - b), E @ S0 @ E + Ainv @ (np.eye(d) - E2)


def gaussian_kl(m0, S0, m1, S1) -> float:
    """``KL(N(m0, S0) || N(m1, S1))`` (float64)."""
    d = m0.shape[0]
    S1inv = np.linalg.inv(S1)
    dm = m1 - m0
    return 0.5 * float(
        np.trace(S1inv @ S0) + dm @ S1inv @ dm - d
        + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1]
    )


def symmetric_kl_to_fit(x, m, S) -> float:
    """Symmetric KL between ``N(m, S)`` and the Gaussian fitted to samples ``x [n, d]``."""
    x = np.asarray(x, np.float64)
    mh, Sh = x.mean(0), np.cov(x, rowvar=False)
    return gaussian_kl(mh, Sh, m, S) + gaussian_kl(m, S, mh, Sh)


def _true_logpdf(m, S):
    from scipy.stats import multivariate_normal

    return multivariate_normal(m, S).logpdf


def symkl_kde(x, m, S, n_mc: int, seed: int) -> float:
    """The paper's EM metric: Monte Carlo symmetric KL between ``N(m, S)`` and a Gaussian KDE
    (Scott's rule) of the samples ``x [n, d]``, ``n_mc`` draws each way."""
    from scipy.stats import gaussian_kde

    rng = np.random.default_rng(seed)
    kde = gaussian_kde(np.asarray(x, np.float64).T)
    logp = _true_logpdf(m, S)
    x1 = rng.multivariate_normal(m, S, size=n_mc)
    x2 = kde.resample(n_mc, seed=rng).T
    return float(np.mean(logp(x1) - kde.logpdf(x1.T)) + np.mean(kde.logpdf(x2.T) - logp(x2)))


def symkl_flow(y, log_q_y, log_q_fn, m, S, n_mc: int, seed: int) -> float:
    """The paper's flow metric: ``E_{rho_t}[log rho_t - log q] + E_q[log q - log rho_t]`` with
    the flow's exact density ``q`` (``y``, ``log_q_y``: flow samples and their log-densities;
    ``log_q_fn``: ``q``'s log-density at arbitrary points)."""
    rng = np.random.default_rng(seed)
    logp = _true_logpdf(m, S)
    x1 = rng.multivariate_normal(m, S, size=n_mc)
    y = np.asarray(y, np.float64)
    return float(np.mean(logp(x1) - np.asarray(log_q_fn(x1.astype(np.float32))))
                 + np.mean(np.asarray(log_q_y, np.float64) - logp(y)))


def euler_maruyama(x0, A, b, dt: float, n_steps: int, key):
    """ULA / Euler-Maruyama for ``dX = -A (X - b) dt + sqrt(2) dW``; returns ``x [n, d]``."""
    A = jnp.asarray(A, jnp.float32)
    b = jnp.asarray(b, jnp.float32)

    @jax.jit
    def run(x, key):
        def body(x, k):
            z = jax.random.normal(jax.random.fold_in(key, k), x.shape)
            return x - dt * (x - b) @ A + jnp.sqrt(2 * dt) * z, None

        return jax.lax.scan(body, x, jnp.arange(n_steps))[0]

    return run(x0, key)


def run_one(d: int, seed: int, cfg: dict) -> dict:
    """Both methods on one ``(d, seed)``; metrics keyed by ``symkl_t{t}`` etc."""
    A, b = ou_problem(d, seed)
    key = jax.random.fold_in(jax.random.key(seed), d)
    k0, k1, k2, k3 = jax.random.split(key, 4)
    n = cfg["n"]
    x0 = jax.random.normal(k0, (n, d))
    Aj, bj = jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32)
    F = kl_to_target(lambda z: -0.5 * (z - bj) @ Aj @ (z - bj))
    steps = [round(t / H) for t in T_EVAL]
    # one JKO map is close to the identity: soft-clip each coupling's log-scale to +-0.5
    # (the default 3 let out-of-sample points blow up: SymKL 538 at d = 8)
    flow = RealNVP(d, n_layers=cfg["n_layers"], hidden=cfg["hidden"],
                   max_log_scale=cfg["max_log_scale"])
    logp0 = gaussian_log_density(jnp.zeros(d), jnp.eye(d))
    t0 = time.perf_counter()
    out = nf_sw_jko(
        x0, F, h=H, n_outer=max(steps), n_inner=cfg["n_inner"], lr=cfg["lr"],
        n_proj=cfg["n_proj"], key=k1, log_density0=logp0(x0), batch_size=cfg["batch"],
        sw_scale=float(d), flow=flow,
    )
    jax.block_until_ready(out.x)
    res = {"nf": {"wall_s": time.perf_counter() - t0}, "em": {}, "exact": {}}
    # evaluation on fresh draws of mu_0 pushed through the trained maps (out of sample)
    z = jax.random.normal(k3, (N_SYMKL, d))
    for t, s in zip(T_EVAL, steps):
        m, S = ou_solution(A, b, t)
        y, ld = push_forward(flow, out.params[:s], z, logp0(z))
        res["nf"][f"symkl_t{t}"] = symmetric_kl_to_fit(y[:n], m, S)
        res["nf"][f"symkl_paper_t{t}"] = symkl_flow(
            y, ld, lambda q, s=s: pull_back_log_density(flow, out.params[:s], q, logp0),
            m, S, N_SYMKL, seed)
        exact = np.random.default_rng(seed).multivariate_normal(m, S, size=n)
        res["exact"][f"symkl_t{t}"] = symmetric_kl_to_fit(exact, m, S)
        res["exact"][f"symkl_paper_t{t}"] = symkl_kde(exact, m, S, N_SYMKL, seed + 1)
    # KL(rho^NF_T || rho_T) by Monte Carlo with the flow's exact log-density
    res["nf"][f"kl_density_t{T_EVAL[-1]}"] = float(jnp.mean(ld - gaussian_log_density(m, S)(y)))
    res["nf"]["mean_err"] = float(np.linalg.norm(np.asarray(y).mean(0) - m))
    t0 = time.perf_counter()
    x, done, snaps = x0, 0, []
    for t in T_EVAL:
        k = round(t / EM_DT) - done
        x = euler_maruyama(x, A, b, EM_DT, k, jax.random.fold_in(k2, done))
        done += k
        snaps.append(np.asarray(x))
    res["em"]["wall_s"] = time.perf_counter() - t0
    for t, x in zip(T_EVAL, snaps):
        m, S = ou_solution(A, b, t)
        res["em"][f"symkl_t{t}"] = symmetric_kl_to_fit(x, m, S)
        res["em"][f"symkl_paper_t{t}"] = symkl_kde(x, m, S, N_SYMKL, seed + 2)
    return res


@register(
    "swgf-fokker-planck",
    "SW-JKO over RealNVP flows on the Fokker-Planck equation (OU target, d = 2..12): symmetric KL vs Euler-Maruyama",
)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    cfg = SIZES[scale]
    per = {d: [run_one(d, s, cfg) for s in range(seeds)] for d in cfg["dims"]}
    names = {"nf": "SWGF + RealNVP", "em": "Euler-Maruyama (dt=1e-3)", "exact": "exact samples (Gaussian-fit floor)"}
    rows = []
    for d, res in per.items():
        for meth, label in names.items():
            keys = res[0][meth].keys()
            rows.append(Row(f"{label}, d={d}", {k: [r[meth][k] for r in res] for k in keys},
                            {k: None for k in keys if k.startswith("symkl")}))
    t_last = T_EVAL[-1]

    def mean(d, meth, k):
        return float(np.mean([r[meth][k] for r in per[d]]))

    def vs_em(name, key):
        worst = max(mean(d, "nf", key) - mean(d, "em", key) for d in per)
        detail = "SymKL(NF) vs SymKL(EM) per d: " + ", ".join(
            f"d={d}: {mean(d, 'nf', key):.3g} vs {mean(d, 'em', key):.3g}" for d in per)
        return Check(name, worst <= 0.05, detail)

    checks = [
        vs_em(f"paper's protocol: SWGF SymKL (exact flow density) at t={t_last} within 0.05 of "
              "Euler-Maruyama's (KDE of as many particles) for every d", f"symkl_paper_t{t_last}"),
        vs_em(f"stricter than the paper: Gaussian-fit SymKL of SWGF at t={t_last} within 0.05 of "
              "Euler-Maruyama's for every d", f"symkl_t{t_last}"),
    ]
    kl_key = f"kl_density_t{t_last}"
    worst_kl = max(mean(d, "nf", kl_key) for d in per)
    checks.append(Check(
        f"flow density KL(rho_NF || rho_t) at t={t_last} below 0.1 for every d",
        worst_kl < 0.1,
        ", ".join(f"d={d}: {mean(d, 'nf', kl_key):.3g}" for d in per),
    ))
    figures = [_plot(per, out_dir)]
    notes = (
        f"h = {H}, t in {T_EVAL}, {cfg['n']} samples per method, flow RealNVP "
        f"({cfg['n_layers']} couplings, 2x{cfg['hidden']} GELU MLPs), {cfg['n_inner']} Adam steps "
        f"(lr {cfg['lr']}, each step's flow starting from the identity) per JKO step on minibatches of {cfg['batch']}, {cfg['n_proj']} projections. "
        "The SW term is multiplied by d: for translations SW_2^2 = W_2^2 / d exactly, so the "
        "plain SW-JKO scheme runs roughly d times slower than the Wasserstein flow it is "
        "compared with; the rescaled scheme matches the OU solution's time scale (isotropic "
        "parts exactly, anisotropic ones approximately: the SW flow is a different PDE, which "
        "the remaining SymKL reflects: at d = 4, tripling the Adam steps per JKO step (300) left "
        "SymKL(t=0.5) unchanged at 0.064, so the gap to Euler-Maruyama is the SW geometry, "
        "not the inner optimisation).\n"
        "Paper reference: the SWGF paper and Mokrov et al. report this experiment as a figure "
        "(log10 SymKL vs d for SWGF+RealNVP, JKO-ICNN and Euler-Maruyama), with no table; no "
        "number is transcribed here (reference = null). Their claim, tested by the first check "
        "with the paper's own estimators (symkl_paper_*), is that SWGF matches the particle "
        "baseline across dimensions: in the paper's code the flow is scored with its exact "
        "density and Euler-Maruyama with a Gaussian KDE of its particles (1e3 to 5e4 of them), "
        "whose smoothing bias grows with d. The second check, with the Gaussian-fit metric "
        "(symkl_*), is stricter than the paper: there Euler-Maruyama is scored in its own exact "
        "parametric family. The 'exact samples' rows give both floors at this sample size "
        "(Gaussian fit: about d(d+3)/(2n); KDE: the smoothing bias)."
    )
    return Result(rows=rows, checks=checks, figures=figures, notes=notes)


def _plot(per, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(per)
    fig, axes = plt.subplots(2, len(T_EVAL), figsize=(4.8 * len(T_EVAL), 7.4), squeeze=False)
    for row, (prefix, what) in enumerate((("symkl_paper_t", "paper's estimators (flow density / KDE)"),
                                          ("symkl_t", "Gaussian fit"))):
        for ax, t in zip(axes[row], T_EVAL):
            for meth, label, mk in (("nf", "SWGF + RealNVP", "o-"), ("em", "Euler-Maruyama", "s--"),
                                    ("exact", "exact samples", "k:")):
                v = np.array([[r[meth][f"{prefix}{t}"] for r in per[d]] for d in dims])
                ax.errorbar(dims, v.mean(1), yerr=v.std(1), fmt=mk, label=label, capsize=3)
            ax.set_yscale("log")
            ax.set_xlabel("dimension d")
            ax.set_title(f"SymKL, {what}, t = {t}", fontsize=9)
        axes[row][0].set_ylabel("symmetric KL")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir / "fokker_planck_symkl.png")
