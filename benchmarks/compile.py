"""Workload ``compile``: time to the first training step, cold and warm, beside the steady step.

A researcher pays compilation before the first step of every new process (a notebook restart,
the next seed, a rerun of an experiment). For each model family this runs two fresh Python
processes with JAX's persistent compilation cache in one new directory
(:func:`dynajax.enable_compilation_cache`, as ``dynajax reproduce`` does):

- ``cold``: the first call of the jitted step with an empty cache (trace, lower, XLA compile, run);
- ``warm``: the same in a second process, the executable now read from the cache (trace and
  lower still run: they make the cache key);
- ``steady``: the median of the following calls (the reference row: ratios are steady / first).

Families: ``aphynity`` and ``leads`` (the steps of the ``aphynity`` and ``leads`` workloads),
``hidden`` (the EP-Net 2.0 model of ``hidden-ep2d``: a ResNet field and a UNet estimator on
24 x 24, 6 frames), ``node`` (the backsolve neural-ODE classifier of ``node-train``) and
``gantk`` (one infinite-width IPM ReLU step, 500 particles). Goal: ``warm - steady < 1 s``.

A family alone: ``python -c "$CHILD" FAMILY CACHE_DIR`` (:data:`CHILD`) prints one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Context, Row, Timing, register

FAMILIES = ("aphynity", "leads", "hidden", "node", "gantk")
STEADY_REPEATS = 5
CHILD = "import json, sys; from benchmarks.compile import measure; print(json.dumps(measure(*sys.argv[1:])))"


def _hidden_step():
    import jax
    import optax

    from dynajax.forecast import hidden as hd
    from dynajax.forecast.hidden_baselines import ResNet, UNet
    from dynajax.train import init_state

    K, T, B, S = 4, 6, 8, 24
    model = hd.HiddenModel(ResNet(2, width=16, n_down=3, n_blocks=3, padding="REFLECT"),
                           hd.ChannelProjection([0], 2), UNet(2, width=8, padding="REFLECT"),
                           setting="joint", n_context=K, substeps=1)
    obs = jax.random.uniform(jax.random.key(0), (B, K + T, 1, S, S))
    opt = optax.adam(1e-3)
    state = init_state(model.init(jax.random.key(1), obs[0, :K]), opt, key=jax.random.key(2))
    return hd.make_train_step(model, opt, teacher=hd.exponential_schedule(0.99)), state, {"obs": obs}


def _node_step():
    import jax
    import jax.numpy as jnp
    import optax

    from benchmarks.arch import BATCH, LR, STEPS, WIDTH, _moons
    from dynajax.arch import ContinuousClassifier
    from dynajax.train import init_state, make_step

    model = ContinuousClassifier(dim_in=2, width=WIDTH, n_steps=STEPS, solver="rk4_38", adjoint="backsolve")
    x, y = _moons(BATCH)
    opt = optax.adam(LR)
    step = make_step(lambda p, b, k: (model.loss(p, *b), {}), opt)
    return step, init_state(model.init(jax.random.key(0)), opt, key=jax.random.key(1)), (jnp.asarray(x),
                                                                                          jnp.asarray(y.astype("int32")))


def _gantk_step():
    import jax
    import numpy as np

    from gantk import flows

    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.normal(size=(500, 2)), jax.numpy.float32)
    y = jax.numpy.asarray(5 * rng.normal(size=(500, 2)), jax.numpy.float32)
    step = flows.make_step(flows.FlowConfig("ipm", "relu", eta=1000.0), y)
    return lambda s, b: (step(s), {}), flows.FlowState(x, (), jax.random.key(0)), None


def build(family: str):
    """``(step(state, batch) -> (state, ...), state0, batch)`` of a family."""
    if family == "aphynity":
        from benchmarks.forecast import aphynity_step

        return aphynity_step()
    if family == "leads":
        from benchmarks.forecast import leads_step

        step, state, _ = leads_step()
        return step, state, None
    return {"hidden": _hidden_step, "node": _node_step, "gantk": _gantk_step}[family]()


def measure(family: str, cache_dir: str) -> dict:
    """Seconds of the first call of the jitted step and of the following calls, in this process."""
    import jax

    from dynajax import enable_compilation_cache

    enable_compilation_cache(cache_dir)
    step, state, batch = build(family)
    f = jax.jit(step)
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(f(state, batch))
    first = time.perf_counter() - t0
    steady = []
    for _ in range(STEADY_REPEATS):
        t0 = time.perf_counter()
        state, _ = jax.block_until_ready(f(state, batch))
        steady.append(time.perf_counter() - t0)
    return {"first_s": first, "steady_s": steady}


def _child(family: str, cache_dir: str) -> dict:
    root = str(Path(__file__).resolve().parents[1])  # `benchmarks` is a package of the checkout, not installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", CHILD, family, cache_dir], capture_output=True, text=True, env=env,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"compile benchmark, {family}: the child process failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@register("compile", "first training step in a fresh process, cold and warm persistent cache, vs the steady step: "
          + ", ".join(FAMILIES))
def run(ctx: Context, families: tuple[str, ...] = FAMILIES) -> list[Row]:
    rows = []
    for family in families:
        with tempfile.TemporaryDirectory(prefix="dynajax-compile-") as cache:
            cold, warm = _child(family, cache), _child(family, cache)
        steady = cold["steady_s"] + warm["steady_s"]
        med = statistics.median(steady)
        ref = f"{family}-steady"
        rows.append(Row.from_timing("compile", ref, Timing(med, steady, []), units=1, unit="train-step", ref=ref))
        for kind, res in (("cold", cold), ("warm", warm)):
            rows.append(Row.from_timing("compile", f"{family}-{kind}-first", Timing(res["first_s"], [res["first_s"]], []),
                                        units=1, unit="train-step", ref=ref,
                                        extra={"over_steady_s": res["first_s"] - med}))
        ctx.note(f"compile {family}: warm first step {warm['first_s'] - med:+.2f} s from the steady step "
                 f"({'within' if warm['first_s'] - med < 1.0 else 'NOT within'} 1 s); cold {cold['first_s']:.2f} s")
    return rows

