"""Synchronous CPU dispatch on one-core processes (the pure_callback hang of jax-ml/jax#25861)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dynajax import cpu_dispatch

REPO = Path(__file__).resolve().parents[2]


def test_usable_cores_is_the_affinity():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    assert cpu_dispatch.usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
@pytest.mark.parametrize("n_cores", [1, 2])
def test_dispatch_is_synchronous_exactly_on_one_core(n_cores):
    cores = sorted(os.sched_getaffinity(0))[:n_cores]
    if len(cores) < n_cores:
        pytest.skip(f"needs {n_cores} cores")
    # a fresh process, pinned before JAX starts, as `taskset` would: the CLI's first call decides
    code = (f"import os; os.sched_setaffinity(0, {cores}); import jax, dynajax; "
            "from jax._src import xla_bridge as xb; "
            "print(dynajax.use_sync_dispatch_on_one_core(), xb._CPU_ENABLE_ASYNC_DISPATCH.value)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == (["True", "False"] if n_cores == 1 else ["False", "True"])
