"""Tests for dynajax.parallel.

The multi-device checks run `_parallel_worker.py` in subprocesses, because the number of
XLA:CPU host devices (``XLA_FLAGS=--xla_force_host_platform_device_count``) is fixed when
JAX starts: one process with 4 devices (sharded step == single-device step to 1e-6,
shardings, bad inputs), and two processes with 2 devices each connected through
``initialize_distributed`` on localhost (each feeds its half of the batch via
``global_batch``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dynajax import parallel as par

WORKER = Path(__file__).with_name("_parallel_worker.py")
REPO = Path(__file__).resolve().parents[2]
TOL = 1e-6
_DIST_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def _env(n_devices: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}
    # the caller's flags (make test's fast-compile ones) plus the host device count
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n_devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _result(stdout: str, stderr: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"worker printed no result.\nstdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# ------------------------------------------- subprocesses, started together


@pytest.fixture(scope="module")
def workers() -> dict:
    """Runs the 4-device worker and the two 2-device multi-host workers concurrently."""
    port = _free_port()
    commands = {
        "sharded": (["sharded"], 4),
        "host0": (["multihost", "0", str(port)], 2),
        "host1": (["multihost", "1", str(port)], 2),
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            env=_env(n),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (args, n) in commands.items()
    }
    results = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, f"{name} failed:\n{err[-3000:]}"
            results[name] = _result(out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.fixture(scope="module")
def sharded(workers) -> dict:
    return workers["sharded"]


def test_sharded_step_equals_single_device(sharded):
    assert sharded["n_devices"] == 4
    assert sharded["mesh_shape"] == {"data": 4}
    assert sharded["param_diff"] <= TOL
    assert sharded["metric_diff"] <= TOL
    assert sharded["key_equal"]  # typed PRNG key in the state advances identically
    assert sharded["step_count"] == 5


def test_sharded_variants_agree(sharded):
    # numpy inputs, a batch committed to one device, a 2-device sub-mesh with donated state.
    for name in ("unplaced_param_diff", "committed_param_diff", "mesh2_param_diff"):
        assert sharded[name] <= TOL, name
    assert sharded["mesh2_metric_diff"] <= TOL
    assert sharded["mesh2_state_devices"] == 2


def test_output_and_batch_shardings(sharded):
    assert sharded["state_replicated"]
    assert sharded["key_sharding_replicated"]
    assert sharded["metrics_replicated"]
    assert sharded["batch_n_shards"] == 4
    assert sharded["batch_devices"] == 4
    assert sharded["batch_shard_shapes"] == [[8, 3]]
    assert sharded["batch_spec_ok"]
    assert sharded["global_batch_equal"]
    assert sharded["global_batch_n_shards"] == 4


def test_bad_inputs_raise_clear_errors(sharded):
    for name in ("err_shard_6", "err_step_6", "err_global_6"):
        msg = sharded[name]
        assert msg is not None, name
        assert "6" in msg and "4" in msg, msg
    msg = sharded["err_mesh_8"]
    assert msg is not None and "8" in msg and "4 are available" in msg
    assert "xla_force_host_platform_device_count" in msg
    assert sharded["err_mismatch"] is not None and "leading" in sharded["err_mismatch"]
    assert sharded["err_scalar"] is not None and "scalar" in sharded["err_scalar"]


# ------------------------------------------------------ 2 processes x 2 devices


def test_multihost_two_processes_equal_single_device(workers):
    results = [workers["host0"], workers["host1"]]
    for pid, r in enumerate(results):
        assert r["active"] is True
        assert r["process_count"] == 2
        assert r["process_index"] == pid
        assert r["n_global_devices"] == 4
        assert r["n_local_devices"] == 2
        assert r["global_batch_shape"] == [32, 3]
        assert r["global_batch_local_shards"] == 2
        assert r["param_diff"] <= TOL
        assert r["metric_diff"] <= TOL
        assert r["err_local_batch"] is not None and "global_batch" in r["err_local_batch"]


# ------------------------------------------------------------- in-process, 1 device


def _tiny_problem():
    opt = optax.adam(1e-2)
    rng = np.random.default_rng(1)
    params = {"w": jnp.asarray(rng.normal(size=(3, 1)), jnp.float32), "b": jnp.zeros(1)}

    def step(state, batch):
        def loss_fn(p):
            return jnp.mean((jnp.tanh(batch["x"] @ p["w"] + p["b"]) - batch["y"]) ** 2)

        loss, g = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt_state = opt.update(g, state["opt_state"], state["params"])
        key, _ = jax.random.split(state["key"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state, "key": key}, {"loss": loss}

    state = {"params": params, "opt_state": opt.init(params), "key": jax.random.key(0)}
    batches = [
        {
            "x": rng.normal(size=(8, 3)).astype(np.float32),
            "y": rng.normal(size=(8, 1)).astype(np.float32),
        }
        for _ in range(3)
    ]
    return step, state, batches


def test_mesh_of_one_equals_step():
    step, state, batches = _tiny_problem()
    mesh = par.make_mesh(1)
    assert mesh.shape == {"data": 1}
    pstep = par.data_parallel(step, mesh)
    s_ref, s_par = state, par.replicate(state, mesh)
    ref_step = jax.jit(step)
    for batch in batches:
        s_ref, m_ref = ref_step(s_ref, batch)
        s_par, m_par = pstep(s_par, par.shard_batch(batch, mesh))
        np.testing.assert_allclose(m_par["loss"], m_ref["loss"], atol=TOL, rtol=0)
    leaves = zip(jax.tree.leaves(s_ref["params"]), jax.tree.leaves(s_par["params"]), strict=True)
    for a, b in leaves:
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)
    key_ref, key_par = (jax.random.key_data(s["key"]) for s in (s_ref, s_par))
    np.testing.assert_array_equal(key_ref, key_par)
    assert hasattr(pstep, "lower") and hasattr(pstep, "jitted")


def test_make_mesh_validation():
    n = len(jax.devices())
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        par.make_mesh(n + 1)
    with pytest.raises(ValueError, match=">= 1"):
        par.make_mesh(0)
    with pytest.raises(ValueError, match="axis"):
        par.make_mesh(1, axis="")
    with pytest.raises(ValueError, match="empty"):
        par.make_mesh(devices=[])
    mesh = par.make_mesh(1, axis="batch", devices=jax.devices()[:1])
    assert mesh.axis_names == ("batch",)
    with pytest.raises(ValueError, match="not an axis"):
        par.data_parallel(lambda s, b: (s, {}), mesh)  # default axis "data"
    with pytest.raises(ValueError, match="not an axis"):
        par.shard_batch({"x": np.zeros((2, 1))}, mesh, axis="data")


def test_initialize_distributed_single_process_is_noop(monkeypatch):
    for name in _DIST_ENV:
        monkeypatch.delenv(name, raising=False)
    assert par.initialize_distributed() is False
    assert par.initialize_distributed(num_processes=1) is False
    assert par.initialize_distributed("localhost:1234", 1, 0) is False
    assert not jax.distributed.is_initialized()


def test_initialize_distributed_validation(monkeypatch):
    for name in _DIST_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="missing: coordinator_address"):
        par.initialize_distributed(num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="process_id"):
        par.initialize_distributed("localhost:1234", num_processes=2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        par.initialize_distributed("localhost:1234", 2, 2)
    with pytest.raises(ValueError, match=">= 1"):
        par.initialize_distributed("localhost:1234", 0, 0)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES"):
        par.initialize_distributed()
    monkeypatch.setenv("JAX_NUM_PROCESSES", "1")
    assert par.initialize_distributed() is False  # read from the environment
    assert not jax.distributed.is_initialized()
