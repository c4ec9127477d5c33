"""Workload ``gantk``: closed-form NTK evaluation and infinite-width particle steps (float32).

Rows (``ratio_vs_ref > 1``: faster than the reference):

- ``gantk-ntk1000`` vs ``direct-ntk1000``: the 1000 x 1000 ReLU NTK of gantk2's 3-layer net.
  The reference evaluates the same recursion pair by pair (``vmap(vmap(k))`` of a scalar
  kernel), the direct way to write it; neural-tangents itself does not import on JAX >= 0.6
  (spec: it takes about 50 ms on this kind of machine).
- ``gantk-ipm-step500`` vs ``direct-ipm-step500``: one infinite-IPM particle step at
  N = M = 500: gantk's first-argument witness gradient vs autodiff of ``(tau/2) MMD^2``
  through the three kernel matrices (same result, see the tests).
- ``gantk-lsgan-{krylov,rk4,eigh}-step500``: one infinite-LSGAN step at N = M = 500 with each
  closed-form evaluation; the reference is ``eigh``.
- ``gantk-ipm-step-n{N}``: one blocked (1024-row) IPM step with ``N`` particles and ``N``
  targets, to show the memory stays ``O(block * N)``; ``N = 5000`` by default,
  ``DYNAJAX_BENCH_GANTK_BIG=1`` adds ``N = 20000`` (about a minute per call on 2 cores).
"""

from __future__ import annotations

import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.harness import Context, Row, register


def _scalar_relu_ntk(x, y):
    """The 3-hidden-layer ReLU NTK (sigma_w = 1, sigma_b = 1, output without bias) for one pair."""
    d = x.shape[0]
    q11, q22, q12 = x @ x / d + 1.0, y @ y / d + 1.0, x @ y / d + 1.0
    th = q12
    for layer in range(3):
        s = jnp.sqrt(jnp.maximum(q11 * q22 - q12**2, 0.0))
        ang = jnp.arctan2(s, q12)
        e = (s + (jnp.pi - ang) * q12) / (2 * jnp.pi)
        ed = (jnp.pi - ang) / (2 * jnp.pi)
        b = 1.0 if layer < 2 else 0.0
        q11, q22, q12 = q11 / 2 + b, q22 / 2 + b, e + b
        th = q12 + th * ed
    return th


def _direct_ntk(x1, x2):
    return jax.vmap(lambda a: jax.vmap(lambda b: _scalar_relu_ntk(a, b))(x2))(x1)


