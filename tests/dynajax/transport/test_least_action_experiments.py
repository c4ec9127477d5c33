"""The four least-action experiments end to end at a tiny monkeypatched size."""

import numpy as np
import pytest

from dynajax.experiments import (
    lap_circles,
    lap_digits,
    lap_udt2d,
    reproduce,
    trgl_digits,
)


def _rows(m):
    return {r["method"]: r["metrics"] for r in m["rows"]}


@pytest.mark.slow
def test_lap_udt2d_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(lap_udt2d.SIZES, "quick",
                        {"steps": 10, "batch": 32, "n_test": 64, "gains": (0.01, 1.0),
                         "problems": ("disks",)})
    m = reproduce("lap-udt2d", scale="quick", seeds=1, out=tmp_path)
    rows = _rows(m)
    assert len(rows) == 2 * 2 and len(m["checks"]) == 4
    for metrics in rows.values():
        # K dt = 1: kinetic energy >= E||T(x) - x||^2 (Cauchy-Schwarz); cost >= W2^2 of the map
        assert metrics["kinetic_energy"]["mean"] >= metrics["transport_cost"]["mean"] * (1 - 1e-5)
        assert metrics["optimality_ratio"]["mean"] >= 1 - 1e-5
    assert rows["disks MMD only gain=0.01"]["w2_squared"]["mean"] == 9.0
    assert (tmp_path / "lap-udt2d" / "trajectories_disks.png").stat().st_size > 5_000


@pytest.mark.slow
def test_lap_circles_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(lap_circles.SIZES, "quick",
                        {"n_train": 20, "n_val": 20, "n_test": 40, "epochs": 2, "eval_every": 2,
                         "sensitivity": False})
    monkeypatch.setattr(lap_circles, "SETTINGS", lap_circles.SETTINGS[1:])
    m = reproduce("lap-circles", scale="quick", seeds=2, out=tmp_path)
    rows = _rows(m)
    assert set(rows) == {"N(0,5) init ResNet", "N(0,5) init LAP-ResNet"}
    for metrics in rows.values():
        acc = np.array(metrics["test_acc"]["values"])
        assert np.all((acc >= 0) & (acc <= 100))
        assert np.all(np.array(metrics["max_test_acc"]["values"]) >= acc)
    # paired seeds: the penalised arm moves the test points less
    assert rows["N(0,5) init LAP-ResNet"]["test_transport"]["mean"] < rows["N(0,5) init ResNet"]["test_transport"]["mean"]
    assert (tmp_path / "lap-circles" / "circles_trajectories.png").exists()


@pytest.mark.slow
def test_lap_digits_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(lap_digits.SIZES, "quick",
                        {"steps": 10, "eval_every": 5, "sizes": (50,), "e3_gains": (0.01, 1.0),
                         "e3_n": 50, "e3_seeds": 2, "e3_inits": ("normal",)})
    monkeypatch.setattr(lap_digits, "ARMS", ("ResNet", "LAP-ResNet"))
    m = reproduce("lap-digits", scale="quick", seeds=2, out=tmp_path)
    rows = _rows(m)
    van, lap = rows["gain=1 n=50 ResNet"], rows["gain=1 n=50 LAP-ResNet"]
    assert van["ci95_low"]["mean"] <= van["test_acc"]["mean"] <= van["ci95_high"]["mean"]
    assert lap["test_transport"]["mean"] < van["test_transport"]["mean"]
    ref = {r["method"]: r["reference"] for r in m["rows"]}
    assert ref["gain=0.01 n=50 ResNet"] == {"max_test_acc": None}
    assert (tmp_path / "lap-digits" / "transport_accuracy.png").exists()


@pytest.mark.slow
def test_trgl_digits_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(trgl_digits.SIZES, "quick",
                        {"n_train": 50, "stage_steps": 2, "parallel_steps": 4, "taus": (1.0,)})
    m = reproduce("trgl-digits", scale="quick", seeds=2, out=tmp_path)
    rows = _rows(m)
    assert len(rows) == 4 and len(m["checks"]) == 2
    for metrics in rows.values():
        accs = [metrics[f"acc_block{k}"]["mean"] for k in range(trgl_digits.N_MODULES + 1)]
        assert all(0 <= a <= 100 for a in accs)
        assert metrics["acc_last"]["mean"] == accs[-1]
    assert (tmp_path / "trgl-digits" / "trgl_per_block.png").exists()
