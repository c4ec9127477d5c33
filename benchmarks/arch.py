"""Workloads ``node-train`` and ``pinn-laplacian`` (issue 8's Performance section).

``node-train``: one Adam training step of a neural-ODE classifier, batch of ``256`` two-moons
points, embedding ``2 -> 16``, ODE block ``du/dt = tanh(u K + b)`` on ``[0, 1]`` with ``20``
fixed RK4 (3/8 rule, torchdiffeq's ``rk4``) steps, linear head ``16 -> 2``, cross-entropy;
float32, the same initial weights and batch in both frameworks. Rows:

- ``torchdiffeq-odeint``: backprop through ``torchdiffeq.odeint`` (reference of
  ``dynajax-discretize``: :class:`dynajax.arch.ContinuousClassifier` with
  ``adjoint="discretize"``, jitted ``make_step``);
- ``torchdiffeq-odeint_adjoint``: ``torchdiffeq.odeint_adjoint`` (reference of
  ``dynajax-backsolve``: ``adjoint="backsolve"``).

The unit is one training step (``per_unit = median_s``). Before timing, the loss and the
gradients of each dynajax route are checked against its torch counterpart (max abs diff
< 1e-4); a mismatch raises.

``pinn-laplacian``: the PINN residual ``-Lap u(x) - g(x)`` of a tanh MLP ``10 -> 64 -> 64 -> 1``
at ``4096`` points in ``d = 10`` (``g = sum_i sin x_i``): ``dynajax`` (``jax.jit`` of
``vmap`` of :func:`dynajax.arch.laplacian`, forward-over-reverse) against
``torch-autograd`` (the usual PINN code: ``autograd.grad`` with ``create_graph`` then one
second ``autograd.grad`` per dimension; the reference) and ``torch-func`` (``torch.func``
``vmap(hessian)`` trace). The unit is a point; ``per_unit`` is seconds per point
(throughput = 1 / per_unit). Values are checked equal (max abs diff < 1e-3) first.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks.harness import Context, Row, import_reference, register
from dynajax.arch import ContinuousClassifier, laplacian
from dynajax.train import init_state, make_step

ATOL = 1e-4
BATCH, WIDTH, STEPS, LR = 256, 16, 20, 1e-3
PINN_D, PINN_WIDTH, PINN_POINTS = 10, 64, 4096


def _compile(fn, *args):
    t0 = time.perf_counter()
    c = jax.jit(fn).lower(*args).compile()
    return c, time.perf_counter() - t0


def _moons(n):
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=0.1, random_state=0)
    return x.astype(np.float32), y.astype(np.int64)


def _max_abs(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def _check(what, err, ctx, atol=ATOL):
    if not err < atol:
        raise RuntimeError(f"arch benchmark: {what} disagree (max abs diff {err:.2e} >= {atol:g})")
    ctx.note(f"check {what}: max abs diff {err:.2e} < {atol:g}")


@register("node-train", "Neural-ODE classifier training step: dynajax discretize/backsolve vs torchdiffeq odeint/odeint_adjoint")
def run_node_train(ctx: Context) -> list[Row]:
    name, unit = "node-train", "train-step"
    x_np, y_np = _moons(BATCH)
    rows = []
    params0 = ContinuousClassifier(dim_in=2, width=WIDTH, n_steps=STEPS).init(jax.random.key(0))
    params_np = jax.tree_util.tree_map(np.asarray, params0)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np.astype(np.int32))
    dj = {}
    for route in ("discretize", "backsolve"):
        model = ContinuousClassifier(dim_in=2, width=WIDTH, n_steps=STEPS, solver="rk4_38", adjoint=route)
        opt = optax.adam(LR)
        step = make_step(lambda p, b, k, m=model: (m.loss(p, *b), {}), opt)
        state = init_state(params0, opt, key=jax.random.key(1))
        compiled, c_s = _compile(step, state, (x, y))
        dj[route] = (compiled, state, c_s, model)
    torch, torchdiffeq = import_reference(ctx, name, "torch", "torchdiffeq")
    if torch is not None:
        odeint, odeint_adjoint = torchdiffeq.odeint, torchdiffeq.odeint_adjoint

    fns, syncs, compile_s = {}, {}, {}
    for route, ref in (("discretize", "torchdiffeq-odeint"), ("backsolve", "torchdiffeq-odeint_adjoint")):
        compiled, state, c_s, model = dj[route]
        fns[f"dynajax-{route}"] = lambda c=compiled, s=state: c(s, (x, y))
        compile_s[f"dynajax-{route}"] = c_s
        if torch is None:
            continue

        class Field(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.K = torch.nn.Parameter(torch.from_numpy(params_np["field"]["w"][0].copy()))
                self.b = torch.nn.Parameter(torch.from_numpy(params_np["field"]["b"][0].copy()))

            def forward(self, t, u):
                return torch.tanh(u @ self.K + self.b)

        class Net(torch.nn.Module):
            def __init__(self, solve):
                super().__init__()
                self.field, self.solve = Field(), solve
                self.ew = torch.nn.Parameter(torch.from_numpy(params_np["embed"]["w"].copy()))
                self.eb = torch.nn.Parameter(torch.from_numpy(params_np["embed"]["b"].copy()))
                self.hw = torch.nn.Parameter(torch.from_numpy(params_np["head"]["w"].copy()))
                self.hb = torch.nn.Parameter(torch.from_numpy(params_np["head"]["b"].copy()))

            def forward(self, xb):
                u0 = xb @ self.ew + self.eb
                ts = torch.tensor([0.0, 1.0])
                uT = self.solve(self.field, u0, ts, method="rk4", options={"step_size": 1.0 / STEPS})[-1]
                return uT @ self.hw + self.hb

        net = Net(odeint if route == "discretize" else odeint_adjoint)
        xt, yt = torch.from_numpy(x_np), torch.from_numpy(y_np)
        loss_t = torch.nn.functional.cross_entropy(net(xt), yt)
        loss_j, g_j = jax.jit(jax.value_and_grad(model.loss))(params0, x, y)
        gt = torch.autograd.grad(loss_t, [net.field.K, net.field.b, net.ew, net.hw])
        _check(f"{route} loss vs {ref}", abs(float(loss_t.detach()) - float(loss_j)), ctx)
        _check(f"{route} gradients vs {ref}", _max_abs(
            [g.numpy() for g in gt],
            [g_j["field"]["w"][0], g_j["field"]["b"][0], g_j["embed"]["w"], g_j["head"]["w"]]), ctx)
        opt_t = torch.optim.Adam(net.parameters(), lr=LR)

        def t_step(net=net, opt_t=opt_t, xt=xt, yt=yt):
            opt_t.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt), yt)
            loss.backward()
            opt_t.step()
            return loss

        fns[ref] = t_step
        syncs[ref] = lambda v: v
    timings = ctx.time_interleaved(fns, syncs)
    refs = {"dynajax-discretize": "torchdiffeq-odeint", "dynajax-backsolve": "torchdiffeq-odeint_adjoint"}
    for impl, tm in timings.items():
        ref = impl if impl.startswith("torch") else refs[impl]
        rows.append(Row.from_timing(name, impl, tm, units=1, unit=unit, ref=ref, compile_s=compile_s.get(impl)))
    return rows


def _mlp_params(seed=0):
    rng = np.random.default_rng(seed)
    sizes = [PINN_D, PINN_WIDTH, PINN_WIDTH, 1]
    p = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1 / np.sqrt(a)
        p[f"w{i}"] = rng.uniform(-bound, bound, (a, b)).astype(np.float32)
        p[f"b{i}"] = rng.uniform(-bound, bound, (b,)).astype(np.float32)
    return p


def _u_jax(p, x):
    h = jnp.tanh(x @ p["w0"] + p["b0"])
    h = jnp.tanh(h @ p["w1"] + p["b1"])
    return (h @ p["w2"] + p["b2"])[0]


@register("pinn-laplacian", "PINN residual -Lap u - g in d=10 (points/s): dynajax vs PyTorch autograd and torch.func")
def run_pinn_laplacian(ctx: Context) -> list[Row]:
    name, unit = "pinn-laplacian", "point"
    p_np = _mlp_params()
    x_np = np.random.default_rng(1).uniform(-1, 1, (PINN_POINTS, PINN_D)).astype(np.float32)
    p, x = jax.tree_util.tree_map(jnp.asarray, p_np), jnp.asarray(x_np)

    def residual(p, x):
        return jax.vmap(lambda xi: -laplacian(lambda z: _u_jax(p, z), xi) - jnp.sum(jnp.sin(xi)))(x)

    res_j, c_s = _compile(residual, p, x)
    r_j = np.asarray(res_j(p, x))
    fns, syncs = {"dynajax": lambda: res_j(p, x)}, {}
    try:
        import torch
    except ImportError as e:
        torch = None
        ctx.note(f"pinn-laplacian: torch not importable ({e}); ratios null")
    if torch is not None:
        pt = {k: torch.from_numpy(v.copy()) for k, v in p_np.items()}
        xt0 = torch.from_numpy(x_np.copy())

        def u_t(z):
            h = torch.tanh(z @ pt["w0"] + pt["b0"])
            h = torch.tanh(h @ pt["w1"] + pt["b1"])
            return h @ pt["w2"] + pt["b2"]

        def torch_autograd():
            xt = xt0.clone().requires_grad_(True)
            u = u_t(xt)
            (g,) = torch.autograd.grad(u.sum(), xt, create_graph=True)
            lap = torch.zeros(xt.shape[0])
            for i in range(PINN_D):
                (gi,) = torch.autograd.grad(g[:, i].sum(), xt, retain_graph=True)
                lap = lap + gi[:, i]
            return (-lap - torch.sin(xt).sum(-1)).detach()

        from torch.func import hessian, vmap

        def torch_func():
            h = vmap(hessian(lambda z: u_t(z[None])[0, 0]))(xt0)
            return -torch.diagonal(h, dim1=-2, dim2=-1).sum(-1) - torch.sin(xt0).sum(-1)

        _check("dynajax vs torch-autograd residuals", float(np.max(np.abs(r_j - torch_autograd().numpy()))), ctx, 1e-3)
        _check("dynajax vs torch-func residuals", float(np.max(np.abs(r_j - torch_func().numpy()))), ctx, 1e-3)
        fns = {"torch-autograd": torch_autograd, "torch-func": torch_func, **fns}
        syncs = {"torch-autograd": lambda v: v, "torch-func": lambda v: v}
    timings = ctx.time_interleaved(fns, syncs)
    rows = []
    for impl, tm in timings.items():
        rows.append(Row.from_timing(name, impl, tm, units=PINN_POINTS, unit=unit, ref="torch-autograd",
                                    compile_s=c_s if impl == "dynajax" else None))
    return rows
