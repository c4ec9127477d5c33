"""The persistent compilation cache: a second process loads the program the first compiled."""

import subprocess
import sys

import pytest

import dynajax

PROGRAM = """
import sys, jax, jax.numpy as jnp, dynajax
dynajax.enable_compilation_cache(sys.argv[1], min_compile_seconds=0.0)
f = jax.jit(lambda x: jnp.sin(x) @ jnp.cos(x).T + jnp.tanh(x).sum())
print(float(f(jnp.ones((64, 64))).sum()))
"""


@pytest.mark.slow
def test_second_process_reuses_the_compiled_program(tmp_path):
    cache = tmp_path / "jax-compile"

    def run():
        out = subprocess.run([sys.executable, "-c", PROGRAM, str(cache)], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout, {p.name: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}

    first, written = run()
    assert written, "nothing was written to the cache"
    second, after = run()
    # same result, and the second run read the entries the first wrote: none new, none rewritten
    assert second == first and after == written


def test_bad_arguments(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot create output directory"):
        dynajax.enable_compilation_cache(blocker / "sub")
    with pytest.raises(ValueError, match="min_compile_seconds must be >= 0"):
        dynajax.enable_compilation_cache(tmp_path, min_compile_seconds=-1)
