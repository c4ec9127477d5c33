"""Subprocess worker for tests/dynajax/test_parallel.py.

Run with several XLA:CPU host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``
set by the parent before JAX starts). Prints one JSON line, prefixed ``RESULT `` , that the
parent test asserts on.

Modes:
    sharded               one process, 4 devices: data-parallel steps vs single-device steps.
    multihost PID PORT    one of 2 processes with 2 devices each, connected through
                          ``initialize_distributed``; each feeds its half of the batch.
"""

from __future__ import annotations

import json
import sys

N_STEPS = 5
BATCH = 32


def _problem():
    """A small MLP regression with an optax adam step; the state holds a typed PRNG key."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    sizes = [3, 16, 16, 1]
    rng = np.random.default_rng(0)
    params = [
        {
            "w": (rng.normal(size=(m, n)) / np.sqrt(m)).astype(np.float32),
            "b": np.zeros(n, np.float32),
        }
        for m, n in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    batches = []
    for _ in range(N_STEPS):
        x = rng.normal(size=(BATCH, 3)).astype(np.float32)
        y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype(np.float32)
        batches.append({"x": x, "y": y})
    opt = optax.adam(1e-2)

    def apply(params, x):
        for layer in params[:-1]:
            x = jnp.tanh(x @ layer["w"] + layer["b"])
        return x @ params[-1]["w"] + params[-1]["b"]

    def step(state, batch):
        key, sub = jax.random.split(state["key"])
        # Input noise drawn from the state's key: exercises typed keys under sharding.
        x = batch["x"] + 0.01 * jax.random.normal(sub, batch["x"].shape)

        def loss_fn(p):
            return jnp.mean((apply(p, x) - batch["y"]) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt_state = opt.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics = {"loss": loss, "grad_norm": optax.global_norm(grads)}
        new_state = {
            "params": params,
            "opt_state": opt_state,
            "key": key,
            "step": state["step"] + 1,
        }
        return new_state, metrics

    def init_state():
        p = jax.tree_util.tree_map(jnp.asarray, params)
        return {
            "params": p,
            "opt_state": opt.init(p),
            "key": jax.random.key(42),
            "step": jnp.zeros((), jnp.int32),
        }

    return step, init_state, batches


def _run(step_fn, state, batches, prepare=lambda b: b):
    import numpy as np

    metrics = []
    for batch in batches:
        state, m = step_fn(state, prepare(batch))
        metrics.append({k: float(np.asarray(v.addressable_data(0))) for k, v in m.items()})
    return state, metrics


def _to_host(tree):
    import jax
    import numpy as np

    return jax.tree_util.tree_map(lambda a: np.asarray(a.addressable_data(0)), tree)


def _max_diff(a, b) -> float:
    import jax
    import numpy as np

    diffs = jax.tree_util.tree_map(lambda x, y: float(np.max(np.abs(x - y))), a, b)
    return max(jax.tree_util.tree_leaves(diffs))


def _metric_diff(m1, m2) -> float:
    return max(abs(a[k] - b[k]) for a, b in zip(m1, m2, strict=True) for k in a)


def _error(fn) -> str | None:
    try:
        fn()
    except ValueError as e:
        return str(e)
    return None


def sharded() -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from dynajax import parallel as par

    out: dict = {"n_devices": jax.device_count()}
    step, init_state, batches = _problem()

    ref_state, ref_metrics = _run(jax.jit(step), init_state(), batches)
    ref_params = _to_host(ref_state["params"])

    mesh = par.make_mesh()
    repl = NamedSharding(mesh, P())
    pstep = par.data_parallel(step, mesh)
    state, metrics = _run(
        pstep, par.replicate(init_state(), mesh), batches, lambda b: par.shard_batch(b, mesh)
    )
    out["param_diff"] = _max_diff(ref_params, _to_host(state["params"]))
    out["metric_diff"] = _metric_diff(ref_metrics, metrics)
    key_ref = jax.random.key_data(ref_state["key"])
    out["key_equal"] = bool(np.array_equal(key_ref, _to_host(jax.random.key_data(state["key"]))))
    out["step_count"] = int(state["step"].addressable_data(0))
    out["mesh_shape"] = dict(mesh.shape)

    leaves = jax.tree_util.tree_leaves(state)
    out["state_replicated"] = all(
        x.sharding.is_fully_replicated and x.sharding.is_equivalent_to(repl, x.ndim) for x in leaves
    )
    out["key_sharding_replicated"] = bool(
        state["key"].sharding.is_equivalent_to(repl, state["key"].ndim)
    )
    _, raw_metrics = pstep(state, par.shard_batch(batches[0], mesh))
    out["metrics_replicated"] = all(
        x.sharding.is_equivalent_to(repl, x.ndim) for x in jax.tree_util.tree_leaves(raw_metrics)
    )

    sb = par.shard_batch(batches[0], mesh)
    out["batch_n_shards"] = len(sb["x"].addressable_shards)
    out["batch_shard_shapes"] = sorted({tuple(s.data.shape) for s in sb["x"].addressable_shards})
    out["batch_spec_ok"] = sb["x"].sharding.is_equivalent_to(NamedSharding(mesh, P("data")), 2)
    out["batch_devices"] = len({s.device for s in sb["x"].addressable_shards})

    # Inputs not pre-placed: numpy batch and numpy/single-device state are placed for us.
    st_np, m_np = _run(pstep, init_state(), batches)
    out["unplaced_param_diff"] = _max_diff(ref_params, _to_host(st_np["params"]))
    one_dev = jax.tree_util.tree_map(lambda a: jax.device_put(a, jax.devices()[1]), batches)
    st_1d, _ = _run(pstep, par.replicate(init_state(), mesh), one_dev)
    out["committed_param_diff"] = _max_diff(ref_params, _to_host(st_1d["params"]))

    # A 2-device sub-mesh, with the state donated: the same numbers.
    mesh2 = par.make_mesh(2)
    st2, m2 = _run(
        par.data_parallel(step, mesh2, donate_state=True),
        par.replicate(init_state(), mesh2),
        batches,
        lambda b: par.shard_batch(b, mesh2),
    )
    out["mesh2_param_diff"] = _max_diff(ref_params, _to_host(st2["params"]))
    out["mesh2_metric_diff"] = _metric_diff(ref_metrics, m2)
    out["mesh2_state_devices"] = len(st2["params"][0]["w"].sharding.device_set)

    # global_batch in a single process is shard_batch.
    gb = par.global_batch(batches[0], mesh)
    out["global_batch_equal"] = bool(np.array_equal(np.asarray(gb["x"]), batches[0]["x"]))
    out["global_batch_n_shards"] = len(gb["x"].addressable_shards)

    # Bad inputs.
    bad = {"x": np.zeros((6, 3), np.float32), "y": np.zeros((6, 1), np.float32)}
    out["err_shard_6"] = _error(lambda: par.shard_batch(bad, mesh))
    out["err_step_6"] = _error(lambda: pstep(par.replicate(init_state(), mesh), bad))
    out["err_global_6"] = _error(lambda: par.global_batch({"x": np.zeros((6, 3))}, mesh))
    out["err_mesh_8"] = _error(lambda: par.make_mesh(8))
    out["err_mismatch"] = _error(
        lambda: par.shard_batch({"x": np.zeros((8, 3)), "y": np.zeros((4, 1))}, mesh)
    )
    with_scalar = {"x": np.zeros((8, 3)), "t": jnp.float32(1)}
    out["err_scalar"] = _error(lambda: par.shard_batch(with_scalar, mesh))
    return out


def multihost(pid: int, port: int) -> dict:
    from dynajax import parallel as par

    active = par.initialize_distributed(f"localhost:{port}", 2, pid, initialization_timeout=60)

    import jax
    import numpy as np

    step, init_state, batches = _problem()
    # Single-device reference on this host's first device, from the full batches.
    ref_state, ref_metrics = _run(jax.jit(step), init_state(), batches)

    mesh = par.make_mesh()
    half = BATCH // 2

    def local(b):
        local_b = {k: v[pid * half : (pid + 1) * half] for k, v in b.items()}
        return par.global_batch(local_b, mesh)

    gb = local(batches[0])
    pstep = par.data_parallel(step, mesh)
    state, metrics = _run(pstep, par.replicate(init_state(), mesh), batches, local)
    # A host-local numpy batch passed straight to the step is refused (needs global_batch).
    err_local = _error(lambda: pstep(state, batches[0]))
    return {
        "err_local_batch": err_local,
        "active": active,
        "process_count": jax.process_count(),
        "process_index": jax.process_index(),
        "n_global_devices": jax.device_count(),
        "n_local_devices": jax.local_device_count(),
        "global_batch_shape": list(gb["x"].shape),
        "global_batch_local_shards": len(gb["x"].addressable_shards),
        "param_diff": _max_diff(_to_host(ref_state["params"]), _to_host(state["params"])),
        "metric_diff": _metric_diff(ref_metrics, metrics),
    }


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "sharded":
        result = sharded()
    elif mode == "multihost":
        result = multihost(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print("RESULT " + json.dumps(result), flush=True)
