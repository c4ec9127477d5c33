"""Workloads ``aphynity`` and ``leads``: one training step, dynajax vs PyTorch + torchdiffeq (CPU).

``aphynity`` (thesis Table 3.4 (c), the ``aphynity-pendulum`` experiment): a full batch of
``B = 25`` pendulum trajectories of ``T = 40`` frames, ``dt = 0.5``. The field is
``F = F_p + F_a`` with ``F_p = (p, -omega0_sq sin q)`` (frictionless family) and
``F_a`` = MLP 2-200-200-2 (ReLU), rolled out by one RK4 3/8 step per frame. One step =
the trajectory MSE, the penalty ``mean ||F_a(X)||^2 / (||X|| + 1e-5)^2`` over all
ground-truth states, ``penalty + lambda * MSE``, backward, Adam (lr 1e-3), and the Uzawa
ascent ``lambda += tau2 * MSE`` every ``N_iter = 5`` steps.

``leads`` (thesis Table 3.14, ``leads-lv``): ``E = 10`` Lotka-Volterra environments, one
trajectory of ``T = 20`` frames each, ``f`` and every ``g_e`` MLPs 2-64-64-64-2 with LEADS'
learnable Swish. One step = scheduled-sampling rollout (each frame restarts from the truth
with probability ``eps``, one RK4 3/8 step), MSE, the penalty
``(1/lambda) sum_e [mean |g_e(x)|^2/(|x|+1e-5)^2 + alpha sum_l sigma_l^2]`` with 5 power
iterations per weight, backward and Adam (lr 1e-3).

Rows (float32, compile excluded, timed round-robin):

- ``torch-*-step``: the same step written with torch tensors (``torch.bmm`` over the
  environments for ``g_e``) and ``torchdiffeq.odeint(method="rk4")`` (the 3/8 rule, on the
  frame grid); the reference.
- ``dynajax-*-step``: ``jax.jit`` of the library's step (:func:`dynajax.forecast.aphynity.make_loss`
  with :func:`dynajax.train.make_step`; :func:`dynajax.forecast.leads.make_trainer`).

Both start from the same weights, data (and power-iteration vectors); before timing, the
first step's loss must agree to ``RTOL`` and a weight after it to ``ATOL`` (a mismatch
raises). ``DYNAJAX_BENCH_TORCH_THREADS`` sets torch's intra-op threads.

Where the dynajax APHYNITY step's time goes (one core, ``taskset -c 0``, CPU-time medians
of 30 calls, jax 0.10, shared machine at load 5): step 19.9 ms = rollout forward 3.7
(156 field evaluations, almost all in the 25x200 @ 200x200 product, about 22 us each) +
the rollout's backward 13.2, of which 5.5 is the state adjoint (the transposed 200x200
product per evaluation, plus small ops) and 7.7 the weight gradients (156 outer products
``h^T g`` summing over only the 25 trajectories, about 50 us each: the largest single item)
+ penalty value and gradient 3.3 + Adam and Uzawa < 0.5. The 200x200 products' outputs are
stored in the forward pass instead of recomputed in the backward (``remat="auto"`` in
:mod:`dynajax._fixed_step`; the step took 22.9-24.9 ms when every stage was recomputed).
Deferring the weight gradients to one product per layer after the loop (flax ``nn.Dense``
calls intercepted with constant weights and zero "taps" on their outputs, the taps'
cotangents and the stored inputs giving ``sum_t x_t^T g_t`` in one product; a
``custom_vjp`` around the rollout) gave the same gradients to 1.4e-7 but no faster step:
20.4 vs 20.1 ms, one core, this benchmark, so it was not merged (a plain-scan mock-up
without the stored products had suggested 21% less).
"""

from __future__ import annotations

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
from dynajax.forecast import aphynity as aph
from dynajax.forecast import leads
from dynajax.nn import MLP, normal, orthogonal
from dynajax.systems import pendulum
from dynajax.train import Uzawa, init_state, make_step

RTOL, ATOL = 1e-4, 1e-5
LR = 1e-3

