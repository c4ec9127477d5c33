"""`systems-calibration`: the training-free Table 3.4 rows against the thesis' values."""

import dataclasses

import pytest

from dynajax.experiments import systems_calibration


def test_config_rejects_empty_datasets():
    with pytest.raises(ValueError, match="rd_train"):
        dataclasses.replace(systems_calibration.QUICK, rd_train=0)


@pytest.mark.slow
def test_systems_calibration_rows_land_on_the_thesis(tmp_path):
    cfg = dataclasses.replace(systems_calibration.DEMO, rd_train=4, rd_test=4, wave_test=2)
    res = systems_calibration.run(cfg, (0,), tmp_path)
    checks = {c.name: c for c in res.checks}
    assert sum(c.kind == "band" for c in res.checks) == 8
    # the rows that do not hinge on the pendulum's initial conditions land within their bands
    for row, metric in (("Pendulum Param ODE (w0) least squares", "log_mse"),
                        ("Pendulum Param ODE (w0) least squares", "t0_error_pct"),
                        ("Pendulum Param ODE (w0, alpha) least squares", "t0_error_pct"), ("RD True PDE", "log10_mse"),
                        ("RD Param PDE (a, b) least squares", "log10_mse"),
                        ("Wave True PDE (3-point model Laplacian)", "log_mse")):
        check = checks[f"{row}: {metric} (Table 3.4)"]
        assert check.kind == "band" and check.passed, check
    assert all(c.passed for c in res.checks if c.kind == "trend")  # noise floor, complete >> frictionless
    rows = {r.method: r for r in res.rows}
    assert rows["Pendulum Param ODE (w0) least squares"].reference == {"log_mse": -0.14, "t0_error_pct": 13.2}
    assert (tmp_path / "pendulum_fit.png").stat().st_size > 10_000
