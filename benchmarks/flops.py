"""Arithmetic of a step against the machine: matmul FLOPs counted on the jaxpr, the GEMM peak.

A step's speed against PyTorch says nothing of how far it is from what the machine can do.
:func:`matmul_flops` counts the multiply-adds of every ``dot_general`` and convolution of a
function's jaxpr (2 FLOPs each), through ``pjit``, ``custom_jvp``/``custom_vjp``, ``remat``
(recomputation included) and ``scan`` (its body times its length). Elementwise work is not
counted: it is memory-bound and has no peak to compare with. :func:`gemm_peak_gflops` times a
large f32 matrix product, the best rate this machine reaches on dense arithmetic, and
:func:`annotate` writes ``matmul_gflop``, ``gflop_per_s`` and ``peak_fraction`` on rows.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core
import jax.numpy as jnp

from benchmarks.harness import Row, time_fn


def _subjaxprs(params: dict) -> list:
    out = []
    for v in params.values():
        for item in v if isinstance(v, (tuple, list)) else (v,):
            if isinstance(item, jax.extend.core.ClosedJaxpr):
                out.append(item.jaxpr)
            elif isinstance(item, jax.extend.core.Jaxpr):
                out.append(item)
    return out


def _count(jaxpr) -> tuple[int, bool]:
    """(FLOPs, whether a while loop was met: its body is counted once, so a lower bound)."""
    total, while_loop = 0, False
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in lhs_contract)
            continue
        if name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            spec = eqn.params["dimension_numbers"].rhs_spec  # (out features, in features, *spatial)
            per_output = rhs[spec[1]] * math.prod(rhs[i] for i in spec[2:])
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * per_output
            continue
        subs = _subjaxprs(eqn.params)
        counts = [_count(j) for j in subs]
        while_loop |= name == "while" or any(w for _, w in counts)
        if name == "scan":
            total += eqn.params["length"] * sum(c for c, _ in counts)
        elif name == "cond":
            total += max((c for c, _ in counts), default=0)
        else:
            total += sum(c for c, _ in counts)
    return total, while_loop


def matmul_flops(fn: Callable, *args: Any) -> tuple[int, bool]:
    """Matmul and convolution FLOPs of ``fn(*args)`` (2 per multiply-add), from its jaxpr.

    Returns:
        ``(flops, lower_bound)``: ``lower_bound`` is true when a ``while`` loop (unknown trip
        count) was met; its body is then counted once.
    """
    return _count(jax.make_jaxpr(fn)(*args).jaxpr)


@functools.cache
def gemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a jitted f32 ``n x n`` matrix product on the default device (median of
    ``repeats``; measured once per process)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(jnp.dot).lower(a, a).compile()
    return 2 * n**3 / time_fn(lambda: f(a, a), repeats=repeats).median_s / 1e9


def annotate(rows: Sequence[Row], flops: int, peak_gflops: float, lower_bound: bool = False) -> None:
    """Adds ``matmul_gflop`` (per step), ``gflop_per_s`` and ``peak_fraction`` to each row's extra.

    The FLOPs are the model's (the same arithmetic in every implementation of the row group),
    so ``peak_fraction`` compares the implementations on one scale.
    """
    for r in rows:
        rate = flops / r.median_s / 1e9
        r.extra.update({"matmul_gflop": flops / 1e9, "gflop_per_s": rate, "peak_fraction": rate / peak_gflops,
                        "gemm_peak_gflop_per_s": peak_gflops, **({"flops_lower_bound": True} if lower_bound else {})})


def annotate_step(rows: Sequence[Row], fn: Callable, *args: Any) -> None:
    """:func:`annotate` with the FLOPs of ``fn(*args)`` and this machine's GEMM peak."""
    flops, lower_bound = matmul_flops(fn, *args)
    annotate(rows, flops, gemm_peak_gflops(), lower_bound)
