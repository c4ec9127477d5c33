"""The four least-action experiments end to end at a tiny size (configs, no monkeypatching)."""

import dataclasses

import numpy as np
import pytest

from dynajax.experiments import (
    lap_circles,
    lap_digits,
    lap_udt2d,
    reproduce,
    status,
    trgl_digits,
)
from dynajax.experiments.results import STATUSES


def _rows(m):
    return {r["method"]: r["metrics"] for r in m["rows"]}


def _kinds(m):
    assert m["status"] in STATUSES
    return [c["kind"] for c in m["checks"]]


@pytest.mark.slow
def test_lap_udt2d_tiny(tmp_path):
    m = reproduce("lap-udt2d", seeds=1, out=tmp_path,
                  overrides=["steps=10", "batch=32", "n_test=64", "gains=(0.01, 1.0)", "problems=('disks',)"])
    rows = _rows(m)
    assert len(rows) == 2 * 2
    # three trend checks and one band per gain (kinetic energy vs the analytic W2^2)
    assert sorted(_kinds(m)) == ["band"] * 2 + ["trend"] * 3
    for metrics in rows.values():
        # K dt = 1: kinetic energy >= E||T(x) - x||^2 (Cauchy-Schwarz); cost >= W2^2 of the map
        assert metrics["kinetic_energy"]["mean"] >= metrics["transport_cost"]["mean"] * (1 - 1e-5)
        assert metrics["optimality_ratio"]["mean"] >= 1 - 1e-5
    assert rows["disks MMD only gain=0.01"]["w2_squared"]["mean"] == 9.0
    assert all(c["reference"] == 1.0 for c in m["checks"] if c["kind"] == "band")
    assert (tmp_path / "lap-udt2d" / "trajectories_disks.png").stat().st_size > 5_000


@pytest.mark.slow
def test_lap_circles_tiny(tmp_path):
    cfg = dataclasses.replace(lap_circles.DEMO, n_train=20, n_val=20, n_test=40, epochs=2, eval_every=2)
    res = lap_circles.run(cfg, (0, 1), tmp_path)
    rows = {r.method: r.values for r in res.rows}
    assert set(rows) == {"N(0,5) init ResNet", "N(0,5) init LAP-ResNet"}
    for metrics in rows.values():
        acc = np.array(metrics["test_acc"])
        assert np.all((acc >= 0) & (acc <= 100))
        assert np.all(np.array(metrics["max_test_acc"]) >= acc)
    # paired seeds: the penalised arm moves the test points less
    assert np.mean(rows["N(0,5) init LAP-ResNet"]["test_transport"]) < np.mean(rows["N(0,5) init ResNet"]["test_transport"])
    bands = {c.reference for c in res.checks if c.kind == "band"}
    assert bands == {98.0, 99.7} and {c.kind for c in res.checks} == {"band", "trend"}
    assert status(res.checks) in STATUSES
    assert (tmp_path / "circles_trajectories.png").exists()


def test_configs_validate():
    with pytest.raises(ValueError, match="eval_every"):
        dataclasses.replace(lap_circles.QUICK, eval_every=10**6)
    with pytest.raises(ValueError, match="penalty"):
        dataclasses.replace(lap_circles.QUICK, penalty="max")
    with pytest.raises(ValueError, match="arms"):
        dataclasses.replace(lap_digits.QUICK, arms=("ResNet",))
    with pytest.raises(ValueError, match="pool"):
        dataclasses.replace(lap_digits.QUICK, sizes=(5000,))
    with pytest.raises(ValueError, match="gains"):
        dataclasses.replace(lap_udt2d.QUICK, gains=(1.0,))
    with pytest.raises(ValueError, match="problems"):
        dataclasses.replace(lap_udt2d.QUICK, problems=("moons",))
    with pytest.raises(ValueError, match="taus"):
        dataclasses.replace(trgl_digits.QUICK, taus=(0.0,))
    # the demo fits its budget: two settings, no sensitivity row, a few hundred steps
    demo = lap_circles.DEMO
    assert not demo.kaiming_baseline and not demo.sensitivity and demo.steps <= 200


@pytest.mark.slow
def test_lap_digits_tiny(tmp_path):
    m = reproduce("lap-digits", seeds=2, out=tmp_path,
                  overrides=["steps=10", "eval_every=5", "sizes=(50, 100)", "e3_gains=(0.01, 1.0)",
                             "e3_n=50", "e3_seeds=2", "e3_inits=('normal',)", "arms=('ResNet', 'LAP-ResNet')"])
    rows = _rows(m)
    van, lap = rows["gain=1 n=50 ResNet"], rows["gain=1 n=50 LAP-ResNet"]
    assert van["ci95_low"]["mean"] <= van["test_acc"]["mean"] <= van["ci95_high"]["mean"]
    assert lap["test_transport"]["mean"] < van["test_transport"]["mean"]
    ref = {r["method"]: r["reference"] for r in m["rows"]}
    assert ref["gain=0.01 n=50 ResNet"] == {"max_test_acc": None}
    assert ref["gain=0.01 n=100 LAP-ResNet"] == {"max_test_acc": 70.0}
    assert ref["gain=1 n=100 ResNet"] == {"max_test_acc": None}
    # Table 4.1 bands only where the table has n (100 here), for both arms
    bands = [c for c in m["checks"] if c["kind"] == "band"]
    assert sorted(c["reference"] for c in bands) == [56.4, 70.0]
    assert _kinds(m).count("trend") == 1 + 4 * 2
    assert (tmp_path / "lap-digits" / "transport_accuracy.png").exists()


@pytest.mark.slow
def test_trgl_digits_tiny(tmp_path):
    cfg = dataclasses.replace(trgl_digits.QUICK, n_train=50, stage_steps=2, parallel_steps=4, taus=(1.0,))
    m = reproduce("trgl-digits", seeds=2, out=tmp_path,
                  overrides=["n_train=50", "stage_steps=2", "parallel_steps=4", "taus=(1.0,)"])
    rows = _rows(m)
    assert len(rows) == 4 and _kinds(m) == ["trend"] * 2
    for metrics in rows.values():
        accs = [metrics[f"acc_block{k}"]["mean"] for k in range(cfg.n_modules + 1)]
        assert all(0 <= a <= 100 for a in accs)
        assert metrics["acc_last"]["mean"] == accs[-1]
    # the compiled program is cached per (config, mode, seeds): a direct run reuses it
    again = trgl_digits.run_arm(cfg, "parallel", 1.0, (0, 1))
    np.testing.assert_allclose(again[1, :, -1], rows["parallel TRGL tau=1"]["acc_last"]["values"])
    assert (tmp_path / "trgl-digits" / "trgl_per_block.png").exists()
