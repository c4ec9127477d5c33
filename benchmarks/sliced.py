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
  for ``n <= 10000`` (``DYNAJAX_BENCH_SLICED_EMD_MAX_N``) and while its quadratic
  extrapolation stays under ``DYNAJAX_BENCH_SLICED_EMD_BUDGET_S`` (default 300 s; exact OT is
  ``O(n^3)`` in the worst case, about ``n^2`` to ``n^2.5`` in practice, and needs an
  ``n x n`` float64 cost matrix). It is its own reference (1.0); the ``dynajax-ssw-nN`` row
  carries ``speedup_vs_pot_emd2`` in its extra keys.

Before timing, each dynajax value is checked against POT's (relative difference < 1e-4); a
mismatch raises. The check's call (after compilation) is also a probe: implementations whose
probe exceeds a budget are timed with fewer repeats (the probe serves as warm-up), and an
implementation whose linear extrapolation from the previous size exceeds
``DYNAJAX_BENCH_SLICED_BUDGET_S`` (seconds per call, default 600) is skipped at that size and
above, with a note. A group whose slowest probe exceeds ``VERY_SLOW_PROBE_S`` (30 s) is not
repeated: each implementation's probe is its single timing (``repeats`` 1 in the JSON). ``DYNAJAX_BENCH_SLICED_MAX_N`` caps the sizes (a quick run), and
``DYNAJAX_BENCH_SLICED_EMD_MAX_N`` the exact-OT sizes. The unit is one ``point-projection``
(``per_unit = median_s / (n * 200)``). The log-log slope of time vs ``n`` per
implementation is reported as a note (and as ``scaling_slope`` on the largest row).

``DYNAJAX_BENCH_SLICED_PLOT=FILE.png`` writes the scaling plot (log-log median time vs ``n``,
one line per implementation) with matplotlib.
"""

from __future__ import annotations

import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Context, Row, Timing, register
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
VERY_SLOW_PROBE_S = 30.0  # a probe above this: the probe is the only timing


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
    emd_max_n = int(_env_float("DYNAJAX_BENCH_SLICED_EMD_MAX_N", 10000))
    budget = _env_float("DYNAJAX_BENCH_SLICED_BUDGET_S", 600.0)
    emd_budget = _env_float("DYNAJAX_BENCH_SLICED_EMD_BUDGET_S", 300.0)
    plot_path = os.environ.get("DYNAJAX_BENCH_SLICED_PLOT") or None
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
        power = 2.0 if fam == "pot-emd2" else 1.0  # optimistic: linear (quadratic for exact OT)
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
            cap = emd_budget if fam == "pot-emd2" else budget
            if predicted(fam, n) > cap:
                skipped[fam] = n
                ctx.note(
                    f"sliced: {fam} skipped from n={n} on: {last[fam][1]:.3g} s per call at "
                    f"n={last[fam][0]} extrapolates to > {cap:g} s "
                    + ("(DYNAJAX_BENCH_SLICED_EMD_BUDGET_S)" if fam == "pot-emd2"
                       else "(DYNAJAX_BENCH_SLICED_BUDGET_S)")
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
                cost = xs @ ys.T  # in place below: one n x n float64 buffer
                np.clip(cost, -1.0, 1.0, out=cost)
                np.arccos(cost, out=cost)
                np.square(cost, out=cost)
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
            slowest = max(probes.values())
            slow = slowest > SLOW_PROBE_S
            reps, warm = (min(SLOW_REPEATS, ctx.repeats), 0) if slow else (ctx.repeats, ctx.warmup)
            fns = {f"{fam}-n{n}": fn for fam, (fn, _, _) in group.items()}
            syncs = {f"{fam}-n{n}": s for fam, (_, _, s) in group.items() if s is not None}
            if slowest > VERY_SLOW_PROBE_S:
                ctx.note(
                    f"sliced: {kind} group at n={n}: slowest probe {slowest:.3g} s > "
                    f"{VERY_SLOW_PROBE_S:g} s, so the probes are the timings (1 call each)"
                )
                timings = {f"{fam}-n{n}": Timing(t, [t], []) for fam, t in probes.items()}
            else:
                if slow:
                    ctx.note(
                        f"sliced: {kind} group at n={n}: slowest probe {slowest:.3g} s "
                        f"> {SLOW_PROBE_S:g} s, so {reps} timed repeats (the probe was the warm-up)"
                    )
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
    if plot_path:
        plot_scaling(scaling, plot_path)
        ctx.note(f"sliced: scaling plot written to {plot_path}")
    return rows


def plot_scaling(scaling: dict[str, list[tuple[int, float]]], path: str) -> None:
    """Log-log plot of median seconds per call vs ``n``, one line per implementation family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {"dynajax-sw": ("C0", "-", "o"), "pot-sw": ("C0", "--", "s"),
             "dynajax-ssw": ("C1", "-", "o"), "pot-ssw": ("C1", "--", "s"),
             "pot-emd2": ("C2", ":", "^")}
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for fam, pts in scaling.items():
        ns, ts = zip(*sorted(pts))
        c, ls, mk = style.get(fam, (None, "-", "x"))
        ax.loglog(ns, ts, color=c, linestyle=ls, marker=mk, label=fam)
    ref = dict(scaling.get("dynajax-ssw", []))
    ns_all = sorted(ref)
    if len(ns_all) >= 2:  # n log n guide through the first dynajax-ssw point
        n0, t0 = ns_all[0], ref[ns_all[0]]
        g = [t0 * (n * math.log(n)) / (n0 * math.log(n0)) for n in ns_all]
        ax.loglog(ns_all, g, color="0.6", linewidth=0.8, label="n log n (guide)")
    ax.set_xlabel("n (points per measure)")
    ax.set_ylabel("seconds per call (median)")
    ax.set_title(f"SW_2 / SSW_2, d={DIM}, {N_PROJ} projections")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@register(
    "sliced",
    f"SW_2 and SSW_2 (d={DIM}, {N_PROJ} shared projections) on n = 10^2 .. 10^5 points: "
    "dynajax jit vs POT (numpy), plus POT's exact emd2 for small n",
)
def run(ctx: Context) -> list[Row]:
    return run_sliced(ctx)
