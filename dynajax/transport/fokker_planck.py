"""The Ornstein-Uhlenbeck Fokker-Planck problem and the symmetric-KL scores of its solvers.

The Fokker-Planck equation ``d_t rho = div(rho grad V) + Lap rho`` with the quadratic potential
``V(x) = (x - b)^T A (x - b) / 2`` (``A`` symmetric positive definite) is the Wasserstein
gradient flow of ``KL(rho || N(b, A^{-1}))``. From a Gaussian ``rho_0 = N(m_0, S_0)`` its
solution stays Gaussian (the Ornstein-Uhlenbeck process), with

    m_t = b + e^{-A t} (m_0 - b),   S_t = e^{-A t} S_0 e^{-A t} + A^{-1} (I - e^{-2 A t}),

which makes it the test problem of Mokrov et al. (NeurIPS 2021, JKO-ICNN) and Bonet et al.
(TMLR 2022, "Efficient gradient flows in sliced-Wasserstein space", Sec. 5): a solver is scored
by the symmetric KL ``KL(p || q) + KL(q || p)`` between the exact ``rho_t`` and its
approximation ``q``, estimated in one of three ways:

* :func:`symmetric_kl_to_fit`: ``q`` is the Gaussian fitted to samples (mean, covariance);
  closed form.
* :func:`symmetric_kl_kde`: ``q`` is a Gaussian KDE of samples (Scott's rule), by Monte Carlo:
  the estimator the papers' code applies to particle methods (Euler-Maruyama).
* :func:`symmetric_kl_flow`: ``q`` has an exact log-density (a normalizing flow), by Monte
  Carlo: the estimator the papers' code applies to flow-based schemes.

Host (numpy / scipy) functions, float64; the sampling of the particles is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "gaussian_kl",
    "ou_problem",
    "ou_solution",
    "symmetric_kl_flow",
    "symmetric_kl_kde",
    "symmetric_kl_to_fit",
]


def ou_problem(d: int, eig_range: tuple[float, float] = (0.5, 2.0), *, seed: int):
    """A random OU problem ``(A [d, d], b [d])`` (float64), fixed by ``(d, seed)``.

    ``A = Q diag(lambda) Q^T`` with ``Q`` a Haar rotation and ``lambda ~ U[eig_range]``, and
    ``b ~ N(0, I)`` (a random SPD potential and centre, after Mokrov et al. 2021).
    """
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d}")
    lo, hi = eig_range
    if not 0 < lo <= hi:
        raise ValueError(f"eig_range must satisfy 0 < low <= high, got {eig_range}")
    rng = np.random.default_rng(1000 * d + seed)
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    q = q * np.sign(np.diag(r))
    lam = rng.uniform(lo, hi, size=d)
    return (q * lam) @ q.T, rng.normal(size=d)


def ou_solution(A, b, t: float, m0=None, S0=None):
    """Mean ``[d]`` and covariance ``[d, d]`` of the Fokker-Planck / OU solution at time ``t``.

    Args:
      A: symmetric positive definite ``[d, d]``; b: centre ``[d]``.
      t: time ``>= 0``.
      m0, S0: initial mean and covariance (``0`` and ``I`` by default).
    """
    A = np.asarray(A, np.float64)
    b = np.asarray(b, np.float64)
    d = b.shape[0]
    if A.shape != (d, d):
        raise ValueError(f"A must be [{d}, {d}] for b of shape {b.shape}, got {A.shape}")
    if t < 0:
        raise ValueError(f"t must be >= 0, got {t}")
    m0 = np.zeros(d) if m0 is None else np.asarray(m0, np.float64)
    S0 = np.eye(d) if S0 is None else np.asarray(S0, np.float64)
    lam, Q = np.linalg.eigh(A)
    if not np.all(lam > 0):
        raise ValueError("A must be positive definite")
    E = (Q * np.exp(-lam * t)) @ Q.T
    E2 = (Q * np.exp(-2 * lam * t)) @ Q.T
    Ainv = (Q / lam) @ Q.T
    return b + E @ (m0 - b), E @ S0 @ E + Ainv @ (np.eye(d) - E2)


def gaussian_kl(m0, S0, m1, S1) -> float:
    """``KL(N(m0, S0) || N(m1, S1))`` in closed form (float64)."""
    m0, S0, m1, S1 = (np.asarray(a, np.float64) for a in (m0, S0, m1, S1))
    d = m0.shape[0]
    S1inv = np.linalg.inv(S1)
    dm = m1 - m0
    return 0.5 * float(
        np.trace(S1inv @ S0) + dm @ S1inv @ dm - d
        + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1]
    )


def symmetric_kl_to_fit(x, m, S) -> float:
    """Symmetric KL between ``N(m, S)`` and the Gaussian fitted to samples ``x [n, d]`` (``n > d``).

    Its floor for ``n`` exact samples is about ``d (d + 3) / (2 n)``.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] <= x.shape[1]:
        raise ValueError(f"expected samples [n, d] with n > d, got {x.shape}")
    mh, Sh = x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
    return gaussian_kl(mh, Sh, m, S) + gaussian_kl(m, S, mh, Sh)


def _gaussian_logpdf(m, S):
    from scipy.stats import multivariate_normal

    return multivariate_normal(m, S).logpdf


def symmetric_kl_kde(x, m, S, n_mc: int, *, seed: int) -> float:
    """Monte Carlo symmetric KL between ``N(m, S)`` and a Gaussian KDE of samples ``x [n, d]``.

    ``E_p[log p - log q] + E_q[log q - log p]`` with ``q`` the ``scipy.stats.gaussian_kde`` of
    ``x`` (Scott's rule) and ``n_mc`` draws from each law (numpy ``seed``). The KDE's smoothing
    bias grows with ``d``, so its value for exact samples is a floor well above zero.
    """
    from scipy.stats import gaussian_kde

    rng = np.random.default_rng(seed)
    kde = gaussian_kde(np.asarray(x, np.float64).T)
    logp = _gaussian_logpdf(m, S)
    x1 = rng.multivariate_normal(m, S, size=n_mc)
    x2 = kde.resample(n_mc, seed=rng).T
    return float(np.mean(logp(x1) - kde.logpdf(x1.T)) + np.mean(kde.logpdf(x2.T) - logp(x2)))


def symmetric_kl_flow(y, log_q_y, log_q_fn: Callable, m, S, n_mc: int, *, seed: int) -> float:
    """Monte Carlo symmetric KL between ``N(m, S)`` and a model ``q`` with an exact density.

    ``E_p[log p - log q]`` on ``n_mc`` draws of ``p = N(m, S)`` (numpy ``seed``) plus
    ``E_q[log q - log p]`` on the model's samples.

    Args:
      y: samples of ``q`` ``[k, d]``; log_q_y: their log-densities ``[k]``.
      log_q_fn: ``q``'s log-density at points ``[n_mc, d]`` (float32 input), e.g. a flow's
        :func:`~dynajax.transport.nf_jko.pull_back_log_density`.
      m, S: mean ``[d]`` and covariance ``[d, d]`` of ``p``.
    """
    rng = np.random.default_rng(seed)
    logp = _gaussian_logpdf(m, S)
    x1 = rng.multivariate_normal(m, S, size=n_mc)
    y = np.asarray(y, np.float64)
    return float(np.mean(logp(x1) - np.asarray(log_q_fn(x1.astype(np.float32))))
                 + np.mean(np.asarray(log_q_y, np.float64) - logp(y)))
