"""Workload ``integrate``: fixed-step RK4 (3/8 rule) over a batch of MLP-field ODEs.

A batch of ``1024`` states of dimension ``8`` follows ``dy/dt = MLP(y)`` (8 -> 64 -> 64 -> 8,
tanh, the same float32 weights in both frameworks) for ``100`` steps of ``dt = 0.01``,
saving ``y`` at ``t = 0`` and ``t = 1`` (the same in both). Rows, each timed after warm-up
(JAX compile excluded from ``median_s`` and reported as ``compile_s``):

- ``torchdiffeq-fwd``: ``torchdiffeq.odeint(method="rk4", step_size=dt)`` under
  ``torch.no_grad()`` (torch's default thread count, on ``$DYNAJAX_BENCH_TORCH_DEVICE``,
  default ``cpu``, ``auto`` for the GPU when there is one); the reference of the ``*-fwd`` rows.
- ``dynajax-fwd``: ``jax.jit`` of ``dynajax.solve.integrate(solver="rk4_38")`` with its
  default ``backend`` (what users get); torchdiffeq's ``rk4`` is the 3/8 rule, so this is
  the same arithmetic.
- ``dynajax-diffrax-fwd``, ``dynajax-diffrax-grad``: the same with ``backend="diffrax"``
  (``diffrax.diffeqsolve``, ``RecursiveCheckpointAdjoint``), when ``integrate`` has that
  option: the default fixed-step path may be dynajax's own scan, so diffrax is timed apart.
- ``jax-scan-rk4``: a hand-written ``lax.scan`` of the same 3/8 step, no diffrax: what the
  solver machinery costs on top of the bare arithmetic.
- ``torchdiffeq-grad``, ``dynajax-grad``, ``jax-scan-rk4-grad``: forward + backward, the
  gradient of ``mean(y(1))`` w.r.t. the MLP weights (backprop through the solver steps:
  torchdiffeq's plain ``odeint``, dynajax's ``adjoint="discretize"``, plain ``jax.grad`` of
  the scan, which keeps every stage's activations).
- ``jax-scan-rk4-remat-grad``: the same with ``jax.checkpoint`` on the scan step (stores ``y``
  per step, recomputes the stages), the closest bare analogue of diffrax's checkpointed adjoint.
- ``dynajax-fwd-sharded``, ``dynajax-grad-sharded``: the same with the batch split over every
  device (:func:`dynajax.parallel.shard_batch`), when the process has several; on CPU, run with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` (one device per core).
- ``torchdiffeq-fwd-1thread``, ``torchdiffeq-grad-1thread``: diagnostics, torch with
  ``torch.set_num_threads(1)``; their ratio is against the default-thread torch row.

Rows that are compared with each other are timed round-robin (see
:func:`benchmarks.harness.time_interleaved`).

The unit is one ``trajectory-step`` (one RK step of one trajectory of the batch), so
``per_unit = median_s / (1024 * 100)``. Before timing, every implementation's final state
and gradient are checked against each other (max abs diff < 1e-4 in float32); a mismatch
raises, so a wrong solve is never timed.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.flops import annotate_step
from benchmarks.harness import Context, Row, import_reference, register
from dynajax import parallel as par
from dynajax.solve import integrate

UNIT = "trajectory-step"
ATOL = 1e-4


@dataclasses.dataclass(frozen=True)
class Config:
    batch: int = 1024
    dim: int = 8
    hidden: int = 64
    steps: int = 100
    dt: float = 0.01
    seed: int = 0

    @property
    def t1(self) -> float:
        return self.steps * self.dt


def make_params(cfg: Config) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """MLP weights (torch ``nn.Linear``-style uniform init, ``[in, out]`` layout) and ``y0``."""
    rng = np.random.default_rng(cfg.seed)
    sizes = [cfg.dim, cfg.hidden, cfg.hidden, cfg.dim]
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / np.sqrt(n_in)
        params[f"w{i}"] = rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)
        params[f"b{i}"] = rng.uniform(-bound, bound, (n_out,)).astype(np.float32)
    y0 = rng.normal(size=(cfg.batch, cfg.dim)).astype(np.float32)
    return params, y0


def mlp_field(t, y, p):
    """``dy/dt`` for a batch ``y: [batch, dim]``: two tanh hidden layers."""
    del t
    h = jnp.tanh(y @ p["w0"] + p["b0"])
    h = jnp.tanh(h @ p["w1"] + p["b1"])
    return h @ p["w2"] + p["b2"]


# ---------------------------------------------------------------- JAX implementations


def save_times(cfg: Config) -> jax.Array:
    """``[0, t1]`` as a concrete JAX array, made outside any trace.

    Closed over by the jitted solves, it stays concrete, so ``integrate`` can see the
    uniform grid (a numpy array would become a tracer under ``jit`` through ``jnp.asarray``).
    """
    return jnp.asarray(np.array([0.0, cfg.t1], dtype=np.float32))


def dynajax_final(p, y0, ts, cfg: Config, backend: str | None = None):
    """``y(t1)`` by :func:`dynajax.solve.integrate`; ``backend=None`` is its default."""
    kw = {} if backend is None else {"backend": backend}
    return integrate(mlp_field, y0, ts, solver="rk4_38", dt0=cfg.dt, args=p, **kw)[-1]


def _has_backend_option() -> bool:
    return "backend" in inspect.signature(integrate).parameters


def scan_final(p, y0, cfg: Config, remat: bool = False):
    """The 3/8-rule RK4 written out in ``lax.scan``: torchdiffeq's ``rk4_alt_step_func``.

    ``remat=True`` wraps the step in ``jax.checkpoint``: reverse mode then stores only ``y``
    per step and recomputes the stages (as diffrax's checkpointed adjoint does), instead of
    keeping every stage's activations.
    """
    dt = jnp.float32(cfg.dt)
    third = jnp.float32(1.0 / 3.0)

    def step(y, t):
        k1 = mlp_field(t, y, p)
        k2 = mlp_field(t + dt * third, y + dt * k1 * third, p)
        k3 = mlp_field(t + 2 * dt * third, y + dt * (k2 - k1 * third), p)
        k4 = mlp_field(t + dt, y + dt * (k1 - k2 + k3), p)
        return y + (k1 + 3 * (k2 + k3) + k4) * (dt * 0.125), None

    ts = jnp.arange(cfg.steps, dtype=jnp.float32) * dt
    y, _ = jax.lax.scan(jax.checkpoint(step) if remat else step, y0, ts)
    return y


def _compile(fn, *args) -> tuple[Any, float]:
    """AOT-compiles ``jax.jit(fn)`` for ``args``; returns the executable and its compile seconds."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


# -------------------------------------------------------------- torch implementations


def _torch_impls(torch, odeint, params_np, y0_np, cfg: Config, device: str = "cpu"):
    class MLPField(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.ParameterDict(
                {k: torch.nn.Parameter(torch.from_numpy(v.copy()).to(device)) for k, v in params_np.items()}
            )
            self.calls = 0

        def forward(self, t, y):
            self.calls += 1
            p = self.p
            h = torch.tanh(torch.addmm(p["b0"], y, p["w0"]))
            h = torch.tanh(torch.addmm(p["b1"], h, p["w1"]))
            return torch.addmm(p["b2"], h, p["w2"])

    func = MLPField()
    y0 = torch.from_numpy(y0_np.copy()).to(device)
    t = torch.tensor([0.0, cfg.t1], dtype=torch.float32, device=device)
    opts = dict(step_size=cfg.dt)
    names = list(params_np)

    def fwd():
        with torch.no_grad():
            return odeint(func, y0, t, method="rk4", options=opts)[-1]

    def grad():
        loss = odeint(func, y0, t, method="rk4", options=opts)[-1].mean()
        gs = torch.autograd.grad(loss, [func.p[k] for k in names])
        return dict(zip(names, gs))

    return func, fwd, grad


# ---------------------------------------------------------------------- the workload


def _max_abs_diff(a, b) -> float:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(la, lb))


def _check(what: str, a, b, ctx: Context) -> None:
    err = _max_abs_diff(a, b)
    if not err < ATOL:  # also catches NaN
        raise RuntimeError(
            f"integrate benchmark: {what} disagree: max abs diff {err:.3e} >= {ATOL:g} "
            "(float32); refusing to time solves that do not compute the same thing"
        )
    ctx.note(f"check {what}: max abs diff {err:.2e} < {ATOL:g}")


def run_integrate(ctx: Context, cfg: Config = Config(), torch_device: str | None = None) -> list[Row]:
    """The workload at ``cfg``; torch on ``torch_device`` (default ``$DYNAJAX_BENCH_TORCH_DEVICE``
    or ``cpu``; ``auto``: ``cuda`` when torch sees a GPU)."""
    name = "integrate"
    units = cfg.batch * cfg.steps
    params_np, y0_np = make_params(cfg)
    params = jax.tree_util.tree_map(jnp.asarray, params_np)
    y0 = jnp.asarray(y0_np)
    ts = save_times(cfg)

    def row(impl, timing, ref, compile_s=None):
        return Row.from_timing(name, impl, timing, units=units, unit=UNIT, ref=ref, compile_s=compile_s)

    # Compile the JAX programs; time lowering + XLA compilation separately.
    def final(p, y):  # integrate's default path: the dynajax-* rows, on one device or sharded
        return dynajax_final(p, y, ts, cfg)

    grad_final = jax.grad(lambda p, y: final(p, y).mean())
    dj_fwd, dj_fwd_c = _compile(final, params, y0)
    with_diffrax = _has_backend_option()
    if with_diffrax:  # integrate's default may take its own scan path: time diffrax too
        dd_fwd, dd_fwd_c = _compile(lambda p, y: dynajax_final(p, y, ts, cfg, "diffrax"), params, y0)
        dd_grad, dd_grad_c = _compile(
            jax.grad(lambda p, y: dynajax_final(p, y, ts, cfg, "diffrax").mean()), params, y0
        )
    sc_fwd, sc_fwd_c = _compile(lambda p, y: scan_final(p, y, cfg), params, y0)
    dj_grad, dj_grad_c = _compile(grad_final, params, y0)
    sc_grad, sc_grad_c = _compile(jax.grad(lambda p, y: scan_final(p, y, cfg).mean()), params, y0)
    rm_grad, rm_grad_c = _compile(
        jax.grad(lambda p, y: scan_final(p, y, cfg, remat=True).mean()), params, y0
    )

    # Which path integrate's default took under jit: diffrax's while loop, or a plain scan.
    jaxpr = str(jax.make_jaxpr(final)(params, y0))
    ctx.note(
        "integrate: dynajax-* rows use integrate's default path, here "
        + ("diffrax (a while loop)" if "while" in jaxpr else "a lax.scan rollout (no diffrax)")
    )

    # Correctness before timing.
    y_dj, y_sc = dj_fwd(params, y0), sc_fwd(params, y0)
    g_dj, g_sc, g_rm = dj_grad(params, y0), sc_grad(params, y0), rm_grad(params, y0)
    _check("dynajax-fwd vs jax-scan-rk4 final states", y_dj, y_sc, ctx)
    _check("dynajax-grad vs jax-scan-rk4-grad weight gradients", g_dj, g_sc, ctx)
    _check("dynajax-grad vs jax-scan-rk4-remat-grad weight gradients", g_dj, g_rm, ctx)
    if with_diffrax:
        _check("dynajax-fwd vs dynajax-diffrax-fwd final states", y_dj, dd_fwd(params, y0), ctx)
        _check("dynajax-grad vs dynajax-diffrax-grad weight gradients", g_dj, dd_grad(params, y0), ctx)

    torch, torchdiffeq = import_reference(ctx, name, "torch", "torchdiffeq")
    if torch is not None:
        odeint = torchdiffeq.odeint
        device = torch_device or os.environ.get("DYNAJAX_BENCH_TORCH_DEVICE", "cpu")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        func, t_fwd, t_grad = _torch_impls(torch, odeint, params_np, y0_np, cfg, device)
        ctx.note(f"integrate: torch on {device}")
        func.calls = 0
        y_t = t_fwd().cpu().numpy()
        if func.calls != 4 * cfg.steps:
            raise RuntimeError(
                f"integrate benchmark: torchdiffeq made {func.calls} field calls, expected "
                f"{4 * cfg.steps} ({cfg.steps} RK4 steps)"
            )
        g_t = {k: v.cpu().numpy() for k, v in t_grad().items()}
        _check("dynajax-fwd vs torchdiffeq-fwd final states", y_dj, y_t, ctx)
        _check("dynajax-grad vs torchdiffeq-grad weight gradients", g_dj, g_t, ctx)

    ref_fwd, ref_grad = "torchdiffeq-fwd", "torchdiffeq-grad"
    compile_s = {
        "dynajax-fwd": dj_fwd_c, "jax-scan-rk4": sc_fwd_c,
        "dynajax-grad": dj_grad_c, "jax-scan-rk4-grad": sc_grad_c, "jax-scan-rk4-remat-grad": rm_grad_c,
    }
    fwd_fns = {"dynajax-fwd": lambda: dj_fwd(params, y0), "jax-scan-rk4": lambda: sc_fwd(params, y0)}
    grad_fns = {
        "dynajax-grad": lambda: dj_grad(params, y0),
        "jax-scan-rk4-grad": lambda: sc_grad(params, y0),
        "jax-scan-rk4-remat-grad": lambda: rm_grad(params, y0),
    }
    no_sync = lambda x: x  # noqa: E731  (torch on CPU is synchronous)
    syncs = {}
    if torch is not None:
        fwd_fns = {ref_fwd: t_fwd, **fwd_fns}
        grad_fns = {ref_grad: t_grad, **grad_fns}
        t_sync = no_sync if device == "cpu" else lambda x: (torch.cuda.synchronize(), x)[1]
        syncs = {ref_fwd: t_sync, ref_grad: t_sync}
    if with_diffrax:
        fwd_fns["dynajax-diffrax-fwd"] = lambda: dd_fwd(params, y0)
        grad_fns["dynajax-diffrax-grad"] = lambda: dd_grad(params, y0)
        compile_s.update({"dynajax-diffrax-fwd": dd_fwd_c, "dynajax-diffrax-grad": dd_grad_c})

    n_dev = len(jax.devices())
    if n_dev > 1 and cfg.batch % n_dev == 0:  # several devices (on CPU: the device-count flag)
        mesh = par.make_mesh()
        params_s, y0_s = par.replicate(params, mesh), par.shard_batch(y0, mesh)
        sh_fwd, sh_fwd_c = _compile(final, params_s, y0_s)
        sh_grad, sh_grad_c = _compile(grad_final, params_s, y0_s)
        _check(f"dynajax-fwd-sharded ({n_dev} devices) vs dynajax-fwd final states", sh_fwd(params_s, y0_s), y_dj, ctx)
        _check(f"dynajax-grad-sharded ({n_dev} devices) vs dynajax-grad weight gradients",
               sh_grad(params_s, y0_s), g_dj, ctx)
        fwd_fns["dynajax-fwd-sharded"] = lambda: sh_fwd(params_s, y0_s)
        grad_fns["dynajax-grad-sharded"] = lambda: sh_grad(params_s, y0_s)
        compile_s.update({"dynajax-fwd-sharded": sh_fwd_c, "dynajax-grad-sharded": sh_grad_c})

    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    # Rows compared with each other are timed round-robin, so load changes hit them alike.
    # Model FLOPs of each group: the forward, and the plain (no recomputation) scan gradient.
    model = {ref_fwd: lambda p, y: scan_final(p, y, cfg), ref_grad: jax.grad(lambda p, y: scan_final(p, y, cfg).mean())}
    rows = []
    for fns, ref in ((fwd_fns, ref_fwd), (grad_fns, ref_grad)):
        timings = ctx.time_interleaved(fns, syncs)
        group = [row(k, timings[k], ref, compile_s.get(k)) for k in fns]
        annotate_step(group, model[ref], params, y0)
        rows += group

    if torch is not None:
        # Diagnostic: torch pinned to one thread. On a busy CPU, OpenMP's per-op thread
        # barriers can cost more than the arithmetic; ratio_vs_ref of these rows is
        # (default threads) / (one thread), so > 1 says the default was hurt by that.
        default_threads = torch.get_num_threads()
        if default_threads > 1 and device == "cpu":
            torch.set_num_threads(1)
            try:
                diag = ctx.time_interleaved(
                    {ref_fwd + "-1thread": t_fwd, ref_grad + "-1thread": t_grad},
                    {ref_fwd + "-1thread": no_sync, ref_grad + "-1thread": no_sync},
                )
            finally:
                torch.set_num_threads(default_threads)
            rows.insert(len(fwd_fns), row(ref_fwd + "-1thread", diag[ref_fwd + "-1thread"], ref_fwd))
            rows.append(row(ref_grad + "-1thread", diag[ref_grad + "-1thread"], ref_grad))
            ctx.note(
                f"integrate: torch default threads = {default_threads}; the *-1thread rows "
                "are a diagnostic (torch.set_num_threads(1)), not the reference"
            )
    if load0 is not None:
        load1 = os.getloadavg()
        ctx.note(
            f"integrate: 1-min load average {load0[0]:.2f} before timing, {load1[0]:.2f} after "
            f"({os.cpu_count()} CPUs); a load above the CPU count means shared cores and noisy times"
        )

    med = {r.impl: r.median_s for r in rows}
    if with_diffrax:
        ctx.note(
            "integrate: diffrax (backend='diffrax') median / bare lax.scan median: "
            f"fwd {med['dynajax-diffrax-fwd'] / med['jax-scan-rk4']:.2f}x, "
            f"grad {med['dynajax-diffrax-grad'] / med['jax-scan-rk4-grad']:.2f}x "
            f"(vs the remat scan {med['dynajax-diffrax-grad'] / med['jax-scan-rk4-remat-grad']:.2f}x); "
            "integrate's default path (dynajax-*) / bare scan: "
            f"fwd {med['dynajax-fwd'] / med['jax-scan-rk4']:.2f}x, "
            f"grad {med['dynajax-grad'] / med['jax-scan-rk4-grad']:.2f}x"
        )
    else:
        ctx.note(
            "integrate: dynajax (diffrax) median / bare lax.scan median: "
            f"fwd {med['dynajax-fwd'] / med['jax-scan-rk4']:.2f}x, "
            f"grad {med['dynajax-grad'] / med['jax-scan-rk4-grad']:.2f}x "
            f"(vs the remat scan {med['dynajax-grad'] / med['jax-scan-rk4-remat-grad']:.2f}x)"
        )
    return rows


@register(
    "integrate",
    "batch of 1024 MLP-field ODEs, fixed-step RK4 (3/8), 100 steps: dynajax jit vs torchdiffeq "
    "on CPU, forward and forward+backward",
)
def run(ctx: Context) -> list[Row]:
    return run_integrate(ctx)
