"""Tests for `dynajax.solve`: orders of convergence, exact linear solves, gradients through
both adjoints, vmap/jit, float64, and the input checks of `integrate`.

Every distinct (solver, step, field) combination costs a compilation, so the tests reuse
jitted functions where they can and keep problems tiny.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from dynajax.solve import RK4, RK4_38, SOLVERS, get_solver, integrate, solver_order


def _decay(t, y, args):
    return -y


def _logistic(t, y, args):
    return y * (1 - y)


def _logistic_exact(t):
    # y' = y (1 - y), y(0) = 0.1
    return 1.0 / (1.0 + 9.0 * np.exp(-t))


def _slope(dts, errs) -> float:
    """Least-squares slope of log(err) against log(dt)."""
    return float(np.polyfit(np.log(dts), np.log(errs), 1)[0])


# ---------------------------------------------------------------------------------------
# Orders of convergence
# ---------------------------------------------------------------------------------------

# Steps shrink by 3 from 0.6 so that the off-grid save time T_OFF = 1.5 always sits in the
# middle of a step (1.5 / dt = 2.5 * 3**k): the dense-output error then has the same local
# constant at every level and the slope is clean. Errors stay above ~1e-12 over each range.
_T_END, _T_OFF = 2.4, 1.5
_DTS = 0.6 / 3.0 ** np.arange(5)
_CONVERGENCE = {
    # name: (expected order, slice of _DTS, tolerance on the slope)
    "euler": (1, slice(1, 5), 0.2),
    "midpoint": (2, slice(1, 5), 0.2),
    "heun": (2, slice(1, 5), 0.2),
    "rk4": (4, slice(1, 5), 0.2),
    "rk4_38": (4, slice(1, 5), 0.2),
    # Fifth-order pairs reach float64 round-off within three levels; their slope comes from
    # the coarse end (still pre-asymptotic: ~5.2-5.4), hence the wider band. It still tells
    # fifth order apart from fourth and sixth.
    "tsit5": (5, slice(0, 3), 0.45),
    "dopri5": (5, slice(0, 3), 0.45),
}


@pytest.mark.filterwarnings("ignore:integrate.backend=.auto.. falls back to diffrax")
@pytest.mark.parametrize("name", list(_CONVERGENCE))
def test_convergence_order_on_logistic(name):
    order, sl, tol = _CONVERGENCE[name]
    assert solver_order(name) == order
    dts = _DTS[sl]
    with jax.enable_x64(True):
        ts = jnp.array([0.0, _T_OFF, _T_END])
        y0 = jnp.array([0.1])
        # One compilation per solver: dt0 is a traced, vmapped argument.
        run = jax.jit(
            jax.vmap(lambda dt: integrate(_logistic, y0, ts, solver=name, dt0=dt, max_steps=512))
        )
        ys = np.asarray(run(jnp.asarray(dts)))[:, :, 0]
        assert ys.dtype == np.float64
    np.testing.assert_allclose(ys[:, 0], 0.1)
    err_end = np.abs(ys[:, 2] - _logistic_exact(_T_END))
    err_off = np.abs(ys[:, 1] - _logistic_exact(_T_OFF))
    assert np.all(err_end > 1e-14) and np.all(err_off > 1e-14)  # not round-off dominated
    slope_end, slope_off = _slope(dts, err_end), _slope(dts, err_off)
    # At a step boundary (pure solver error) ...
    assert abs(slope_end - order) < tol, (name, slope_end)
    # ... and between steps (dense output must not lower the order).
    assert abs(slope_off - order) < tol, (name, slope_off)


def _hand_rk_steps(f, t0, y0, h, n, variant):
    ys, t, y = [y0], t0, y0
    for _ in range(n):
        if variant == "classic":
            k1 = f(t, y)
            k2 = f(t + h / 2, y + h * k1 / 2)
            k3 = f(t + h / 2, y + h * k2 / 2)
            k4 = f(t + h, y + h * k3)
            y = y + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
        else:  # the 3/8 rule, as in torchdiffeq's rk4_alt_step_func
            k1 = f(t, y)
            k2 = f(t + h / 3, y + h * k1 / 3)
            k3 = f(t + 2 * h / 3, y + h * (k2 - k1 / 3))
            k4 = f(t + h, y + h * (k1 - k2 + k3))
            y = y + h * (k1 + 3 * (k2 + k3) + k4) / 8
        t = t + h
        ys.append(y)
    return np.stack(ys)


def test_rk4_tableaux_match_hand_written_steps_and_differ():
    h, n = 0.3, 5

    def f_np(t, y):
        return np.array([y[1] * np.cos(t), -y[0] + t * y[1] ** 2])

    def f(t, y, args):
        return jnp.stack([y[1] * jnp.cos(t), -y[0] + t * y[1] ** 2])

    y0_np = np.array([1.0, 0.5])
    out = {}
    with jax.enable_x64(True):
        ts = jnp.arange(n + 1) * h  # every step end is a save time
        for name, variant in [("rk4", "classic"), ("rk4_38", "3/8")]:
            ys = np.asarray(integrate(f, jnp.asarray(y0_np), ts, solver=name, dt0=h))
            want = _hand_rk_steps(f_np, 0.0, y0_np, h, n, variant)
            # One step (row 1) and several steps: same numbers to round-off.
            np.testing.assert_allclose(ys, want, rtol=0, atol=1e-12, err_msg=name)
            out[name] = ys
    # Two different fourth-order methods: their one-step results differ at O(h^5).
    assert np.max(np.abs(out["rk4"][1] - out["rk4_38"][1])) > 1e-6


def test_solver_registry_and_orders():
    assert set(SOLVERS) >= {"euler", "midpoint", "heun", "rk4", "rk4_38", "tsit5", "dopri5"}
    for name, (ctor, order, _) in SOLVERS.items():
        solver = get_solver(name)
        assert isinstance(solver, ctor)
        assert solver_order(name) == order
        assert solver_order(solver) == order
    assert isinstance(get_solver("rk4"), RK4)
    assert isinstance(get_solver("rk4_38"), RK4_38)
    custom = diffrax.Tsit5()
    assert get_solver(custom) is custom
    assert solver_order(RK4_38()) == 4


# ---------------------------------------------------------------------------------------
# Exact solutions of linear ODEs
# ---------------------------------------------------------------------------------------


def _stable_matrix(key, n):
    b = np.asarray(jax.random.normal(key, (n, n)), dtype=np.float64)
    shift = np.max(np.linalg.eigvals(b).real) + 0.5
    return b - shift * np.eye(n)


def test_linear_ode_matches_matrix_exponential_on_a_pytree_state(rng):
    # y' = A x (random stable 3x3) next to a matrix ODE M' = B M, in one dict-valued state.
    k1, k2 = jax.random.split(rng)
    a, b = _stable_matrix(k1, 3), _stable_matrix(k2, 2)
    x0, m0 = np.array([1.0, -2.0, 0.5]), np.arange(4.0).reshape(2, 2)
    ts = np.linspace(0.0, 2.0, 5)
    with jax.enable_x64(True):

        def f(t, y, args):
            return {"x": args[0] @ y["x"], "m": args[1] @ y["m"]}

        y0 = {"x": jnp.asarray(x0), "m": jnp.asarray(m0)}
        args = (jnp.asarray(a), jnp.asarray(b))
        ys = integrate(f, y0, jnp.asarray(ts), args=args, rtol=1e-11, atol=1e-11)
        assert set(ys) == {"x", "m"}
        assert ys["x"].shape == (5, 3) and ys["m"].shape == (5, 2, 2)
        assert ys["x"].dtype == jnp.float64
    want_x = np.stack([scipy.linalg.expm(a * t) @ x0 for t in ts])
    want_m = np.stack([scipy.linalg.expm(b * t) @ m0 for t in ts])
    np.testing.assert_allclose(ys["x"], want_x, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ys["m"], want_m, rtol=0, atol=1e-8)


# ---------------------------------------------------------------------------------------
# Gradients: both adjoints vs finite differences and the closed form
# ---------------------------------------------------------------------------------------

_GRAD_TS = (0.0, 0.5, 1.0)


def _forced_decay(t, y, theta):
    return -theta * y + jnp.sin(t)


def _forced_decay_exact(theta, y0, t):
    # y' = -theta y + sin t: y = e^{-theta t} (y0 + c) + (theta sin t - cos t) c, c = 1/(1+theta^2)
    c = 1.0 / (1.0 + theta**2)
    return jnp.exp(-theta * t) * (y0 + c) + (theta * jnp.sin(t) - jnp.cos(t)) * c


def _loss_exact(theta, y0):
    return sum(jnp.sum(_forced_decay_exact(theta, y0, t) ** 2) for t in _GRAD_TS)


@pytest.mark.parametrize(
    "adjoint, steps, fd_rtol, params",
    [
        # Fixed steps + discretize: the gradient is exact for the discrete map, so central
        # differences of the same solver agree to their own truncation error. theta is
        # closed over by the field (the usual neural-ODE pattern).
        ("discretize", dict(solver="rk4", dt0=0.01), 1e-7, "closure"),
        # Backsolve: the continuous adjoint, accurate to the tolerances / step. It only
        # differentiates through y0 and args, so theta goes in args.
        ("backsolve", dict(solver="tsit5", rtol=1e-11, atol=1e-11), 1e-5, "args"),
        ("backsolve", dict(solver="rk4_38", dt0=0.01), 1e-6, "args"),
    ],
    ids=["discretize-rk4", "backsolve-tsit5", "backsolve-rk4_38"],
)
def test_gradients_match_finite_differences_and_closed_form(adjoint, steps, fd_rtol, params):
    with jax.enable_x64(True):
        ts = jnp.asarray(_GRAD_TS)

        def loss(theta, y0):
            if params == "closure":
                field, args = (lambda t, y, a: _forced_decay(t, y, theta)), None
            else:
                field, args = _forced_decay, theta
            ys = integrate(field, y0, ts, args=args, adjoint=adjoint, **steps)
            return jnp.sum(ys**2)

        # One compilation serves the gradient and the finite differences.
        value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        theta, y0 = jnp.asarray(0.7), jnp.array([1.0, -0.5])
        value, (g_theta, g_y0) = value_and_grad(theta, y0)

        def value_at(th, y):
            return value_and_grad(th, y)[0]

        # Central differences in float64.
        h = 1e-5
        fd_theta = (value_at(theta + h, y0) - value_at(theta - h, y0)) / (2 * h)
        fd_y0 = jnp.stack(
            [
                (value_at(theta, y0 + h * e) - value_at(theta, y0 - h * e)) / (2 * h)
                for e in jnp.eye(2)
            ]
        )
        np.testing.assert_allclose(g_theta, fd_theta, rtol=fd_rtol)
        np.testing.assert_allclose(g_y0, fd_y0, rtol=fd_rtol)

        # The true gradient of the continuous problem.
        a_theta, a_y0 = jax.grad(_loss_exact, argnums=(0, 1))(theta, y0)
        np.testing.assert_allclose(g_theta, a_theta, rtol=1e-6)
        np.testing.assert_allclose(g_y0, a_y0, rtol=1e-6)
        np.testing.assert_allclose(value, _loss_exact(theta, y0), rtol=1e-8)


# ---------------------------------------------------------------------------------------
# vmap, jit, float64
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_vmap_over_initial_conditions_equals_loop(rng):
    batch = jax.random.uniform(rng, (4, 2), minval=0.05, maxval=0.95)
    ts = jnp.linspace(0.0, 1.0, 4)

    def solve(y0):
        return integrate(_logistic, y0, ts, rtol=1e-7, atol=1e-7)

    batched = jax.vmap(solve)(batch)
    assert batched.shape == (4, 4, 2)
    assert batched.dtype == jnp.float32  # float32 unless x64 is enabled
    looped = jnp.stack([solve(y0) for y0 in batch])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-6)
    exact = 1.0 / (1.0 + (1.0 / batch[:, None, :] - 1.0) * jnp.exp(-ts[None, :, None]))
    np.testing.assert_allclose(batched, exact, rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore:integrate.backend=.auto.. falls back to diffrax")
def test_jit_with_traced_inputs_and_closed_over_constants():
    ts = jnp.linspace(0.0, 1.0, 3)
    y0 = jnp.array([1.0, 2.0])

    # Everything traced: y0, ts, args, t0 (validation must skip the value checks).
    @jax.jit
    def traced(y0, ts, rate, t0):
        return integrate(lambda t, y, a: -a * y, y0, ts, args=rate, t0=t0, solver="rk4", dt0=0.05)

    got = traced(y0, ts, 1.0, 0.0)
    np.testing.assert_allclose(got, jnp.exp(-ts)[:, None] * y0, rtol=1e-5)

    # Concrete y0 / ts closed over inside jit, explicit t0 (this used to raise a
    # TracerBoolConversionError / ConcretizationTypeError in the checks).
    @jax.jit
    def closed(scale):
        return scale * integrate(_decay, y0, ts, t0=0.0, solver="rk4", dt0=0.05)

    np.testing.assert_allclose(closed(1.0), got, rtol=1e-6)


def test_float64_when_enabled():
    with jax.enable_x64(True):
        ts = jnp.array([0.0, 0.5, 1.0])
        ys = integrate(_decay, jnp.ones(3), ts, rtol=1e-12, atol=1e-12)
        assert ys.dtype == jnp.float64
        err = float(jnp.max(jnp.abs(ys - jnp.exp(-ts)[:, None])))
    assert err < 1e-10 < np.finfo(np.float32).eps


def test_fixed_step_with_t0_before_ts_and_a_step_that_does_not_divide_the_span():
    # 1.0 / 0.3 is not an integer: the default max_steps must still reach ts[-1].
    ts = jnp.array([0.5, 1.0])
    ys = integrate(_decay, jnp.ones(1), ts, t0=0.0, solver="rk4", dt0=0.3)
    np.testing.assert_allclose(ys[:, 0], jnp.exp(-ts), rtol=1e-4)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------

_Y0 = jnp.ones(2)
_TS = jnp.array([0.0, 1.0])


def test_unknown_solver_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown solver 'rk5'.*rk4_38.*tsit5"):
        integrate(_decay, _Y0, _TS, solver="rk5", dt0=0.1)
    with pytest.raises(ValueError, match="allowed"):
        get_solver(3)
    with pytest.raises(ValueError, match="allowed"):
        solver_order("nope")


def test_unknown_adjoint_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown adjoint 'adjoint'.*discretize.*backsolve"):
        integrate(_decay, _Y0, _TS, dt0=0.1, adjoint="adjoint")


@pytest.mark.parametrize(
    "f, match",
    [
        (lambda t, y, a: jnp.ones(3), "shaped like y0"),
        (lambda t, y, a: jnp.sum(y), "shaped like y0"),
        (lambda t, y, a: (y, y), "structure"),
        (lambda t, y, a: {"y": y}, "structure"),
        (lambda t, y, a: y @ jnp.ones((3, 3)), "calling the vector field"),
    ],
    ids=["wrong-shape", "scalar", "tuple", "dict", "raises"],
)
def test_field_output_must_match_y0(f, match):
    with pytest.raises(ValueError, match=match):
        integrate(f, _Y0, _TS, dt0=0.1, solver="rk4")


def test_pytree_field_output_must_match_y0_structure():
    y0 = {"a": jnp.ones(2), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match="structure"):
        integrate(lambda t, y, a: {"a": y["a"]}, y0, _TS, dt0=0.1, solver="rk4")
    with pytest.raises(ValueError, match="shaped like y0"):
        integrate(lambda t, y, a: {"a": y["a"], "b": y["a"]}, y0, _TS, dt0=0.1, solver="rk4")


@pytest.mark.parametrize(
    "y0, match",
    [
        (jnp.array([1.0, jnp.nan]), "NaN"),
        (jnp.array([jnp.inf, 1.0]), "NaN or inf"),
        ({"a": jnp.ones(2), "b": jnp.array([jnp.nan])}, "NaN"),
        (jnp.array([1, 2]), "floating-point"),
        ({}, "empty"),
    ],
    ids=["nan", "inf", "nan-in-pytree", "int", "empty"],
)
def test_bad_y0(y0, match):
    with pytest.raises(ValueError, match=match):
        integrate(_decay, y0, _TS, dt0=0.1, solver="rk4")


@pytest.mark.parametrize("dt0", [0.0, -0.1])
@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])
def test_non_positive_dt0(dt0, adaptive):
    tols = dict(rtol=1e-6, atol=1e-6) if adaptive else {}
    with pytest.raises(ValueError, match="dt0 must be positive"):
        integrate(_decay, _Y0, _TS, dt0=dt0, solver="tsit5", **tols)


@pytest.mark.parametrize(
    "ts, match",
    [
        ([0.0, 1.0, 1.0], "strictly increasing"),
        ([0.0, 2.0, 1.0], "strictly increasing"),
        ([1.0, 0.0], "strictly increasing"),
        ([0.0, np.nan], "NaN"),
        ([[0.0, 1.0]], "1-D"),
        ([], "1-D"),
    ],
    ids=["repeated", "decreasing", "reversed", "nan", "2d", "empty"],
)
def test_bad_ts(ts, match):
    with pytest.raises(ValueError, match=match):
        integrate(_decay, _Y0, jnp.asarray(ts), dt0=0.1, solver="rk4")


def test_t0_after_first_save_time():
    with pytest.raises(ValueError, match="t0"):
        integrate(_decay, _Y0, _TS, t0=0.5, dt0=0.1, solver="rk4")


@pytest.mark.parametrize(
    "solver", ["euler", "rk4", "rk4_38", RK4(), RK4_38(), diffrax.Euler()],
    ids=["euler", "rk4", "rk4_38", "RK4()", "RK4_38()", "Euler()"],
)
@pytest.mark.parametrize("tol", ["rtol", "atol"])
def test_tolerances_on_a_fixed_step_solver(solver, tol):
    # Includes solver *instances*: RK4's zero error estimate would otherwise let the PID
    # controller grow the step without bound and return garbage silently.
    with pytest.raises(ValueError, match="no error estimate.*tsit5"):
        integrate(_decay, _Y0, _TS, solver=solver, dt0=0.1, **{tol: 1e-6})


def test_neither_dt0_nor_tolerances():
    with pytest.raises(ValueError, match="give dt0"):
        integrate(_decay, _Y0, _TS, solver="tsit5")


# ---------------------------------------------------------------------------------------
# The fixed-step scan backend evaluates exactly diffrax's scheme.


def _pytree_field(t, y, a):
    return {"x": 2.0 * y["x"] * (1.0 - y["x"]) * jnp.cos(t) + a, "v": -y["v"] * t}


@pytest.mark.parametrize(
    "substeps, solvers", [(1, list(SOLVERS)), (3, ["euler", "rk4_38", "dopri5"])], ids=["1", "3"]
)
def test_scan_backend_equals_diffrax_for_every_solver(substeps, solvers):
    with jax.enable_x64(True):
        y0 = {"x": jnp.array([0.3, 0.2]), "v": jnp.ones((2, 2))}
        ts = jnp.linspace(0.0, 2.0, 5)
        for name in solvers:
            kw = dict(solver=name, dt0=0.5 / substeps, args=0.1)
            a = integrate(_pytree_field, y0, ts, backend="diffrax", **kw)
            b = integrate(_pytree_field, y0, ts, backend="scan", **kw)
            for k in a:
                np.testing.assert_allclose(b[k], a[k], rtol=0, atol=1e-13, err_msg=name)


def test_scan_backend_gradients_equal_diffrax():
    with jax.enable_x64(True):
        y0 = {"x": jnp.array([0.3, 0.2]), "v": jnp.ones((2, 2))}
        ts = jnp.linspace(0.0, 2.0, 5)

        def grad(backend):
            def loss(a, y0):
                ys = integrate(_pytree_field, y0, ts, solver="rk4_38", dt0=0.25, args=a, backend=backend)
                return jnp.sum(ys["x"] ** 2) + jnp.sum(ys["v"])

            return jax.grad(loss, argnums=(0, 1))(0.1, y0)

        for a, b in zip(jax.tree_util.tree_leaves(grad("diffrax")), jax.tree_util.tree_leaves(grad("scan"))):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def test_auto_backend_picks_scan_only_where_it_applies():
    f = lambda t, y, a: -y  # noqa: E731
    y0 = jnp.ones(2)
    prims = lambda **kw: str(jax.make_jaxpr(lambda y: integrate(f, y, **kw))(y0))  # noqa: E731
    assert "scan[" in prims(ts=jnp.linspace(0.0, 1.0, 5), solver="rk4", dt0=0.125)
    assert "while" not in prims(ts=jnp.linspace(0.0, 1.0, 5), solver="rk4", dt0=0.125)
    assert "while" in prims(ts=jnp.linspace(0.0, 1.0, 5), solver="rk4", dt0=0.3)  # not a whole number
    assert "while" in prims(ts=jnp.array([0.0, 0.3, 1.0]), solver="rk4", dt0=0.1)  # not uniform
    assert "while" in prims(ts=jnp.linspace(0.0, 1.0, 5), solver="tsit5", rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dt0=0.3), "not a whole number of steps"),
        (dict(ts=jnp.array([0.0, 0.3, 1.0])), "not uniformly spaced"),
        (dict(adjoint="backsolve"), "adjoint='discretize'"),
        (dict(solver="tsit5", dt0=None, rtol=1e-5), "fixed steps"),
        (dict(solver=diffrax.ReversibleHeun()), "not an explicit Runge-Kutta"),
        (dict(t0=-0.5), "first equal to t0"),
    ],
)
def test_scan_backend_refuses_what_it_cannot_run(kwargs, match):
    args = dict(ts=jnp.linspace(0.0, 1.0, 5), solver="rk4", dt0=0.125) | kwargs
    ts = args.pop("ts")
    with pytest.raises(ValueError, match=match):
        integrate(lambda t, y, a: -y, jnp.ones(2), ts, backend="scan", **args)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'torch'; allowed: auto, diffrax, scan"):
        integrate(lambda t, y, a: -y, jnp.ones(2), jnp.linspace(0.0, 1.0, 3), dt0=0.5, solver="rk4", backend="torch")


def test_scan_backend_unroll_gives_the_same_solution():
    f = lambda t, y, args: -y + jnp.sin(t)
    ts = np.linspace(0.0, 1.0, 6)
    rolled = integrate(f, jnp.ones(3), ts, solver="rk4", dt0=0.05, backend="scan")
    unrolled = integrate(f, jnp.ones(3), ts, solver="rk4", dt0=0.05, backend="scan", unroll=True)
    np.testing.assert_allclose(unrolled, rolled, rtol=1e-6)
    exact = np.exp(-ts) * 1.5 + (np.sin(ts) - np.cos(ts)) / 2  # y' = -y + sin t, y(0) = 1
    np.testing.assert_allclose(unrolled[:, 0], exact, atol=1e-5)