@register("gantk", "gantk: 1000x1000 ReLU NTK, infinite-IPM and -LSGAN particle steps at N = M = 500")
def run(ctx: Context) -> list[Row]:
    from gantk import flows
    from gantk import kernels as K

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(500, 2)), jnp.float32)
    y = jnp.asarray(5 * rng.normal(size=(500, 2)), jnp.float32)
    xy = jnp.concatenate([x, y])
    layer = K.get_kernel("relu")[0]
    rows: list[Row] = []

    def compiled(f, *args):
        t0 = time.perf_counter()
        c = jax.jit(f).lower(*args).compile()
        return c, time.perf_counter() - t0

    ntk_g, cg = compiled(lambda a: K.kernel_matrix(layer, a, a), xy)
    ntk_d, cd = compiled(_direct_ntk, xy, xy)
    err = float(jnp.max(jnp.abs(ntk_g(xy) - ntk_d(xy, xy)) / jnp.max(jnp.abs(ntk_d(xy, xy)))))
    # float32: on the diagonal sqrt(q11 q22 - q12^2) is the root of a rounding error (~3e-4 q)
    if err > 2e-3:
        raise AssertionError(f"gantk NTK differs from the direct recursion: {err}")
    ctx.note(f"NTK gantk vs direct: max relative difference {err:.1e} (float32, diagonal cusp)")
    t = ctx.time_interleaved({"g": lambda: ntk_g(xy), "d": lambda: ntk_d(xy, xy)})
    rows += [Row.from_timing("gantk", "direct-ntk1000", t["d"], units=1e6, unit="kernel-entry",
                             ref="direct-ntk1000", compile_s=cd),
             Row.from_timing("gantk", "gantk-ntk1000", t["g"], units=1e6, unit="kernel-entry",
                             ref="direct-ntk1000", compile_s=cg, extra={"target_s": 0.020})]

    cfg = flows.FlowConfig("ipm", "relu", eta=1000.0)

    def gantk_ipm(a):
        return flows.make_step(cfg, y)(flows.FlowState(a, (), jax.random.key(0))).x

    def direct_ipm(a):
        return a - cfg.eta * jax.grad(lambda z: 0.5 * cfg.tau * flows.ntk_mmd2(
            lambda u, v, get: _direct_ntk(u, v), z, y))(a)

    ig, cig = compiled(gantk_ipm, x)
    idr, cid = compiled(direct_ipm, x)
    err = float(jnp.max(jnp.abs(ig(x) - idr(x))))
    if err > 1e-3:
        raise AssertionError(f"gantk IPM step differs from autodiff of MMD^2: {err}")
    t = ctx.time_interleaved({"g": lambda: ig(x), "d": lambda: idr(x)})
    rows += [Row.from_timing("gantk", "direct-ipm-step500", t["d"], units=500, unit="particle-step",
                             ref="direct-ipm-step500", compile_s=cid),
             Row.from_timing("gantk", "gantk-ipm-step500", t["g"], units=500, unit="particle-step",
                             ref="direct-ipm-step500", compile_s=cig, extra={"target_s": 0.015})]

    fns, comp = {}, {}
    for method in ("eigh", "krylov", "rk4"):
        c = flows.FlowConfig("lsgan", "relu", eta=1000.0, lsgan_method=method, krylov_dim=24)
        fns[method], comp[method] = compiled(
            lambda a, c=c: flows.make_step(c, y)(flows.FlowState(a, (), jax.random.key(0))).x, x)
    ref = fns["eigh"](x)
    for method in ("krylov", "rk4"):
        ctx.note(f"lsgan step {method} vs eigh: max |dx| = {float(jnp.max(jnp.abs(fns[method](x) - ref))):.2e}")
    t = ctx.time_interleaved({m: (lambda f=f: f(x)) for m, f in fns.items()})
    for m in fns:
        rows.append(Row.from_timing("gantk", f"gantk-lsgan-{m}-step500", t[m], units=500, unit="particle-step",
                                    ref="gantk-lsgan-eigh-step500", compile_s=comp[m],
                                    extra={"target_s": 0.060} if m == "krylov" else {}))

    sizes = [5000] + ([20000] if os.environ.get("DYNAJAX_BENCH_GANTK_BIG") == "1" else [])
    for n in sizes:
        xb = jnp.asarray(rng.normal(size=(n, 2)), jnp.float32)
        yb = jnp.asarray(5 * rng.normal(size=(n, 2)), jnp.float32)
        cb = flows.FlowConfig("ipm", "relu", eta=2.0 * n, block_size=1024)
        f, cc = compiled(lambda a, b, cb=cb: flows.make_step(cb, b)(flows.FlowState(a, (), jax.random.key(0))).x, xb, yb)
        tb = ctx.time_interleaved({"b": lambda: f(xb, yb)}) if n <= 5000 else None
        if tb is None:
            t0 = time.perf_counter()
            jax.block_until_ready(f(xb, yb))
            from benchmarks.harness import Timing

            el = time.perf_counter() - t0
            tb = {"b": Timing(el, [el], [])}
        rows.append(Row.from_timing("gantk", f"gantk-ipm-step-n{n}", tb["b"], units=n, unit="particle-step",
                                    ref=f"gantk-ipm-step-n{n}", compile_s=cc,
                                    extra={"block_size": 1024, "approx_peak_block_bytes": int(1024 * 2 * n * 4 * 12)}))
    if not math.isfinite(rows[-1].median_s):
        ctx.note("non-finite timing")
    return rows
