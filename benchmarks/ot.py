"""Workload ``ot``: exact W2^2 and entropic (Sinkhorn) OT on 2000 x 2000 point clouds vs POT.

Two clouds of ``n = 2000`` points in ``d = 2`` (Gaussian, the second shifted and scaled),
uniform weights, squared Euclidean cost. Rows (unit: one ``cost-entry``, ``n * n``):

- ``pot-emd2``: ``ot.emd2`` (network simplex, float64) on the precomputed cost matrix; the
  reference of ``dynajax-exact-w2``: ``jax.jit`` of :func:`dynajax.transport.exact_w2`
  (cost on device in float32, assignment by scipy's ``linear_sum_assignment`` on the host).
- ``pot-sinkhorn2``: ``ot.sinkhorn2`` (numpy, float64, ``method="sinkhorn"``,
  ``stopThr`` = ``THRESHOLD``); the reference of ``dynajax-sinkhorn``: ``jax.jit`` of
  :func:`dynajax.transport.sinkhorn` (ott-jax, float32, same epsilon and threshold). Both
  get the same absolute ``epsilon = EPS_REL * mean(C)``. Each call of the POT rows includes
  building the cost matrix (as the dynajax calls do).

Values are checked before timing: exact W2^2 within ``RTOL_EXACT`` (float32 vs float64),
the linear part ``<P, C>`` of the entropic plans within ``RTOL_SINKHORN`` (the two solvers
stop on different marginal criteria). ``DYNAJAX_BENCH_OT_N`` overrides ``n``.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Context, Row, register
from dynajax.transport.ot import exact_w2, sinkhorn

N, DIM = 2000, 2
EPS_REL, THRESHOLD, MAX_ITER = 0.05, 1e-3, 2000
RTOL_EXACT, RTOL_SINKHORN = 1e-3, 2e-2
UNIT = "cost-entry"


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM))
    y = 0.7 * rng.normal(size=(n, DIM)) + np.array([2.0, 0.5])
    return x, y


def _sqdist_np(x, y):
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def _check(what: str, got: float, ref: float, rtol: float, ctx: Context) -> None:
    rel = abs(got - ref) / abs(ref)
    if not rel < rtol:
        raise RuntimeError(f"ot benchmark: {what}: dynajax {got!r} vs POT {ref!r}, relative "
                           f"difference {rel:.3e} >= {rtol:g}; refusing to time")
    ctx.note(f"check {what}: relative difference {rel:.1e} < {rtol:g}")


def run_ot(ctx: Context, n: int | None = None) -> list[Row]:
    n = int(os.environ.get("DYNAJAX_BENCH_OT_N") or (n or N))
    x, y = make_data(n)
    eps = float(EPS_REL * _sqdist_np(x, y).mean())
    xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    try:
        import ot
    except ImportError as e:
        ot = None
        ctx.note(f"ot: POT not importable ({e}); install the [bench] extra; ratios are null")
    w = np.full(n, 1.0 / n)

    t0 = time.perf_counter()
    f_exact = jax.jit(exact_w2).lower(xj, yj).compile()
    c_exact = time.perf_counter() - t0
    sk = lambda a, b: sinkhorn(a, b, epsilon=eps, threshold=THRESHOLD,
                               max_iterations=MAX_ITER).transport_cost
    t0 = time.perf_counter()
    f_sk = jax.jit(sk).lower(xj, yj).compile()
    c_sk = time.perf_counter() - t0

    groups = {"exact": {"dynajax-exact-w2": lambda: f_exact(xj, yj)},
              "sinkhorn": {"dynajax-sinkhorn": lambda: f_sk(xj, yj)}}
    if ot is not None:
        groups["exact"]["pot-emd2"] = lambda: ot.emd2(w, w, _sqdist_np(x, y), numItermax=10**7)
        groups["sinkhorn"]["pot-sinkhorn2"] = lambda: ot.sinkhorn2(
            w, w, _sqdist_np(x, y), eps, method="sinkhorn", stopThr=THRESHOLD,
            numItermax=MAX_ITER)
        _check(f"exact W2^2 at n={n}", float(groups["exact"]["dynajax-exact-w2"]()),
               float(groups["exact"]["pot-emd2"]()), RTOL_EXACT, ctx)
        _check(f"Sinkhorn <P, C> at n={n}, eps={eps:.3g}",
               float(groups["sinkhorn"]["dynajax-sinkhorn"]()),
               float(groups["sinkhorn"]["pot-sinkhorn2"]()), RTOL_SINKHORN, ctx)
    rows = []
    refs = {"exact": "pot-emd2", "sinkhorn": "pot-sinkhorn2"}
    comp = {"dynajax-exact-w2": c_exact, "dynajax-sinkhorn": c_sk}
    syncs = {"pot-emd2": lambda v: v, "pot-sinkhorn2": lambda v: v}
    for kind, fns in groups.items():
        timings = ctx.time_interleaved(fns, {k: s for k, s in syncs.items() if k in fns})
        for impl, t in timings.items():
            ref = refs[kind] if refs[kind] in fns else None
            rows.append(Row.from_timing("ot", impl, t, units=n * n, unit=UNIT, ref=ref,
                                        compile_s=comp.get(impl)))
            rows[-1].extra.update({"n": n, "d": DIM, "epsilon": eps if kind == "sinkhorn" else None})
    return rows


@register("ot", f"exact W2^2 and Sinkhorn (eps = {EPS_REL} mean cost) on {N} x {N} 2-D clouds: "
          "dynajax (scipy assignment / ott-jax) vs POT (emd2 / sinkhorn2)")
def run(ctx: Context) -> list[Row]:
    return run_ot(ctx)
