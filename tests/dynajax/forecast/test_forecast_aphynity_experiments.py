"""The registered APHYNITY experiments: configs, tiny end-to-end runs, seeds, the gated F_a."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.experiments import aphynity_pdes, aphynity_pendulum, reproduce
from dynajax.experiments.results import STATUSES, status
from dynajax.forecast.aphynity import Aphynity, scaled
from dynajax.systems import wave


def _rows(res):
    return {r.method: r for r in res.rows}


def test_configs_validate_and_the_demo_fits_its_budget():
    pend, rd, wv = aphynity_pendulum.QUICK, aphynity_pdes.RD_QUICK, aphynity_pdes.WAVE_QUICK
    for cfg, change, match in (
        (pend, {"rows": ("pinn",)}, "rows from"), (pend, {"chunk": 10**6}, "chunk"),
        (pend, {"lr_grid": (0.0,)}, "positive"), (pend, {"schedule": "step"}, "schedule"),
        (rd, {"n_test": 6}, "divide"), (rd, {"batch": 100}, "batch <= n_train"), (wv, {"norm": "layer"}, "norm"),
        (wv, {"gate_scale": -1.0}, "gate_scale"),
    ):
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(cfg, **change)
    demo = aphynity_pendulum.DEMO  # one trained row at one rate, at most 2 seeds, a few hundred steps
    assert demo.rows == () and len(demo.lr_grid) * len(demo.physical_ratios) == 1
    assert demo.seeds <= 2 and demo.n_steps <= 500
    # full is the thesis's network and grids
    assert aphynity_pendulum.FULL.hidden == 200 and set(aphynity_pendulum.FULL.rows) == set(aphynity_pendulum.ROWS)
    assert (aphynity_pdes.RD_FULL.size, aphynity_pdes.WAVE_FULL.size, aphynity_pdes.RD_FULL.hidden) == (32, 64, 16)


@pytest.mark.slow
def test_aphynity_pendulum_tiny(tmp_path):
    cfg = dataclasses.replace(aphynity_pendulum.QUICK, n_traj=3, hidden=8, n_steps=4, chunk=2, rows=("neural_ode",))
    res = aphynity_pendulum.run(cfg, (0, 1), tmp_path)
    rows = _rows(res)
    assert set(rows) == {"Neural ODE", "Param ODE (w0)", "APHYNITY Param ODE (w0)", "True ODE"}
    aph = rows["APHYNITY Param ODE (w0)"]
    assert aph.reference == {"log_mse": -7.86, "t0_error_pct": 4.0, "fa_norm_sq": 132.0}
    assert all(len(v) == 2 for v in aph.values.values())
    # least-squares rows are deterministic: the same for every seed
    assert len(set(rows["Param ODE (w0)"].values["log_mse"])) == 1
    # the reported rates are one grid point, the same for every seed (selected on validation)
    assert len(set(aph.values["lr"])) == 1 and aph.values["lr"][0] in cfg.lr_grid
    assert aph.values["physical_ratio"][0] in cfg.physical_ratios
    assert "val_log_mse" in aph.values and "val_log_geomean_mse" in aph.values
    bands = {c.reference for c in res.checks if c.kind == "band"}
    assert {-7.86, 4.0, -0.14, 13.2, -8.58} == bands and status(res.checks) in STATUSES
    beats = next(c for c in res.checks if c.name == "APHYNITY (w0) beats Param ODE (w0)")
    assert beats.passed == (np.mean(aph.values["log_mse"]) < rows["Param ODE (w0)"].values["log_mse"][0])
    assert (tmp_path / "aphynity_pendulum.png").stat().st_size > 10_000


@pytest.mark.slow
def test_aphynity_pendulum_seed_keeps_its_numbers_in_any_run(tmp_path):
    cfg = dataclasses.replace(aphynity_pendulum.DEMO, n_traj=3, hidden=8, n_steps=4, chunk=2)
    both = _rows(aphynity_pendulum.run(cfg, (3, 5), tmp_path))["APHYNITY Param ODE (w0)"].values
    alone = _rows(aphynity_pendulum.run(cfg, (5,), tmp_path))["APHYNITY Param ODE (w0)"].values
    assert both["log_mse"][0] != both["log_mse"][1]
    np.testing.assert_allclose(alone["log_mse"][0], both["log_mse"][1], rtol=1e-4)


@pytest.mark.slow
def test_aphynity_pde_experiments_tiny(tmp_path):
    tiny = ["size=8", "n_train=2", "n_val=2", "n_test=2", "batch=2", "n_steps=2", "chunk=2", "hidden=4"]
    for name, metric in (("aphynity-rd", "log10_mse"), ("aphynity-wave", "log_mse")):
        m = reproduce(name, scale="quick", seeds=1, overrides=tiny, out=tmp_path)
        rows = {r["method"]: r for r in m["rows"]}
        aph = next(r for k, r in rows.items() if k.startswith("APHYNITY"))
        param = next(r for k, r in rows.items() if k.startswith("Param PDE"))
        assert metric in aph["metrics"] and "param_error_pct" in aph["metrics"]
        # model selection is on validation: the validation check compares exactly those numbers
        val = f"val_{metric}"
        on_val = next(c["passed"] for c in m["checks"] if c["name"].endswith("validation"))
        assert on_val == (aph["metrics"][val]["mean"] < param["metrics"][val]["mean"])
        assert rows["True PDE"]["metrics"][metric]["mean"] is not None
        assert aph["reference"][metric] == (-5.10 if name == "aphynity-rd" else -4.64)
        assert {"band", "trend"} == {c["kind"] for c in m["checks"]} and m["status"] in STATUSES
        run = json.loads((tmp_path / name / "run.json").read_text())
        assert run["config"]["size"] == 8
        assert (tmp_path / name / f"aphynity_{name.split('-')[1]}.png").stat().st_size > 5_000


@pytest.mark.slow
def test_gated_convnet_starts_at_the_physical_rollout(rng):
    # the quick wave's zero-gated F_a: at initialisation APHYNITY started from given physical
    # parameters rolls out exactly as the physics-only model, and the gate gets a gradient
    fam = wave.FAMILIES["undamped"]
    y0 = jax.random.normal(rng, (2, 2, 8, 8), jnp.float32)
    times = np.arange(4) * 1e-3
    net = aphynity_pdes.convnet(dataclasses.replace(aphynity_pdes.WAVE_QUICK, hidden=4))
    model = Aphynity(fam, net, physics_init={"c": 250.0}, reparam={"c": scaled(100.0)}, unroll=1)
    physics = Aphynity(fam, None, physics_init={"c": 250.0}, unroll=1)
    params = model.init(jax.random.key(0), y0)
    assert np.allclose(model.physical_params(params)["c"], 250.0)
    np.testing.assert_allclose(model.rollout(params, y0, times),
                               physics.rollout(physics.init(jax.random.key(0), y0), y0, times), rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda p: jnp.sum(model.augmentation(p, y0) * y0))(params)
    assert float(jnp.abs(grad["network"]["params"]["gate"])) > 0
