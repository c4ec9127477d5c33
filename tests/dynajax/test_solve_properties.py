"""Property tests of `integrate`: exact on linear ODEs, clear refusals of bad arguments.

* A field affine in ``t`` (``f = a + b t``) has a quadratic solution, which every solver
  of order >= 2 reproduces to rounding (Euler: for ``b = 0``).
* On ``y' = lambda y`` a fixed-step explicit Runge-Kutta method multiplies ``y`` by its
  stability polynomial ``R(h lambda)`` each step, on either backend: the result is
  ``R(h lambda)^k y0`` to rounding.
* Bad ``dt0``/``rtol``/``atol``/``max_steps``/``ts``/``t0``/``y0``/names raise a ``ValueError``
  or ``TypeError`` naming the argument; traced ones under ``jit`` raise with the same text.

Example counts come from the hypothesis profile in ``tests/conftest.py``.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynajax.solve import integrate

# stability polynomials R(z) of the explicit fixed-step tableaux
STABILITY = {
    "euler": lambda z: 1 + z,
    "midpoint": lambda z: 1 + z + z**2 / 2,
    "heun": lambda z: 1 + z + z**2 / 2,
    "rk4": lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24,
    "rk4_38": lambda z: 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24,
}
SMALL = st.floats(-2.0, 2.0, allow_nan=False, width=32)


# Compilation, not the property, is what costs here (seconds per solver on 2 cores): each
# (solver, backend) runs one compiled program, and the drawn values are K independent
# one-dimensional problems solved at once as the components of one state.
K = 8
TS = np.linspace(0.0, 1.0, 5)  # 4 intervals of 2 steps: dt0 = 0.125
DT0 = 0.125
VALUES = st.lists(st.floats(-2.0, 2.0, allow_nan=False, width=32), min_size=K, max_size=K).map(
    lambda v: np.asarray(v, np.float32)
)
_RUNS = {}


def _affine(t, y, args):
    a, b = args
    return a + b * t


def _linear(t, y, lam):
    return lam * y


def _solve(field, solver, backend, y0, args, **kwargs):
    """``integrate`` compiled once per (field, solver, backend)."""
    key = (field, solver, backend, tuple(sorted(kwargs.items())))
    if key not in _RUNS:
        _RUNS[key] = jax.jit(
            lambda y0, args: integrate(field, y0, TS, solver=solver, args=args, backend=backend, **kwargs)
        )
    return np.asarray(_RUNS[key](y0, args))


@pytest.mark.parametrize(
    "solver, backend", [("rk4", "scan"), ("heun", "diffrax"), ("tsit5", "diffrax"), ("euler", "scan")]
)
@given(a=VALUES, b=VALUES, y0=VALUES)
def test_exact_on_a_field_affine_in_time(solver, backend, a, b, y0):
    if solver == "euler":
        b = np.zeros_like(b)  # first order: exact on constant fields only
    ys = _solve(_affine, solver, backend, y0, (a, b), dt0=DT0)
    t = TS[:, None]
    np.testing.assert_allclose(ys, y0 + a * t + b * t**2 / 2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "solver, backend", [("euler", "diffrax"), ("midpoint", "scan"), ("rk4", "diffrax"), ("rk4_38", "scan")]
)
@given(lam=VALUES.map(lambda v: v - 1.0))
def test_linear_ode_is_the_stability_polynomial_to_the_number_of_steps(solver, backend, lam):
    ys = _solve(_linear, solver, backend, np.ones(K, np.float32), lam, dt0=DT0)
    steps = np.arange(len(TS))[:, None] * 2
    want = STABILITY[solver](DT0 * lam.astype(np.float64)) ** steps
    np.testing.assert_allclose(ys, want, rtol=2e-5, atol=1e-6)


@given(lam=VALUES.map(lambda v: v - 1.0))
def test_adaptive_linear_ode_within_tolerance(lam):
    ys = _solve(_linear, "tsit5", "auto", np.ones(K, np.float32), lam, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ys, np.exp(TS[:, None] * lam.astype(np.float64)), rtol=1e-4)


@given(max_steps=st.integers(1, 30))
def test_max_steps_is_honoured_on_the_fixed_step_path(max_steps):
    if max_steps < 8:  # 8 steps of dt0 from 0 to 1
        with pytest.raises(ValueError, match=f"max_steps={max_steps} is fewer than the 8 fixed steps"):
            integrate(_decay, Y0, TS, solver="rk4", dt0=DT0, max_steps=max_steps)
    else:
        ys = integrate(_decay, Y0, TS, solver="rk4", dt0=DT0, max_steps=max_steps)
        np.testing.assert_allclose(np.asarray(ys[-1]), math.exp(-1.0), rtol=1e-5)


Y0 = jnp.ones(2)


def _decay(t, y, args):
    return -y


NOT_POSITIVE = st.one_of(
    st.floats(max_value=0.0, allow_nan=False), st.just(float("nan")), st.just(float("inf"))
)
BAD_COUNT = st.one_of(st.integers(-5, 0), st.floats(0.5, 3.5), st.just("8"), st.just(True))

# (argument name, strategy of bad values, call with that value)
CASES = {
    "dt0 fixed": ("dt0", NOT_POSITIVE, lambda v: integrate(_decay, Y0, TS, solver="rk4", dt0=v)),
    "dt0 adaptive": ("dt0", NOT_POSITIVE, lambda v: integrate(_decay, Y0, TS, dt0=v, rtol=1e-4)),
    "rtol": ("rtol", NOT_POSITIVE, lambda v: integrate(_decay, Y0, TS, rtol=v, atol=1e-6)),
    "atol": (
        "atol",
        st.one_of(st.floats(max_value=-1e-30, allow_nan=False), st.just(float("nan")), st.just(float("inf"))),
        lambda v: integrate(_decay, Y0, TS, rtol=1e-4, atol=v),
    ),
    "max_steps": ("max_steps", BAD_COUNT, lambda v: integrate(_decay, Y0, TS, solver="rk4", dt0=0.1, max_steps=v)),
    "solver": ("solver", st.text(max_size=6).filter(lambda s: s not in {"euler", "heun", "rk4"}), lambda v: integrate(_decay, Y0, TS, solver=v, dt0=0.1)),
    "adjoint": ("adjoint", st.text(max_size=6), lambda v: integrate(_decay, Y0, TS, solver="rk4", dt0=0.1, adjoint=v)),
    "backend": ("backend", st.text(max_size=6).filter(lambda s: s != "auto"), lambda v: integrate(_decay, Y0, TS, solver="rk4", dt0=0.1, backend=v)),
    "ts": (
        "ts",
        st.sampled_from([[0.0, np.nan], [0.0, np.inf], [0.0, 1.0, 1.0], [1.0, 0.0], [], [[0.0, 1.0]]]),
        lambda v: integrate(_decay, Y0, jnp.asarray(v, jnp.float32), solver="rk4", dt0=0.1),
    ),
    "t0": (
        "t0",
        st.one_of(st.floats(1e-3, 10.0), st.just(float("nan")), st.just(float("inf"))),
        lambda v: integrate(_decay, Y0, TS, solver="rk4", dt0=0.1, t0=v),
    ),
    "y0": (
        "y0",
        st.sampled_from([jnp.array([1.0, jnp.nan]), jnp.array([jnp.inf, 1.0]), jnp.array([1, 2]), {}]),
        lambda v: integrate(_decay, v, TS, solver="rk4", dt0=0.1),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@given(data=st.data())
def test_bad_arguments_are_refused_naming_them(case, data):
    name, values, call = CASES[case]
    value = data.draw(values)
    with pytest.raises((ValueError, TypeError)) as err:
        call(value)
    assert name in str(err.value)


TRACED = {
    "dt0 must be positive and finite": (lambda v: integrate(_decay, Y0, TS, solver="rk4", dt0=v), -0.1),
    "rtol must be positive and finite": (lambda v: integrate(_decay, Y0, TS, rtol=v, atol=1e-6), -0.1),
    "ts must be strictly increasing": (
        lambda v: integrate(_decay, Y0, v, solver="rk4", dt0=0.1), jnp.array([0.0, 1.0, 0.5])
    ),
    "t0 must not exceed the first save time": (
        lambda v: integrate(_decay, Y0, v, solver="rk4", dt0=0.1, t0=0.5), jnp.array([0.0, 1.0])
    ),
}


@pytest.mark.parametrize("message", sorted(TRACED))
def test_traced_bad_values_raise_the_same_message_under_jit(message):
    run, value = TRACED[message]
    with warnings.catch_warnings():  # traced grids fall back to diffrax, with a warning
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(Exception, match=message):
            jax.block_until_ready(jax.jit(run)(value))
