"""Workload ``otflow``: one OT-Flow training step, dynajax vs PyTorch; exact trace vs Hutchinson.

The toy setting of OT-Flow (Onken et al. 2021; the authors' ``trainToyOTflow``): ``d = 2``, a
potential of width ``m = 32`` and 2 layers, RK4 with ``nt = 8`` steps over ``[0, 1]``, batch
``B = 1024``, ``alpha = (1, 100, 5)``. One step = the flow of ``(z, l, L, R)`` with the exact
Hessian trace, the objective, its gradient and an SGD-with-momentum update (lr 0.01, momentum
0.9; the authors train with Adam, whose first step is sign-like and would make the weight check
below fragile; the optimiser's cost is negligible next to the flow).

- ``torch-otflow-step``: the same step written with torch (float32, eager, CPU): the closed-form
  gradient and trace through the ResNet as in the authors' code, a hand-written RK4, autograd,
  ``torch.optim.SGD``; the reference.
- ``dynajax-otflow-step``: ``jax.jit`` of :func:`dynajax.cnf.otflow_step`, compile excluded.

Both start from the same weights and batch; the first step's loss must agree to ``RTOL`` and the
weights after it to ``ATOL`` (a mismatch raises).

- ``dynajax-hutchinson1-d784`` (the reference) and ``dynajax-exact-trace-d784``: the Laplacian of
  a width-64 potential at ``784`` dimensions (MNIST) for 256 points, by one Rademacher probe
  (a JVP of the closed-form gradient) and by the closed form
  (:meth:`dynajax.cnf.Potential.grad_and_laplacian`), both jitted.

``DYNAJAX_BENCH_TORCH_THREADS`` sets torch's intra-op threads.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.flops import annotate_step
from benchmarks.harness import Context, Row, check_first_step, compiled_step, import_reference, register
from dynajax.cnf import Potential, hutchinson_divergence, otflow_step
from dynajax.train import init_state

D, WIDTH, NT, B = 2, 32, 8, 1024
ALPHA = (1.0, 100.0, 5.0)
LR, MOMENTUM = 0.01, 0.9
RTOL, ATOL = 1e-4, 1e-5
TRACE_D, TRACE_WIDTH, TRACE_N = 784, 64, 256


def torch_impl(torch, params: dict[str, np.ndarray]):
    """The OT-Flow step in torch from the same parameters; returns ``(tensors, step(x))``."""
    p = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.items()}
    n_res = p["K"].shape[0]
    h = 1.0 / max(n_res, 1)

    def sigma(a):  # log(e^a + e^-a), the paper's antiderivative of tanh (log cosh + log 2)
        return a.abs() + torch.log1p(torch.exp(-2.0 * a.abs()))

    def grad_lap(z, t):
        s = torch.cat([z, torch.full_like(z[:, :1], t)], 1)
        acts = [s @ p["K0"].T + p["b0"]]
        u = sigma(acts[0])
        for i in range(n_res):
            acts.append(u @ p["K"][i].T + p["bK"][i])
            u = u + h * sigma(acts[-1])
        zs = [p["w"].expand_as(acts[0])]
        for i in range(n_res, 0, -1):
            zs.append(zs[-1] + h * (torch.tanh(acts[i]) * zs[-1]) @ p["K"][i - 1])
        zs = zs[::-1]
        g = (torch.tanh(acts[0]) * zs[0]) @ p["K0"] + s @ (p["A"].T @ p["A"]) + p["b"]
        k0e = p["K0"][:, :D]
        th = torch.tanh(acts[0])
        tr = ((1 - th**2) * zs[0]) @ (k0e**2).sum(1)
        jac = th[:, :, None] * k0e[None]
        for i in range(1, n_res + 1):
            kj = torch.einsum("jk,nkd->njd", p["K"][i - 1], jac)
            th = torch.tanh(acts[i])
            tr = tr + h * ((1 - th**2) * zs[i] * (kj**2).sum(2)).sum(1)
            jac = jac + h * th[:, :, None] * kj
        return g[:, :D], g[:, D], tr + (p["A"][:, :D] ** 2).sum()

    def field(t, y):
        gx, gt, lap = grad_lap(y[0], t)
        kin = 0.5 * (gx**2).sum(1)
        return (-gx, -lap, kin, (gt - kin).abs())

    def loss(x):
        y, dt = (x, *(torch.zeros_like(x[:, 0]) for _ in range(3))), 1.0 / NT
        for k in range(NT):
            t = k * dt
            k1 = field(t, y)
            k2 = field(t + dt / 2, tuple(a + dt / 2 * b for a, b in zip(y, k1)))
            k3 = field(t + dt / 2, tuple(a + dt / 2 * b for a, b in zip(y, k2)))
            k4 = field(t + dt, tuple(a + dt * b for a, b in zip(y, k3)))
            y = tuple(a + dt / 6 * (b1 + 2 * b2 + 2 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4))
        z, l, L, R = y
        C = (0.5 * (z**2).sum(1) + 0.5 * D * math.log(2 * math.pi) - l).mean()
        return ALPHA[0] * L.mean() + ALPHA[1] * C + ALPHA[2] * R.mean()

    opt = torch.optim.SGD(list(p.values()), lr=LR, momentum=MOMENTUM)

    def step(x):
        J = loss(x)
        opt.zero_grad(set_to_none=True)
        J.backward()
        opt.step()
        return J.detach()

    step.grad_lap, step.loss = grad_lap, loss  # for checking the pieces
    return p, step


def trace_rows(ctx: Context) -> list[Row]:
    pot = Potential(TRACE_D, width=TRACE_WIDTH)
    p = pot.init(key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (TRACE_N, TRACE_D))
    field = lambda y: pot.grad(p, y[None], 0.5)[0][0]  # noqa: E731
    exact = jax.jit(lambda y: pot.grad_and_laplacian(p, y, 0.5)[2])
    hutch = jax.jit(lambda y, k: hutchinson_divergence(field, y, key=k))
    key = jax.random.key(2)
    exact(x).block_until_ready()
    hutch(x, key).block_until_ready()
    t = ctx.time_interleaved({"dynajax-exact-trace-d784": lambda: exact(x),
                              "dynajax-hutchinson1-d784": lambda: hutch(x, key)})
    return [Row.from_timing("otflow", impl, tm, units=TRACE_N, unit="point", ref="dynajax-hutchinson1-d784")
            for impl, tm in t.items()]


@register("otflow", f"one OT-Flow training step (d={D}, m={WIDTH}, nt={NT}, batch {B}) vs PyTorch; "
          f"exact Hessian trace vs one Hutchinson probe at d={TRACE_D}")
def run(ctx: Context) -> list[Row]:
    pot = Potential(D, width=WIDTH)
    params = jax.tree_util.tree_map(np.asarray, pot.init(key=jax.random.key(0)))
    x = np.asarray(jax.random.normal(jax.random.key(1), (B, D)) * 1.5, np.float32)
    opt = optax.sgd(LR, momentum=MOMENTUM)
    state0 = init_state(jax.tree_util.tree_map(jnp.asarray, params), opt, key=jax.random.key(0))
    step = otflow_step(pot, opt, alpha=ALPHA, n_steps=NT)
    f, jax_call, comp = compiled_step(step, state0, jnp.asarray(x))
    fns = {"dynajax-otflow-step": jax_call}
    (torch,) = import_reference(ctx, "otflow", "torch")
    if torch is not None:
        tp, tstep = torch_impl(torch, params)
        xt = torch.from_numpy(x)
        s1, m1 = f(state0, jnp.asarray(x))
        lt = float(tstep(xt))
        dw = max(float(np.max(np.abs(np.asarray(s1.params[k]) - tp[k].detach().numpy()))) for k in tp)
        check_first_step(ctx, "OT-Flow", float(m1["loss"]), lt, dw, RTOL, ATOL)
        fns["torch-otflow-step"] = lambda: tstep(xt)
    timings = ctx.time_interleaved(fns, {"torch-otflow-step": lambda v: v} if torch else None)
    ref = "torch-otflow-step" if torch is not None else None
    rows = [Row.from_timing("otflow", impl, t, units=B, unit="sample", ref=ref,
                            compile_s=comp if impl.startswith("dynajax") else None) for impl, t in timings.items()]
    annotate_step(rows, step, state0, jnp.asarray(x))
    return rows + trace_rows(ctx)
