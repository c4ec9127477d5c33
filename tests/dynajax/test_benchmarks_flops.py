"""Matmul FLOPs counted on the jaxpr against hand counts, and their annotation of rows."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level package of the repo, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402
from benchmarks.flops import annotate, matmul_flops  # noqa: E402

B, N, M = 8, 5, 3


def test_dense_product_and_its_gradient():
    w, x = jnp.ones((N, M)), jnp.ones((B, N))
    assert matmul_flops(lambda w, x: x @ w, w, x) == (2 * B * N * M, False)
    # forward + the weight gradient x^T g (no input gradient is asked for)
    assert matmul_flops(jax.grad(lambda w, x: jnp.sum(jnp.tanh(x @ w))), w, x) == (4 * B * N * M, False)
    # under jit and remat the recomputed forward counts too
    remat = jax.grad(lambda w, x: jnp.sum(jax.checkpoint(lambda a: jnp.tanh(a @ w))(x)))
    assert matmul_flops(jax.jit(remat), w, x) == (6 * B * N * M, False)


def test_scan_counts_its_body_times_its_length_and_while_is_a_lower_bound():
    x, w = jnp.ones((B, N)), jnp.ones((N, N))
    scanned = lambda w, x: jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=7)[0]  # noqa: E731
    assert matmul_flops(scanned, w, x) == (7 * 2 * B * N * N, False)
    looped = lambda w, x: jax.lax.while_loop(lambda c: c[1] < 7, lambda c: (c[0] @ w, c[1] + 1), (x, 0))[0]  # noqa: E731
    assert matmul_flops(looped, w, x) == (2 * B * N * N, True)
    branch = lambda w, x: jax.lax.cond(x.sum() > 0, lambda: x @ w @ w, lambda: x)  # noqa: E731
    assert matmul_flops(branch, w, x) == (2 * 2 * B * N * N, False)


def test_convolution_counts_kernel_size_times_input_features_per_output():
    img, k = jnp.ones((2, 3, 10, 10)), jnp.ones((4, 3, 3, 3))  # NCHW, OIHW, SAME padding
    assert matmul_flops(lambda k, i: jax.lax.conv(i, k, (1, 1), "SAME"), k, img) == (2 * 2 * 4 * 10 * 10 * 3 * 9, False)


def test_annotate_gives_rate_and_fraction_of_peak():
    rows = [harness.Row("w", "a", 0.5, units=1, unit="step"), harness.Row("w", "b", 2.0, units=1, unit="step")]
    annotate(rows, 4e9, peak_gflops=100.0)
    assert [r.extra["gflop_per_s"] for r in rows] == [8.0, 2.0]
    assert rows[0].extra["peak_fraction"] == pytest.approx(0.08) and rows[0].extra["matmul_gflop"] == 4.0
    table = harness.format_table(rows)
    assert "GFLOP/s" in table and "8.0%" in table and "2.0%" in table