# APHYNITY pendulum
B, T_APH, DT, WIDTH_APH = 25, 40, 0.5, 200
OMEGA0_SQ, LAMBDA0, TAU2, N_ITER = 0.2, 1.0, 1.0, 5

# LEADS LV
E, N_TRAJ, T_LEADS, WIDTH_LEADS = 10, 1, 20, 64
LAM, ALPHA, N_POWER = 5e3, 1e-3, 5


def _dense_layers(net_params) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(kernel [in, out], bias [out]), ...]`` of an :class:`MLP`'s params, in order."""
    p = net_params.get("params", net_params)
    names = sorted((k for k in p if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
    return [(np.asarray(p[k]["kernel"]), np.asarray(p[k]["bias"])) for k in names]


def _pendulum_batch(seed: int = 0) -> np.ndarray:
    """``[B, T, 2]`` float32 trajectories of the damped pendulum (library generator)."""
    with jax.enable_x64(True):
        y0 = np.asarray(pendulum.sample_initial(B, key=jax.random.key(seed)), np.float64)
        ts = np.arange(T_APH) * DT
        theta = {"omega0_sq": float(pendulum.omega0_sq_from_T0(6.0)), "alpha": 0.2}
        field = lambda t, y, a: pendulum.complete_field(t, y, a)  # noqa: E731
        from dynajax.solve import integrate

        ys = jax.vmap(lambda y: integrate(field, y, ts, solver="dopri5", rtol=1e-8, atol=1e-8,
                                          args=theta))(jnp.asarray(y0))
    return np.asarray(ys, np.float32)


# ----------------------------------------------------------------------------- APHYNITY
def torch_aphynity_step(torch, odeint, layers, batch: np.ndarray):
    """The APHYNITY step in torch; returns ``(step(), weights)``."""
    ws = [torch.tensor(a, requires_grad=True) for wb in layers for a in wb]
    omega = torch.tensor(OMEGA0_SQ, requires_grad=True)
    opt = torch.optim.Adam(ws + [omega], lr=LR)
    x = torch.from_numpy(batch)
    t = torch.arange(T_APH, dtype=torch.float32) * DT
    flat = x.reshape(-1, 2)
    state = {"lam": LAMBDA0, "step": 0}

    def fa(y):
        h = torch.relu(y @ ws[0] + ws[1])
        h = torch.relu(h @ ws[2] + ws[3])
        return h @ ws[4] + ws[5]

    def field(_, y):
        fp = torch.stack([y[:, 1], -omega * torch.sin(y[:, 0])], dim=1)
        return fp + fa(y)

    def step():
        pred = odeint(field, x[:, 0], t, method="rk4").transpose(0, 1)
        mse = torch.mean((pred - x) ** 2)
        pen = torch.mean(torch.sum(fa(flat) ** 2, 1) / (torch.linalg.norm(flat, dim=1) + 1e-5) ** 2)
        loss = pen + state["lam"] * mse
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        if state["step"] % N_ITER == 0:
            state["lam"] += TAU2 * float(mse.detach())
        return loss.detach()

    return step, ws


def aphynity_step():
    """``(step, state0, batch)`` of the dynajax APHYNITY workload (also timed by ``compile``)."""
    net = MLP((WIDTH_APH, WIDTH_APH, 2), kernel_init=orthogonal(0.2))
    model = aph.Aphynity(pendulum.FAMILIES["frictionless"], net, physics_init={"omega0_sq": OMEGA0_SQ})
    batch = _pendulum_batch()
    times = np.arange(T_APH) * DT
    params = model.init(jax.random.key(0), batch[:, 0])
    opt = optax.adam(LR)
    uz = Uzawa(LAMBDA0, TAU2, N_ITER)
    step = make_step(aph.make_loss(model, times, method="aphynity", penalty="l2_normalized"), opt, uzawa=uz)
    return step, init_state(params, opt, key=jax.random.key(1), uzawa=uz), jnp.asarray(batch)


def run_aphynity(ctx: Context) -> list[Row]:
    step, state0, xb = aphynity_step()
    batch = np.asarray(xb)
    params = state0.params
    f, jax_call, comp = compiled_step(step, state0, xb)
    fns = {"dynajax-aphynity-step": jax_call}
    torch, torchdiffeq = import_reference(ctx, "aphynity", "torch", "torchdiffeq")
    if torch is not None:
        tstep, ws = torch_aphynity_step(torch, torchdiffeq.odeint, _dense_layers(params["network"]), batch)
        s1, m1 = f(state0, xb)
        lt = float(tstep())
        w1 = np.asarray(s1.params["network"]["params"]["Dense_1"]["kernel"])
        check_first_step(ctx, "aphynity", float(m1["loss"]), lt, float(np.max(np.abs(w1 - ws[2].detach().numpy()))),
                         RTOL, ATOL)
        fns["torch-aphynity-step"] = tstep
    rows = _rows(ctx, "aphynity", fns, comp, units=B * T_APH, unit="trajectory-frame",
                 extra={"batch": B, "frames": T_APH, "width": WIDTH_APH})
    annotate_step(rows, step, state0, xb)
    return rows


# ----------------------------------------------------------------------------- LEADS
def torch_leads_step(torch, odeint, f_layers, g_layers, betas, sn_u, data: np.ndarray, eps: float):
    """The LEADS step in torch; ``g_layers`` carry a leading environment axis."""
    f_w = [torch.tensor(a, requires_grad=True) for wb in f_layers for a in wb]
    g_w = [torch.tensor(a, requires_grad=True) for wb in g_layers for a in wb]
    f_beta = [torch.tensor(b, requires_grad=True) for b in betas["f"]]
    g_beta = [torch.tensor(b, requires_grad=True) for b in betas["g"]]  # each [E]
    us = [torch.tensor(u) for u in sn_u]  # each [E, out]
    opt = torch.optim.Adam(f_w + g_w + f_beta + g_beta, lr=LR)
    x = torch.from_numpy(data)  # [E, N, T, 2]
    t2 = torch.tensor([0.0, DT])
    flat = x.reshape(E, -1, 2)
    sp = torch.nn.functional.softplus

    def swish(h, beta):
        return h * torch.sigmoid(h * sp(beta)) / 1.1

    def f_net(y):  # y [E, M, 2]
        h = y
        for i in range(3):
            h = swish(h @ f_w[2 * i] + f_w[2 * i + 1], f_beta[i])
        return h @ f_w[6] + f_w[7]

    def g_net(y):
        h = y
        for i in range(3):
            h = torch.bmm(h, g_w[2 * i]) + g_w[2 * i + 1][:, None]
            h = swish(h, g_beta[i][:, None, None])
        return torch.bmm(h, g_w[6]) + g_w[7][:, None]

    def field(_, y):
        return f_net(y) + g_net(y)

    def normalize(v):
        return v / torch.clamp(torch.linalg.norm(v, dim=-1, keepdim=True), min=1e-12)

    def sigmas():
        out = []
        for i in range(4):
            w = g_w[2 * i]  # [E, in, out]
            with torch.no_grad():
                u = us[i]
                for _ in range(N_POWER):
                    v = normalize(torch.bmm(w, u[..., None])[..., 0])
                    u = normalize(torch.bmm(w.transpose(1, 2), v[..., None])[..., 0])
                v = normalize(torch.bmm(w, u[..., None])[..., 0])
                us[i] = u
            out.append(torch.sum(v * torch.bmm(w, u[..., None])[..., 0], dim=-1))  # [E]
        return out

    def step():
        mask = torch.rand(T_LEADS - 1, E, N_TRAJ, 1) < eps
        pred, preds = x[:, :, 0], [x[:, :, 0]]
        for k in range(T_LEADS - 1):
            y = torch.where(mask[k], x[:, :, k], pred)
            pred = odeint(field, y, t2, method="rk4")[1]
            preds.append(pred)
        mse = torch.mean((torch.stack(preds, 2) - x) ** 2)
        gx = g_net(flat)
        ratio = torch.sum(gx**2, -1) / (torch.linalg.norm(flat, dim=-1) + 1e-5) ** 2
        norm = torch.sum(torch.mean(ratio, 1))
        sn = sum(torch.sum(s**2) for s in sigmas())
        loss = mse + (norm + ALPHA * sn) / LAM
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, g_w


def _lv_data(seed: int = 0) -> np.ndarray:
    from dynajax.systems import lotka_volterra

    ds = lotka_volterra.generate("train", seed=seed, n_per_env=N_TRAJ)
    data = np.asarray(ds.by_env(), np.float32)
    if data.shape[:3] != (E, N_TRAJ, T_LEADS):
        data = data[:E, :N_TRAJ, :T_LEADS]
    return data


def leads_step():
    """``(step, state0, data)`` of the dynajax LEADS workload (``step(state, None)``)."""
    net = MLP((WIDTH_LEADS,) * 3 + (2,), activation="swish", kernel_init=normal(0.05))
    model = leads.make_model("leads", net, E, DT, lam=LAM, alpha=ALPHA, n_power_iter=N_POWER)
    data = _lv_data()
    step, state = leads.make_trainer(model, data, keys=jax.random.split(jax.random.key(0), 1))
    return step, jax.tree_util.tree_map(lambda a: a[0], state), data


def run_leads(ctx: Context) -> list[Row]:
    step, state0, data = leads_step()
    f, jax_call, comp = compiled_step(step, state0, None)
    fns = {"dynajax-leads-step": jax_call}
    torch, torchdiffeq = import_reference(ctx, "leads", "torch", "torchdiffeq")
    if torch is not None:
        p = state0.params
        f_layers = _dense_layers(p["f"])
        g_layers = [(np.asarray(k), np.asarray(b)) for k, b in _dense_layers(p["g"])]
        beta = lambda q, i: np.asarray(q[f"Swish_{i}"]["beta"], np.float32)  # noqa: E731
        betas = {"f": [beta(p["f"], i) for i in range(3)], "g": [beta(p["g"], i) for i in range(3)]}
        sn = state0.model_state["sn"]
        sn_u = [np.asarray(sn[k]) for k in sorted(sn, key=lambda k: int(k.split("/")[0].split("_")[1]))]
        # Step 0 has eps = 1 (every frame restarts from the truth), deterministic in both.
        tstep, g_w = torch_leads_step(torch, torchdiffeq.odeint, f_layers, g_layers, betas, sn_u, data, 1.0)
        s1, m1 = f(state0, None)
        lt = float(tstep())
        w1 = np.asarray(s1.params["g"]["Dense_1"]["kernel"])
        check_first_step(ctx, "leads", float(m1["loss"]), lt, float(np.max(np.abs(w1 - g_w[2].detach().numpy()))),
                         RTOL, ATOL)
        fns["torch-leads-step"] = tstep
    rows = _rows(ctx, "leads", fns, comp, units=E * N_TRAJ * T_LEADS, unit="trajectory-frame",
                 extra={"envs": E, "frames": T_LEADS, "width": WIDTH_LEADS, "power_iter": N_POWER})
    annotate_step(rows, step, state0, None)
    return rows


def _rows(ctx, name, fns, comp, *, units, unit, extra) -> list[Row]:
    ref = f"torch-{name}-step"
    timings = ctx.time_interleaved(fns, {ref: lambda v: v} if ref in fns else None)
    rows = []
    for impl, t in timings.items():
        rows.append(Row.from_timing(name, impl, t, units=units, unit=unit,
                                    ref=ref if ref in fns else None,
                                    compile_s=comp if impl.startswith("dynajax") else None))
        rows[-1].extra.update(extra)
    return rows


@register("aphynity", f"one APHYNITY pendulum training step (batch {B} x {T_APH} frames, MLP-{WIDTH_APH}, "
          "RK4 3/8, Uzawa): dynajax vs PyTorch + torchdiffeq (CPU)")
def run_aph(ctx: Context) -> list[Row]:
    return run_aphynity(ctx)


@register("leads", f"one LEADS-LV training step ({E} envs x {T_LEADS} frames, MLP-{WIDTH_LEADS} Swish, "
          "scheduled sampling, spectral penalty): dynajax vs PyTorch + torchdiffeq (CPU)")
def run_lead(ctx: Context) -> list[Row]:
    return run_leads(ctx)
