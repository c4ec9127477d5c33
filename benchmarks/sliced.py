"""Workload ``sliced``: sliced (SW_2) and spherical sliced (SSW_2) Wasserstein vs POT.

Two clouds of ``n`` points in ``d = 3`` (``n`` in 100, 1000, 10000, 100000), ``200``
projections shared by both implementations (POT takes directions as ``[d, n_proj]`` and
2-frames as ``[n_proj, d, 2]``, passed with ``n_projections=200`` as its API needs). Rows, one
per implementation and size, the size in the impl name (``dynajax-sw-n1000``):

- ``pot-sw-nN``: ``ot.sliced_wasserstein_distance`` (numpy backend, float64); the reference
  of ``dynajax-sw-nN``: ``jax.jit`` of ``dynajax.transport.sliced_wasserstein_distance``
  (float32, compile excluded and reported as ``compile_s``).
- ``pot-ssw-nN``: ``ot.sliced_wasserstein_sphere`` on points normalised onto ``S^2``; the
  reference of ``dynajax-ssw-nN`` (``spherical_sliced_wasserstein_distance``, p = 2).
- ``pot-emd2-nN``: exact ``ot.emd2`` between the same sphere points with the squared geodesic
  cost, the exact-OT baseline of the SSW paper's runtime study (Bonet et al., ICLR 2023),
  for ``n <= 1000`` only (exact OT is ``O(n^3)``). It is its own reference (1.0); the
  ``dynajax-ssw-nN`` row carries ``speedup_vs_pot_emd2`` in its extra keys.

Before timing, each dynajax value is checked against POT's (relative difference < 1e-4); a
mismatch raises. The check's call (after compilation) is also a probe: implementations whose
probe exceeds a budget are timed with fewer repeats (the probe serves as warm-up), and an
implementation whose linear extrapolation from the previous size exceeds
``DYNAJAX_BENCH_SLICED_BUDGET_S`` (seconds per call, default 20) is skipped at that size and
above, with a note. ``DYNAJAX_BENCH_SLICED_MAX_N`` caps the sizes (a quick run), and
``DYNAJAX_BENCH_SLICED_EMD_MAX_N`` the exact-OT sizes. The unit is one ``point-projection``
(``per_unit = median_s / (n * 200)``). The log-log slope of time vs ``n`` per
implementation is reported as a note (and as ``scaling_slope`` on the largest row).
"""

from __future__ import annotations

import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Context, Row, register
from dynajax.transport.sliced import (
    sliced_wasserstein_distance,
    spherical_sliced_wasserstein_distance,
)

SIZES = (100, 1000, 10000, 100000)
N_PROJ = 200
DIM = 3
RTOL = 1e-4
UNIT = "point-projection"
SLOW_PROBE_S = 1.0  # a probe above this: fewer repeats (probe counts as warm-up)
SLOW_REPEATS = 3


def _env_float(name: str, default: float) -> float:
    v = os.environ.get(name)
    return default if v in (None, "") else float(v)


def make_data(n: int, seed: int = 0):
    """Euclidean clouds ``x, y [n, 3]`` (``y`` shifted), their normalisations onto ``S^2``."""
    rng = np.random.default_rng(seed + n)
    x = rng.normal(size=(n, DIM))
    y = rng.normal(size=(n, DIM)) + 0.5
    xs = x / np.linalg.norm(x, axis=1, keepdims=True)
    ys = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x, y, xs, ys


def make_projections(seed: int = 0):
    """``[N_PROJ, 3]`` unit directions and ``[N_PROJ, 3, 2]`` orthonormal 2-frames (float64)."""
    rng = np.random.default_rng(seed)
    P = rng.normal(size=(N_PROJ, DIM))
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    q, r = np.linalg.qr(rng.normal(size=(N_PROJ, DIM, 2)))
    s = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    U = q * np.where(s == 0, 1.0, s)[:, None, :]
    return P, U


def _compile(fn, *args):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _probe(fn):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.perf_counter() - t0


