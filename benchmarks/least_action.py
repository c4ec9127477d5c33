"""Workload ``least_action``: one LAP training step of a ResNet, dynajax vs PyTorch (CPU).

The network of ``lap-digits`` at a benchmark width: encoder Dense 64 -> ``W``, ``K = 9``
residual blocks ``x + Dense(ReLU(Dense(x)))`` (``W -> W -> W``), head Dense ``W -> W`` ->
ReLU -> Dense ``W -> 10``; batch ``B = 128``. One step = forward, loss
``CE + C / lambda`` (``C`` = per-block mean of ``r_k^2``, the released LAP code's penalty),
backward, SGD with momentum 0.9 and weight decay 1e-4, and the Uzawa update
``lambda += tau CE`` (every step here).

- ``torch-lap-step``: the same step written with ``torch.nn`` / ``torch.optim.SGD`` (float32,
  eager, CPU threads as torch sets them); the reference.
- ``dynajax-lap-step``: ``jax.jit`` of :func:`dynajax.train.make_step` with
  :func:`dynajax.transport.least_action.lap_uzawa` (float32), compile excluded.

Both start from the same weights and batch; before timing, the losses of the first step
must agree to ``RTOL`` and the parameters after it to ``ATOL`` (a mismatch raises).
``DYNAJAX_BENCH_LAP_WIDTH`` overrides ``W`` (default 64); ``DYNAJAX_BENCH_TORCH_THREADS``
sets torch's intra-op threads (torch's default otherwise; on an oversubscribed machine its
spinning OpenMP threads can be far slower than one thread).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.flops import annotate_step
from benchmarks.harness import (
    Context,
    Row,
    check_first_step,
    compiled_step,
    import_reference,
    register,
)
from dynajax.train import init_state, make_step
from dynajax.transport.least_action import lap_uzawa, transport_penalty

K, B, D_IN, N_CLASSES = 9, 128, 64, 10
WIDTH = 64
LR, MOMENTUM, WD = 0.01, 0.9, 1e-4
LAMBDA0, TAU = 5.0, 1.0
RTOL, ATOL = 1e-4, 1e-5


def make_params(width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights as ``[in, out]`` kernels (float32); blocks stacked ``[K, ...]``."""
    rng = np.random.default_rng(seed)

    def dense(i, o, *lead):
        return (rng.normal(size=(*lead, i, o)) / np.sqrt(i)).astype(np.float32), np.zeros(
            (*lead, o), np.float32)

    p = {}
    p["enc_w"], p["enc_b"] = dense(D_IN, width)
    p["b1_w"], p["b1_b"] = dense(width, width, K)
    p["b2_w"], p["b2_b"] = dense(width, width, K)
    p["h1_w"], p["h1_b"] = dense(width, width)
    p["h2_w"], p["h2_b"] = dense(width, N_CLASSES)
    return p


def make_batch(seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.random((B, D_IN), dtype=np.float32), rng.integers(0, N_CLASSES, B).astype(np.int32)


def jax_forward(p, x):
    z = x @ p["enc_w"] + p["enc_b"]

    def block(z, w):
        r = jax.nn.relu(z @ w[0] + w[1]) @ w[2] + w[3]
        return z + r, r

    z, res = jax.lax.scan(block, z, (p["b1_w"], p["b1_b"], p["b2_w"], p["b2_b"]))
    logits = jax.nn.relu(z @ p["h1_w"] + p["h1_b"]) @ p["h2_w"] + p["h2_b"]
    return logits, res


def make_jax_step():
    opt = optax.chain(optax.add_decayed_weights(WD), optax.sgd(LR, momentum=MOMENTUM))
    uz = lap_uzawa(LAMBDA0, TAU, 1)

    def loss(p, batch, key):
        logits, res = jax_forward(p, batch[0])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch[1]).mean()
        pen = transport_penalty(res, "mean")
        return (pen, ce), {}

    return make_step(loss, opt, uzawa=uz), opt, uz


def torch_impl(torch, params: dict[str, np.ndarray], width: int):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(D_IN, width)
            self.b1 = nn.ModuleList(nn.Linear(width, width) for _ in range(K))
            self.b2 = nn.ModuleList(nn.Linear(width, width) for _ in range(K))
            self.h1 = nn.Linear(width, width)
            self.h2 = nn.Linear(width, N_CLASSES)

        def forward(self, x):
            z = self.enc(x)
            rs = []
            for l1, l2 in zip(self.b1, self.b2):
                r = l2(torch.relu(l1(z)))
                z = z + r
                rs.append(r)
            return self.h2(torch.relu(self.h1(z))), rs

    net = Net()
    with torch.no_grad():
        def put(lin, w, b):
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.copy_(torch.from_numpy(b))

        put(net.enc, params["enc_w"], params["enc_b"])
        for k in range(K):
            put(net.b1[k], params["b1_w"][k], params["b1_b"][k])
            put(net.b2[k], params["b2_w"][k], params["b2_b"][k])
        put(net.h1, params["h1_w"], params["h1_b"])
        put(net.h2, params["h2_w"], params["h2_b"])
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    state = {"lam": LAMBDA0}

    def step(x, y):
        logits, rs = net(x)
        ce = torch.nn.functional.cross_entropy(logits, y)
        transport = sum(torch.mean(r**2) for r in rs)
        loss = ce + transport / state["lam"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["lam"] += TAU * float(ce.detach())
        return loss.detach()

    return net, step


def run_lap(ctx: Context, width: int | None = None) -> list[Row]:
    width = int(os.environ.get("DYNAJAX_BENCH_LAP_WIDTH") or (width or WIDTH))
    params = make_params(width)
    x, y = make_batch()
    step, opt, uz = make_jax_step()
    pj = jax.tree_util.tree_map(jnp.asarray, params)
    state0 = init_state(pj, opt, key=jax.random.key(0), uzawa=uz)
    batch = (jnp.asarray(x), jnp.asarray(y))
    f, jax_call, comp = compiled_step(step, state0, batch)
    fns = {"dynajax-lap-step": jax_call}
    (torch,) = import_reference(ctx, "least_action", "torch")
    if torch is not None:
        net, tstep = torch_impl(torch, params, width)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
        # check: first step from the same weights gives the same loss and parameters
        s1, m1 = f(state0, batch)
        lt = float(tstep(xt, yt))
        dw = float(np.max(np.abs(np.asarray(s1.params["b2_w"][3]) - net.b2[3].weight.detach().numpy().T)))
        check_first_step(ctx, "LAP", float(m1["loss"]), lt, dw, RTOL, ATOL)
        fns["torch-lap-step"] = lambda: tstep(xt, yt)
    timings = ctx.time_interleaved(fns, {"torch-lap-step": lambda v: v} if torch else None)
    rows = []
    for impl, t in timings.items():
        ref = "torch-lap-step" if torch is not None else None
        rows.append(Row.from_timing("least_action", impl, t, units=B, unit="sample", ref=ref,
                                    compile_s=comp if impl.startswith("dynajax") else None))
        rows[-1].extra.update({"width": width, "blocks": K, "batch": B,
                               "torch_threads": torch.get_num_threads() if torch else None})
    annotate_step(rows, step, state0, batch)
    return rows


@register("least_action", f"one LAP-ResNet training step ({K} blocks, batch {B}): "
          "dynajax make_step + Uzawa (jit) vs the same step in PyTorch (CPU)")
def run(ctx: Context) -> list[Row]:
    return run_lap(ctx)
