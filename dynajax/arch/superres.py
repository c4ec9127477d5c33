"""Super-resolution of periodic 2-D velocity fields from scattered samples: baselines and metrics.

Fields live on the periodic unit square, channels-first ``[2, n, n]`` with axis ``-2`` the
``x`` axis (the :mod:`dynajax.systems.navier_stokes` convention); scattered samples are
points ``[m, 2]`` in ``[0, 1)^2`` with values ``[m, 2]``.

* :func:`grid_points`: the grid nodes as points, in the order of ``field.reshape(2, -1).T``.
* :func:`periodic_cubic`: Clough-Tocher cubic interpolation (:func:`scipy.interpolate.griddata`,
  the scattered-data analogue of bicubic interpolation) of the samples tiled ``3 x 3``
  periodically, nearest-neighbour fill where undefined.
* :func:`periodic_gp`: Gaussian-process regression (scikit-learn, RBF + white-noise kernel whose
  hyper-parameters maximise the marginal likelihood of the samples), then conditioned on the
  periodically tiled samples.
* :func:`field_errors`: relative L2 error, normalised divergence and energy-spectrum errors of a
  reconstruction against the true field.
"""

from __future__ import annotations

import jax
import numpy as np

from dynajax.arch.divfree import energy_spectrum, spectral_curl, spectral_divergence

__all__ = ["field_errors", "grid_points", "periodic_cubic", "periodic_gp"]


def grid_points(n: int) -> np.ndarray:
    """The nodes ``[n * n, 2]`` of the ``n x n`` grid on ``[0, 1)^2``, ``x`` the slow axis.

    Row ``i * n + j`` is ``(i / n, j / n)``, so ``field.reshape(2, -1).T`` lists the values of a
    ``[2, n, n]`` field at these points.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    g = np.arange(n) / n
    X, Y = np.meshgrid(g, g, indexing="ij")
    return np.stack([X.ravel(), Y.ravel()], axis=1)


def _check_samples(points, values) -> tuple[np.ndarray, np.ndarray]:
    points, values = np.asarray(points, np.float64), np.asarray(values, np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or values.ndim != 2 or values.shape[0] != points.shape[0]:
        raise ValueError(f"need points [m, 2] and values [m, c], got shapes {points.shape}, {values.shape}")
    return points, values


def _tile(points: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shifts = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], dtype=float)
    return (points[None] + shifts[:, None]).reshape(-1, 2), np.tile(values, (9, 1))


def periodic_cubic(points, values, query) -> np.ndarray:
    """Clough-Tocher interpolation of periodic samples ``[m, 2] -> [m, c]`` at ``query [q, 2]``; ``[q, c]``."""
    from scipy.interpolate import griddata

    tp, tv = _tile(*_check_samples(points, values))
    out = griddata(tp, tv, query, method="cubic")
    return np.where(np.isnan(out), griddata(tp, tv, query, method="nearest"), out)


def periodic_gp(points, values, query, length_scale: float = 0.1) -> np.ndarray:
    """GP regression of periodic samples, one GP per channel; ``[q, c]`` at ``query [q, 2]``.

    The kernel ``C * RBF(l) + White`` (``l`` from ``length_scale`` within ``[1e-3, 1]``) is fitted
    by maximum marginal likelihood on the samples, then conditioned without refitting on the
    samples tiled ``3 x 3`` so that the prediction wraps around the periodic boundary.
    """
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    points, values = _check_samples(points, values)
    tp, tv = _tile(points, values)
    out = np.zeros((np.shape(query)[0], values.shape[1]))
    for c in range(values.shape[1]):
        kernel = ConstantKernel(1.0) * RBF(length_scale, (1e-3, 1.0)) + WhiteKernel(1e-4, (1e-8, 1e-1))
        fitted = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=0).fit(points, values[:, c])
        cond = GaussianProcessRegressor(fitted.kernel_, normalize_y=True, optimizer=None).fit(tp, tv[:, c])
        out[:, c] = cond.predict(query)
    return out


def field_errors(pred, true) -> dict[str, float]:
    """Errors of a reconstruction ``pred [2, n, n]`` of ``true [2, n, n]`` (float64 spectral derivatives).

    Returns:
        ``rel_l2``: ``||pred - true|| / ||true||``; ``div_norm``: ``rms(div pred) / rms(curl true)``;
        ``spectrum_err``: ``sum_k |E(k) - E_true(k)| / sum_k E_true(k)`` and ``log_spectrum_err``:
        ``mean_k |log10 E(k) / E_true(k)|``, both over the shells ``1 <= k <= (2/3)(n // 2)`` of the
        dealiased band (:func:`~dynajax.arch.energy_spectrum`).
    """
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or true.ndim != 3 or true.shape[0] != 2 or true.shape[1] != true.shape[2]:
        raise ValueError(f"need pred and true of one shape [2, n, n], got {pred.shape}, {true.shape}")
    with jax.enable_x64(True):
        curl = np.asarray(spectral_curl(true))
        div = np.asarray(spectral_divergence(pred))
        Ep, Et = np.asarray(energy_spectrum(pred)), np.asarray(energy_spectrum(true))
    ks = np.arange(1, int((2 / 3) * (true.shape[-1] // 2)) + 1)
    return {
        "rel_l2": float(np.linalg.norm(pred - true) / np.linalg.norm(true)),
        "div_norm": float(np.sqrt(np.mean(div**2)) / np.sqrt(np.mean(curl**2))),
        "spectrum_err": float(np.sum(np.abs(Ep[ks] - Et[ks])) / np.sum(Et[ks])),
        "log_spectrum_err": float(np.mean(np.abs(np.log10(np.maximum(Ep[ks], 1e-300) / Et[ks])))),
    }
