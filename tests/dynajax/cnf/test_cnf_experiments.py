"""Tiny end-to-end runs of the cnf experiments (otflow-trace, otflow-toy, mfg-gaussians, mfg-crowd, gpflow-toy)."""

import numpy as np
import pytest

from dynajax.experiments import reproduce
from dynajax.experiments.results import CHECK_KINDS, STATUSES


def _record(m, kinds):
    assert [c["kind"] for c in m["checks"]] == kinds
    assert all(c["kind"] in CHECK_KINDS for c in m["checks"])
    assert m["status"] in STATUSES


@pytest.mark.slow
def test_otflow_trace_tiny(tmp_path):
    m = reproduce("otflow-trace", seeds=1, out=tmp_path, overrides=["dims=(2, 40)", "n=16", "width=8", "probes=2",
                                                                      "repeats=1"])
    rows = {r["method"]: r["metrics"] for r in m["rows"]}
    assert rows["d=40 exact"]["rel_err"]["mean"] < 1e-5  # 40 > width 8: the Gram-matrix path
    assert rows["d=2 exact"]["rel_err"]["mean"] < 1e-5
    assert rows["d=40 hutchinson-1"]["rel_err"]["mean"] > 1e-3
    _record(m, ["trend"] * 4)


@pytest.mark.slow
def test_otflow_toy_tiny(tmp_path):
    m = reproduce("otflow-toy", seeds=1, out=tmp_path, overrides=[
        "densities=('moons',)", "n_steps=5", "batch=64", "width=8", "n_test=200", "n_ot=100", "n_mmd=100", "nt=2"])
    met = m["rows"][0]["metrics"]
    assert all(np.isfinite(met[k]["mean"]) for k in ("test_nll", "mmd2", "2L", "W2^2_pot", "straightness", "step_ms"))
    assert met["straightness"]["mean"] >= 1.0 - 1e-4  # Cauchy-Schwarz
    _record(m, ["band", "trend"])


@pytest.mark.slow
def test_mfg_gaussians_tiny(tmp_path):
    m = reproduce("mfg-gaussians", seeds=1, out=tmp_path, overrides=[
        "dims=(2, 3)", "n_steps=5", "batch=32", "width=8", "nt=2", "nt_eval=2", "n_eval=100"])
    rows = m["rows"]
    assert rows[0]["reference"]["2L"] == pytest.approx(1.0**2 + 0.5**2 + 0.3**2 + 0.3**2, rel=1e-5)
    _record(m, ["band", "band", "trend", "trend"])


@pytest.mark.slow
def test_dynamic_ot_between_gaussians_reaches_the_closed_form():
    """The potential flow's transport cost 2L is within 2% of the closed-form W2^2, and its map
    within 1% (of W2^2, in mean square) of the linear Monge map, in d = 2 at the quick budget
    (seed 5, not one the schedule was chosen on). In d >= 10 the quick budget reaches the band
    for some seeds only: the full budget is the claim there (the full record)."""
    d = 2
    from dynajax.experiments.config import seed_keys
    from dynajax.experiments.mfg_gaussians import QUICK, solve

    r = solve(QUICK, d, seed_keys((5,), 22)[0])
    assert r["2L"] == pytest.approx(r["W2^2"], rel=0.02)
    assert r["map_err_rel"] < 0.01


@pytest.mark.slow
def test_gpflow_toy_tiny(tmp_path):
    m = reproduce("gpflow-toy", seeds=1, out=tmp_path, overrides=[
        "targets=('gaussian', 'moons')", "nf_steps=5", "gp_steps=3", "nf_layers=2", "nf_hidden=8", "gp_hidden=(8,)",
        "nt=2", "batch=32", "n_test=100", "n_ot=50"])
    met = m["rows"][0]["metrics"]
    assert met["nll_change"]["mean"] < 1e-2  # s preserves N(0, I): only RK4's error is left
    assert m["rows"][0]["reference"]["cost_T_o_s"] == pytest.approx(met["W2^2"]["mean"])
    _record(m, ["trend", "trend", "band", "trend", "trend"])


@pytest.mark.slow
def test_mfg_crowd_tiny(tmp_path):
    m = reproduce("mfg-crowd", seeds=1, out=tmp_path, overrides=[
        "dims=(2, 3)", "n_steps=3", "batch=32", "width=8", "nt=2", "n_eval=50"])
    rows = {r["method"]: r["metrics"] for r in m["rows"]}
    assert rows["MFG potential, d=2"]["path_dev_rel"]["mean"] == 0.0  # the reference of the comparison
    assert all(np.isfinite(rows["MFG potential, d=3"][k]["mean"]) for k in ("objective", "hjb", "path_dev_rel"))
    _record(m, ["trend", "trend"])
