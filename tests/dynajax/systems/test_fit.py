"""Least-squares fits of physical families and RK4 rollouts, tied to the thesis' pendulum
numbers (Table 3.4; spec section 4.3) and to exactly recoverable parameters.

Calibration on the default splits (seed 0, sigma = 0.01 noise), measured when written:
frictionless fit ln MSE 0.043 and T0 error 13.4% (thesis -0.14 / 13.2%); true field
rolled out with RK4 3/8 from the clean X0 -9.19 (spec -9.18) and from the noisy X0 -7.46.
The latter is outside the spec's -9.3..-7.9: it is dominated by one trajectory that goes
over the top (energy above the separatrix 2 omega0^2; the initial radius reaches 2.3), where
the noise on X0 changes the rotation period. Without it the mean gives -8.59 (thesis -8.58);
across seeds 0-7 the value ranges -8.8..-0.45. The released code's own initial conditions
(numpy seeds, rebuilt below) give -8.3 on average over noise draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.systems import fit as F
from dynajax.systems import generation as G
from dynajax.systems import lotka_volterra as LV
from dynajax.systems import pendulum as P

W2_TRUE = (2 * np.pi / 6) ** 2
TRUE = {"omega0_sq": W2_TRUE, "alpha": 0.2}


def t0_error(omega0_sq):
    return abs(float(P.T0_from_omega0_sq(omega0_sq)) - 6.0) / 6.0 * 100


@pytest.fixture(scope="module")
def splits():
    return {
        "train": P.generate("train", cache=False),
        "test": P.generate("test", cache=False),
        "test_clean": P.generate("test", noise_std=0.0, cache=False),
    }


def test_frictionless_fit_matches_the_thesis(splits):
    fam = P.SYSTEM.family("frictionless")
    fit = F.fit_family(fam, splits["train"], init="grid")
    ln_mse = np.log(F.rollout_mse(fam, fit.params, splits["test"]))
    err = t0_error(fit.params["omega0_sq"])
    assert -0.4 <= ln_mse <= 0.2, ln_mse  # thesis -0.14
    assert 12.5 <= err <= 15.0, err  # thesis 13.2%
    assert fit.mse == pytest.approx(F.rollout_mse(fam, fit.params, splits["train"]), rel=1e-10)
    # no better value on a fine scan: the fit is the global least-squares minimum
    scan = [F.rollout_mse(fam, {"omega0_sq": w}, splits["train"]) for w in np.linspace(0.8, 2.0, 25)]
    assert fit.mse <= min(scan) + 1e-12


def test_true_field_floor_with_rk4_38(splits):
    comp = P.SYSTEM.family("complete")
    clean_x0 = np.log(F.rollout_mse(comp, TRUE, splits["test"], y0=splits["test_clean"].states[:, 0]))
    noisy_x0 = np.log(F.rollout_mse(comp, TRUE, splits["test"]))
    no_noise = np.log(F.rollout_mse(comp, TRUE, splits["test_clean"]))
    assert -9.3 <= clean_x0 <= -9.0, clean_x0  # spec -9.18 (noise floor ln 1e-4 = -9.21)
    assert clean_x0 < noisy_x0 <= -7.0, noisy_x0  # measured -7.46; see the module docstring
    assert -13.2 <= no_noise <= -12.3, no_noise  # RK4 3/8 error alone, spec -12.9
    # the classic RK4 tableau gives a different floor: the 3/8 rule matters
    classic = np.log(F.rollout_mse(comp, TRUE, splits["test_clean"], solver="rk4"))
    assert abs(classic - no_noise) > 0.3


def test_complete_fit_recovers_the_parameters(splits):
    comp = P.SYSTEM.family("complete")
    fit = F.fit_family(comp, splits["train"])  # from the code's init (0.2, 0.1)
    assert t0_error(fit.params["omega0_sq"]) < 2.0
    assert abs(fit.params["alpha"] - 0.2) / 0.2 * 100 < 2.0
    assert fit.start == {"omega0_sq": 0.2, "alpha": 0.1} and fit.n_steps > 1
    assert np.log(F.rollout_mse(comp, fit.params, splits["test"])) < -7.0


def released_code_initial_conditions(group, n=25):
    """``DampledPendulum._get_initial_condition`` of the released APHYNITY code."""
    out = []
    for index in range(n):
        rng = np.random.RandomState(index if group == "train" else np.iinfo(np.int32).max - index)
        y0 = rng.rand(2) * 2.0 - 1
        radius = rng.rand() + 1.3
        out.append(y0 / np.sqrt((y0**2).sum()) * radius)
    return np.stack(out)


def test_spec_calibration_with_the_released_codes_initial_conditions():
    # noise-free data from the code's initial conditions: the spec's section 4.3 numbers
    times = G.time_grid(20.0, 0.5)
    data = {g: G.simulate(P.field, released_code_initial_conditions(g), P.PARAMS, times)
            for g in ("train", "test")}
    comp, fam = P.SYSTEM.family("complete"), P.SYSTEM.family("frictionless")
    assert np.log(F.rollout_mse(comp, TRUE, data["test"], times)) == pytest.approx(-12.9, abs=0.1)
    fit = F.fit_family(fam, data["train"], times, init="grid")
    assert t0_error(fit.params["omega0_sq"]) == pytest.approx(13.8, abs=0.2)  # spec 13.8%
    assert np.log(F.rollout_mse(fam, fit.params, data["test"], times)) == pytest.approx(-0.11, abs=0.1)


@pytest.mark.slow
def test_lotka_volterra_four_parameter_fit():
    ds = LV.generate("train", envs=[9], n_per_env=4, cache=False)
    fam = LV.SYSTEM.family("complete")
    fit = F.fit_family(fam, ds, init={"alpha": 0.8, "gamma": 0.8})
    for k, v in LV.ENVIRONMENTS[9].items():
        assert fit.params[k] == pytest.approx(v, rel=2e-3)
    assert fit.mse < 1e-6  # the RK4 (dt = 0.5) error against accurate data, ~3e-7


def test_adam_and_grid_options(splits):
    fam = P.SYSTEM.family("frictionless")
    train = splits["train"]
    grid = np.linspace(0.5, 2.0, 41)
    lbfgs = F.fit_family(fam, train, init="grid", grid={"omega0_sq": grid})
    assert lbfgs.start["omega0_sq"] in grid
    adam = F.fit_family(fam, train.states, train.times, init=lbfgs.start, method="adam",
                        steps=300, lr=1e-2)
    assert adam.n_steps == 300
    assert adam.params["omega0_sq"] == pytest.approx(lbfgs.params["omega0_sq"], rel=1e-3)


def test_rollout_shapes_and_exactness():
    fam = P.SYSTEM.family("complete")
    y0 = jnp.array([[0.5, 0.0], [1.0, -0.5], [0.1, 0.2]], jnp.float32)
    times = np.linspace(0.0, 2.0, 5)
    pred = F.rollout(fam, TRUE, y0, times)
    assert pred.shape == (3, 5, 2) and pred.dtype == jnp.float32
    np.testing.assert_array_equal(pred[:, 0], y0)
    # any field(t, y, params) works, and a linear field's RK4 step is its Taylor polynomial
    decay = lambda t, y, p: -p["k"] * y
    out = F.rollout(decay, {"k": 1.0}, jnp.ones((1, 1)), times)
    h = 0.5
    np.testing.assert_allclose(out[0, :, 0], (1 - h + h**2 / 2 - h**3 / 6 + h**4 / 24) ** np.arange(5), rtol=1e-6)
    with jax.enable_x64(True):
        assert F.rollout_mse(decay, {"k": 1.0}, np.asarray(out, np.float64), times) < 1e-12


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="sgd"), "unknown method 'sgd'; allowed: lbfgs, adam"),
        (dict(lr=0.1), "lr applies to method='adam' only"),
        (dict(init="best"), "init must be a mapping, None or 'grid'"),
        (dict(init={"omega": 1.0}), r"unknown parameter\(s\) \['omega'\] for family 'frictionless'"),
        (dict(grid={"alpha": [0.1]}, init="grid"), r"grid names unknown parameter\(s\) \['alpha'\]"),
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(times=np.array([0.0, 0.5, 1.5])), "uniformly spaced"),
        (dict(times=np.array([0.0, 0.5])), "states have 3 frames but times has 2"),
    ],
)
def test_fit_bad_inputs(kwargs, match):
    fam = P.SYSTEM.family("frictionless")
    states = np.zeros((2, 3, 2))
    times = kwargs.pop("times", np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=match):
        F.fit_family(fam, states, times, **kwargs)


def test_more_bad_inputs():
    states = np.zeros((2, 3, 2))
    with pytest.raises(ValueError, match="at most two parameters"):
        F.fit_family(LV.SYSTEM.family("complete"), states, np.array([0.0, 0.5, 1.0]), init="grid")
    with pytest.raises(ValueError, match="times are required"):
        F.fit_family(P.SYSTEM.family("frictionless"), states)
    with pytest.raises(ValueError, match="family must be a PhysicalFamily"):
        F.fit_family(P.field, states, np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"takes parameters \['omega0_sq'\]; got unknown \['alpha'\]"):
        F.rollout_mse(P.SYSTEM.family("frictionless"), TRUE, states, np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="y0 must have shape"):
        F.rollout_mse(P.field, P.PARAMS, states, np.array([0.0, 0.5, 1.0]), y0=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="horizon=1.2 must be a whole multiple of dt=0.5"):
        G.time_grid(1.2, 0.5)
