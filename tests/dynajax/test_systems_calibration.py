"""`systems-calibration` end to end: the training-free Table 3.4 rows land on the thesis."""

from dynajax.experiments import reproduce, systems_calibration


def test_systems_calibration_checks_pass(tmp_path, monkeypatch):
    monkeypatch.setitem(systems_calibration.SIZES, "quick", {"rd_train": 8, "rd_test": 8, "wave_test": 4})
    m = reproduce("systems-calibration", scale="quick", seeds=1, out=tmp_path)
    failed = [c for c in m["checks"] if not c["passed"]]
    assert not failed, failed
    rows = {r["method"]: r for r in m["rows"]}
    assert rows["Pendulum Param ODE (w0) least squares"]["reference"] == {"log_mse": -0.14, "t0_error_pct": 13.2}
    assert (tmp_path / "systems-calibration" / "pendulum_fit.png").stat().st_size > 10_000