def _check(what: str, got, ref, ctx: Context) -> None:
    got, ref = float(got), float(ref)
    rel = abs(got - ref) / abs(ref)
    if not rel < RTOL:  # also catches NaN
        raise RuntimeError(
            f"sliced benchmark: {what}: dynajax {got!r} vs POT {ref!r}, relative difference "
            f"{rel:.3e} >= {RTOL:g}; refusing to time computations that disagree"
        )
    ctx.note(f"check {what}: relative difference {rel:.1e} < {RTOL:g}")


def _slope(ns, ts) -> float | None:
    if len(ns) < 2:
        return None
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def run_sliced(ctx: Context, sizes=SIZES) -> list[Row]:
    name = "sliced"
    max_n = int(_env_float("DYNAJAX_BENCH_SLICED_MAX_N", max(sizes)))
    emd_max_n = int(_env_float("DYNAJAX_BENCH_SLICED_EMD_MAX_N", 1000))
    budget = _env_float("DYNAJAX_BENCH_SLICED_BUDGET_S", 20.0)
    sizes = [n for n in sizes if n <= max_n]
    try:
        import ot
    except ImportError as e:
        ot = None
        ctx.note(
            f"sliced: POT not importable ({e}); install the [bench] extra; pot-* rows are "
            "skipped and ratio_vs_ref is null"
        )
    P, U = make_projections()
    Pj, Uj = jnp.asarray(P, jnp.float32), jnp.asarray(U, jnp.float32)
    sw = lambda a, b, p: sliced_wasserstein_distance(a, b, projections=p)  # noqa: E731
    ssw = lambda a, b, u: spherical_sliced_wasserstein_distance(a, b, projections=u)  # noqa: E731

    last: dict[str, tuple[int, float]] = {}  # family -> (n, seconds per call) at the last size
    skipped: dict[str, int] = {}  # family -> first n skipped
    scaling: dict[str, list[tuple[int, float]]] = {}
    rows: list[Row] = []
    no_sync = lambda x: x  # noqa: E731  (numpy is synchronous)

    def predicted(fam: str, n: int) -> float:
        if fam not in last:
            return 0.0
        n0, t0 = last[fam]
        power = 3.0 if fam == "pot-emd2" else 1.0  # optimistic: linear (cubic for exact OT)
        return t0 * (n / n0) ** power

    for n in sizes:
        x, y, xs, ys = make_data(n)
        xj, yj = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
        xsj, ysj = jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32)
        units = n * N_PROJ
        groups = []  # (family -> callable, compile_s, sync) per comparison group

        def want(fam: str) -> bool:
            if fam in skipped:
                return False
            if predicted(fam, n) > budget:
                skipped[fam] = n
                ctx.note(
                    f"sliced: {fam} skipped from n={n} on: {last[fam][1]:.3g} s per call at "
                    f"n={last[fam][0]} extrapolates to > {budget:g} s "
                    "(DYNAJAX_BENCH_SLICED_BUDGET_S)"
                )
                return False
            return True

        sw_group: dict[str, tuple] = {}
        if want("dynajax-sw"):
            f, c = _compile(sw, xj, yj, Pj)
            sw_group["dynajax-sw"] = (lambda f=f: f(xj, yj, Pj), c, None)
        if ot is not None and want("pot-sw"):
            sw_group["pot-sw"] = (
                lambda: ot.sliced_wasserstein_distance(x, y, n_projections=N_PROJ, projections=P.T),
                None, no_sync,
            )
        groups.append(("sw", sw_group))

        ssw_group: dict[str, tuple] = {}
        if want("dynajax-ssw"):
            g, c = _compile(ssw, xsj, ysj, Uj)
            ssw_group["dynajax-ssw"] = (lambda g=g: g(xsj, ysj, Uj), c, None)
        if ot is not None and want("pot-ssw"):
            ssw_group["pot-ssw"] = (
                lambda: ot.sliced_wasserstein_sphere(xs, ys, n_projections=N_PROJ, projections=U),
                None, no_sync,
            )
        if ot is not None and n <= emd_max_n and want("pot-emd2"):

            def emd2(xs=xs, ys=ys, n=n):
                cost = np.arccos(np.clip(xs @ ys.T, -1.0, 1.0)) ** 2
                w = np.full(n, 1.0 / n)
                return ot.emd2(w, w, cost, numItermax=10**7)

            ssw_group["pot-emd2"] = (emd2, None, no_sync)
        groups.append(("ssw", ssw_group))

        for kind, group in groups:
            if not group:
                continue
            probes = {}
            vals = {}
            for fam, (fn, _, _) in group.items():
                vals[fam], probes[fam] = _probe(fn)
                last[fam] = (n, probes[fam])
            if f"dynajax-{kind}" in vals and f"pot-{kind}" in vals:
                _check(f"dynajax-{kind} vs pot-{kind} at n={n}", vals[f"dynajax-{kind}"],
                       vals[f"pot-{kind}"], ctx)
            slow = max(probes.values()) > SLOW_PROBE_S
            reps, warm = (min(SLOW_REPEATS, ctx.repeats), 0) if slow else (ctx.repeats, ctx.warmup)
            if slow:
                ctx.note(
                    f"sliced: {kind} group at n={n}: slowest probe {max(probes.values()):.3g} s "
                    f"> {SLOW_PROBE_S:g} s, so {reps} timed repeats (the probe was the warm-up)"
                )
            fns = {f"{fam}-n{n}": fn for fam, (fn, _, _) in group.items()}
            syncs = {f"{fam}-n{n}": s for fam, (_, _, s) in group.items() if s is not None}
            sub = Context(repeats=reps, warmup=warm, echo=False)
            timings = sub.time_interleaved(fns, syncs)
            for fam, (_, comp, _) in group.items():
                impl = f"{fam}-n{n}"
                if fam == "pot-emd2":
                    ref = impl
                elif fam.startswith("dynajax-"):
                    ref = f"pot-{kind}-n{n}" if f"pot-{kind}" in group else None
                else:
                    ref = impl
                row = Row.from_timing(name, impl, timings[impl], units=units, unit=UNIT, ref=ref,
                                      compile_s=comp)
                row.extra.update({"n": n, "n_proj": N_PROJ, "d": DIM, "family": fam,
                                  "value": float(vals[fam])})
                rows.append(row)
                scaling.setdefault(fam, []).append((n, timings[impl].median_s))
                last[fam] = (n, timings[impl].median_s)
            if "pot-emd2" in group and "dynajax-ssw" in group:
                sp = timings[f"pot-emd2-n{n}"].median_s / timings[f"dynajax-ssw-n{n}"].median_s
                rows[-len(group)].extra["speedup_vs_pot_emd2"] = sp  # the dynajax-ssw row
                ctx.note(f"sliced: n={n}: median pot-emd2 / dynajax-ssw = {sp:.3g} (> 1: SSW faster than exact OT)")

    for fam, pts in scaling.items():
        ns, ts = zip(*pts)
        s_all = _slope(ns, ts)
        big = [(a, b) for a, b in pts if a >= 1000]
        s_big = _slope(*zip(*big)) if len(big) >= 2 else None
        if s_all is not None:
            msg = f"sliced: {fam} log-log slope of time vs n: {s_all:.2f} over n={list(ns)}"
            if s_big is not None:
                msg += f", {s_big:.2f} over n >= 1000"
            ctx.note(msg + ("" if fam == "pot-emd2" else " (n log n reads as ~1.0-1.1 here)"))
            for r in rows:
                if r.extra.get("family") == fam and r.extra["n"] == ns[-1]:
                    r.extra["scaling_slope"] = s_all
                    r.extra["scaling_slope_n_ge_1000"] = s_big
    if math.isfinite(budget) and skipped:
        ctx.note("sliced: skipped families (first n): " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
    return rows


@register(
    "sliced",
    f"SW_2 and SSW_2 (d={DIM}, {N_PROJ} shared projections) on n = 10^2 .. 10^5 points: "
    "dynajax jit vs POT (numpy), plus POT's exact emd2 for small n",
)
def run(ctx: Context) -> list[Row]:
    return run_sliced(ctx)
