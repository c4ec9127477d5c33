"""The registered APHYNITY experiments run end to end at a tiny monkeypatched size."""

import json
import types

import pytest

from dynajax.experiments import aphynity_pdes, aphynity_pendulum, reproduce
from dynajax.systems import fit


def _no_fit(monkeypatch):
    # Least-squares fits are tested in tests/dynajax/systems/test_fit.py; compiling them
    # (grid search, L-BFGS) dominates these plumbing tests, so they return the families' init.
    monkeypatch.setattr(fit, "fit_family", lambda family, data, **kw: types.SimpleNamespace(params=dict(family.init)))


@pytest.mark.slow
def test_aphynity_pendulum_end_to_end(tmp_path, monkeypatch):
    tiny = {"n_traj": 3, "hidden": 8, "n_steps": 4, "chunk": 2, "lr_grid": (1e-3, 1e-2), "physical_ratios": (10.0, 100.0),
            "val_metric": "geomean_mse", "schedule": "cosine", "ablations": (), "true_ode": False, "complete": False,
            "hamiltonian": False}
    monkeypatch.setitem(aphynity_pendulum.SIZES, "quick", tiny)
    _no_fit(monkeypatch)
    m = reproduce("aphynity-pendulum", scale="quick", seeds=2, out=tmp_path)
    rows = {r["method"]: r for r in m["rows"]}
    aph = rows["APHYNITY Param ODE (w0)"]
    assert aph["reference"] == {"log_mse": -7.86, "t0_error_pct": 4.0, "fa_norm_sq": 132.0}
    assert len(aph["metrics"]["log_mse"]["values"]) == 2
    assert {"Neural ODE", "Param ODE (w0)", "Param ODE (w0, alpha)", "True ODE"} <= set(rows)
    # least-squares rows are deterministic: the same for every seed
    po = rows["Param ODE (w0)"]["metrics"]["log_mse"]["values"]
    assert po[0] == po[1]
    # the reported rate is one of the grid's, the same for every seed (selected on validation)
    assert aph["metrics"]["lr"]["values"][0] in (1e-3, 1e-2) and aph["metrics"]["lr"]["std"] == 0
    assert aph["metrics"]["physical_ratio"]["values"][0] in (10.0, 100.0)
    assert "val_log_mse" in aph["metrics"] and "val_log_geomean_mse" in aph["metrics"]
    names = {c["name"] for c in m["checks"]}
    assert "APHYNITY (w0) beats Param ODE (w0) on log MSE" in names
    out = tmp_path / "aphynity-pendulum"
    assert json.loads((out / "metrics.json").read_text())["experiment"] == "aphynity-pendulum"
    assert (out / "aphynity_pendulum.png").stat().st_size > 10_000


@pytest.mark.slow
def test_aphynity_pde_experiments_end_to_end(tmp_path, monkeypatch):
    tiny = {"size": 8, "n_train": 2, "n_val": 2, "n_test": 2, "batch": 2, "n_steps": 2, "chunk": 2,
            "lr_physical": 1e-2, "neural_ode": False, "unroll": 1}
    _no_fit(monkeypatch)
    for system, name, metric in (("rd", "aphynity-rd", "log10_mse"), ("wave", "aphynity-wave", "log_mse")):
        # the wave runs the quick configuration's zero-gated F_a started from the fit
        extra = ({"hidden": 4, "gate_scale": 10.0, "init_from_fit": True, "norm": None, "lambda0": 1e6}
                 if system == "wave" else {})
        monkeypatch.setitem(aphynity_pdes.SIZES[system], "quick", {**tiny, **extra})
        m = reproduce(name, scale="quick", seeds=1, out=tmp_path)
        rows = {r["method"]: r for r in m["rows"]}
        aph = next(r for k, r in rows.items() if k.startswith("APHYNITY"))
        assert metric in aph["metrics"] and "param_error_pct" in aph["metrics"]
        # model selection is on validation: both rows report their validation error, and the
        # validation check compares exactly those numbers
        param = next(r for k, r in rows.items() if k.startswith("Param PDE"))
        val = f"val_{metric}"
        checks = {c["name"]: c["passed"] for c in m["checks"]}
        on_val = next(v for k, v in checks.items() if k.endswith("on validation"))
        assert on_val == (aph["metrics"][val]["mean"] < param["metrics"][val]["mean"])
        assert rows["True PDE"]["metrics"][metric]["mean"] is not None
        assert (tmp_path / name / f"aphynity_{system}.png").stat().st_size > 5_000


def test_gated_convnet_starts_at_the_physical_rollout(rng):
    # the quick wave's zero-gated F_a: at initialisation APHYNITY started from given physical
    # parameters rolls out exactly as the physics-only model, and the gate gets a gradient
    import jax
    import jax.numpy as jnp
    import numpy as np

    from dynajax.forecast.aphynity import Aphynity, scaled
    from dynajax.systems import wave

    fam = wave.FAMILIES["undamped"]
    y0 = jax.random.normal(rng, (2, 2, 8, 8), jnp.float32)
    times = np.arange(4) * 1e-3
    net = aphynity_pdes._convnet(4, gate_scale=100.0, norm=None)
    model = Aphynity(fam, net, physics_init={"c": 250.0}, reparam={"c": scaled(100.0)}, unroll=1)
    physics = Aphynity(fam, None, physics_init={"c": 250.0}, unroll=1)
    params = model.init(jax.random.key(0), y0)
    assert np.allclose(model.physical_params(params)["c"], 250.0)
    np.testing.assert_allclose(model.rollout(params, y0, times),
                               physics.rollout(physics.init(jax.random.key(0), y0), y0, times), rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda p: jnp.sum(model.augmentation(p, y0) * y0))(params)
    assert float(jnp.abs(grad["network"]["params"]["gate"])) > 0
