"""Workload ``hyperbolic``: GHSW / HHSW vs exact hyperbolic OT and POT's Euclidean SW; barycenters.

Two clouds of ``n`` wrapped-normal samples on the Lorentz model ``L^2`` (``[n, 3]``; ``n`` in 100,
1000, 3000, 10000, capped by ``DYNAJAX_BENCH_HYPERBOLIC_MAX_N``), ``200`` directions. Rows (size in the
impl name):

- ``pot-emd2-nN``: ``ot.emd2`` with the squared geodesic cost ``arccosh(-<x, y>_L)^2`` (float64
  numpy), for ``n <= DYNAJAX_BENCH_HYPERBOLIC_EMD_MAX_N`` (default 3000): the exact OT that the
  sliced distances replace (Bonet et al. 2023), and the reference of
- ``dynajax-ghsw-nN`` / ``dynajax-hhsw-nN``: ``jax.jit`` of
  :func:`dynajax.transport.hyperbolic_sliced_wasserstein_distance` (geodesic / horospherical).
- ``pot-sw-nN``: ``ot.sliced_wasserstein_distance`` of the same points as vectors of ``R^3``, the
  reference of ``dynajax-sw-nN`` (the same directions; values checked to 1e-4 relative).
- ``pot-free-bary`` / ``dynajax-free-bary``: ``ot.lp.free_support_barycenter`` vs
  :func:`dynajax.transport.free_support_barycenter` (exact plans) on 3 clouds of 300 points in
  ``R^2``, 10 iterations, the same start (points checked to 1e-3).

The unit is one point-projection (one point-iteration for the barycenters).
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Context, Row, register
from dynajax.transport.barycenter import free_support_barycenter
from dynajax.transport.hyperbolic import poincare_to_lorentz, wrapped_normal_sample
from dynajax.transport.hyperbolic_sliced import hyperbolic_sliced_wasserstein_distance
from dynajax.transport.sliced import random_directions, sliced_wasserstein_distance

SIZES = (100, 1000, 3000, 10000)
N_PROJ = 200
RTOL = 1e-4


def make_data(n: int):
    """Lorentz clouds ``x, y [n, 3]`` (float64 numpy) of two wrapped normals."""
    x = wrapped_normal_sample(jnp.array([1.0, 0.0, 0.0]), 0.3 * jnp.eye(2), n, key=jax.random.key(n))
    mu = poincare_to_lorentz(jnp.array([0.3, 0.2]))
    y = wrapped_normal_sample(mu, 0.2 * jnp.eye(2), n, key=jax.random.key(n + 1))
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def _compile(fn, *args):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _close(what, got, ref, rtol, ctx):
    rel = float(np.max(np.abs(np.asarray(got) - np.asarray(ref))) / max(float(np.max(np.abs(ref))), 1e-30))
    if not rel < rtol:
        raise RuntimeError(f"hyperbolic benchmark: {what}: dynajax vs POT relative difference {rel:.3e} >= {rtol:g}")
    ctx.note(f"check {what}: relative difference {rel:.1e} < {rtol:g}")


def _group(ctx, name, fns, refs, units, unit, comp, extra):
    """Times ``fns`` (impl -> (call, sync)) round-robin; one row per impl."""
    sub = Context(repeats=ctx.repeats, warmup=ctx.warmup, echo=False)
    timings = sub.time_interleaved({k: f for k, (f, _) in fns.items()},
                                   {k: s for k, (_, s) in fns.items() if s is not None})
    rows = []
    for impl in fns:
        # a pot-* row is its own reference; a dynajax-* row without one (no exact OT at that n) has none
        ref = refs.get(impl, impl if impl.startswith("pot-") else None)
        row = Row.from_timing(name, impl, timings[impl], units=units, unit=unit, ref=ref,
                              compile_s=comp.get(impl))
        row.extra.update(extra)
        rows.append(row)
    return rows


@register("hyperbolic", "GHSW/HHSW vs exact hyperbolic OT (POT emd2) and POT's Euclidean SW; "
          "free-support barycenter vs POT")
def run_hyperbolic(ctx: Context, sizes=SIZES) -> list[Row]:
    import ot

    name = "hyperbolic"
    max_n = int(os.environ.get("DYNAJAX_BENCH_HYPERBOLIC_MAX_N") or max(sizes))
    emd_max_n = int(os.environ.get("DYNAJAX_BENCH_HYPERBOLIC_EMD_MAX_N") or 3000)
    th2 = random_directions(N_PROJ, 2, key=jax.random.key(0))
    th3 = np.asarray(random_directions(N_PROJ, 3, key=jax.random.key(1)), np.float64)
    th3j = jnp.asarray(th3, jnp.float32)
    no_sync = lambda v: v  # noqa: E731
    rows: list[Row] = []
    for n in [s for s in sizes if s <= max_n]:
        x, y = make_data(n)
        xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
        ghsw, cg = _compile(lambda a, b: hyperbolic_sliced_wasserstein_distance(a, b, projections=th2), xj, yj)
        hhsw, ch = _compile(lambda a, b: hyperbolic_sliced_wasserstein_distance(
            a, b, projections=th2, projection="horospherical"), xj, yj)
        sw, cs = _compile(lambda a, b: sliced_wasserstein_distance(a, b, projections=th3j), xj, yj)
        _close(f"dynajax-sw vs pot-sw at n={n}", sw(xj, yj),
               ot.sliced_wasserstein_distance(x, y, n_projections=N_PROJ, projections=th3.T), RTOL, ctx)
        fns = {f"dynajax-ghsw-n{n}": (lambda: ghsw(xj, yj), None), f"dynajax-hhsw-n{n}": (lambda: hhsw(xj, yj), None),
               f"dynajax-sw-n{n}": (lambda: sw(xj, yj), None),
               f"pot-sw-n{n}": (lambda: ot.sliced_wasserstein_distance(x, y, n_projections=N_PROJ, projections=th3.T),
                                no_sync)}
        refs = {f"dynajax-sw-n{n}": f"pot-sw-n{n}"}
        if n <= emd_max_n:
            def emd2(x=x, y=y, n=n):
                c = x[:, 1:] @ y[:, 1:].T - np.outer(x[:, 0], y[:, 0])
                np.arccosh(np.maximum(-c, 1.0), out=c)
                np.square(c, out=c)
                w = np.full(n, 1.0 / n)
                return ot.emd2(w, w, c, numItermax=10**7)

            fns[f"pot-emd2-n{n}"] = (emd2, no_sync)
            refs.update({f"dynajax-ghsw-n{n}": f"pot-emd2-n{n}", f"dynajax-hhsw-n{n}": f"pot-emd2-n{n}"})
        comp = {f"dynajax-ghsw-n{n}": cg, f"dynajax-hhsw-n{n}": ch, f"dynajax-sw-n{n}": cs}
        rows += _group(ctx, name, fns, refs, n * N_PROJ, "point-projection", comp, {"n": n, "n_proj": N_PROJ})
    # free-support barycenter: 3 clouds of 300 points, 10 fixed-point iterations from one start
    r = np.random.default_rng(0)
    ys = [r.normal(size=(300, 2)) * (1 + k) + 2 * k for k in range(3)]
    bs = [np.full(300, 1 / 300)] * 3
    x0 = r.normal(size=(300, 2))
    pot_bary = lambda: ot.lp.free_support_barycenter(ys, bs, x0, numItermax=10, stopThr=0.0)  # noqa: E731
    dj_bary = lambda: free_support_barycenter(ys, x0, n_iter=10, tol=0.0).x  # noqa: E731
    _close("dynajax-free-bary vs pot-free-bary", dj_bary(), pot_bary(), 1e-3, ctx)
    rows += _group(ctx, name, {"pot-free-bary": (pot_bary, no_sync), "dynajax-free-bary": (dj_bary, None)},
                   {"dynajax-free-bary": "pot-free-bary"}, 300 * 10, "point-iteration", {}, {"n": 300, "n_iter": 10})
    return rows
