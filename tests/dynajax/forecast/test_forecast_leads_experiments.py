"""LEADS experiments end to end at tiny configs passed as arguments: rows, references, checks, figures."""

import dataclasses

import numpy as np
import pytest

from dynajax.experiments import leads_linear, leads_lv, leads_lv_groups, leads_pdes
from dynajax.experiments.registry import get_experiment
from dynajax.experiments.results import STATUSES, status


def _rows(res):
    return {r.method: r for r in res.rows}


def _kinds(res):
    assert status(res.checks) in STATUSES
    return sorted(c.kind for c in res.checks)


@pytest.mark.slow
def test_leads_lv_tiny(tmp_path):
    cfg = dataclasses.replace(leads_lv.QUICK, n_steps=4, gbml_steps=2, adapt_steps=(1, 2), variants=("one_for_all", "leads"),
                              n_val=1, n_test=2, chunk=2)
    res = leads_lv.run(cfg, (0, 1), tmp_path)
    rows = _rows(res)
    assert set(rows) == {"One-For-All", "LEADS", "GBML-like", "Adaptation: Pre-trained-F-Only",
                         "Adaptation: One-Per-Env from scratch", "Adaptation: Pre-trained-F-Plus-Trained-G_e"}
    assert rows["LEADS"].reference == {"train_mse": 5.74e-6, "test_mse": 1.16e-3}
    assert len(rows["LEADS"].values["test_mse"]) == 2
    # the pretrained f alone does not train: the same error at every step count
    f_only = rows["Adaptation: Pre-trained-F-Only"].values
    np.testing.assert_array_equal(f_only["test_mse_step1"], f_only["test_mse_step2"])
    assert _kinds(res) == ["band", "band", "trend"]  # two Table 3.14 bands and the ordering
    assert (tmp_path / "leads_lv_per_env.png").stat().st_size > 5_000


@pytest.mark.slow
def test_leads_linear_tiny(tmp_path):
    cfg = dataclasses.replace(leads_linear.QUICK, n_steps=4, ms=(1, 8), ns=(2,), n_val=1, n_test=2, chunk=2,
                              lams=(1e4,))
    res = leads_linear.run(cfg, (0, 1), tmp_path)
    rows = _rows(res)
    assert rows["LEADS (n=2K)"].reference == {"test_mse_m1": 8.13e-2, "test_mse_m8": 2.10e-2}
    # m = 1 (one environment per group) is one model shared by both rows, as in the thesis
    lead, nomin = rows["LEADS (n=2K)"].values, rows["LEADS no min (n=2K)"].values
    np.testing.assert_array_equal(lead["test_mse_m1"], nomin["test_mse_m1"])
    assert not np.array_equal(lead["test_mse_m8"], nomin["test_mse_m8"])
    assert _kinds(res) == ["band", "trend", "trend"]
    assert "n=2K m=8: 10000" in res.notes  # the lambda picked on validation is recorded


@pytest.mark.slow  # compiling unrolled conv / FNO rollouts
@pytest.mark.parametrize("system", ["gs", "ns"])
def test_leads_pdes_tiny(tmp_path, system):
    if system == "gs":
        cfg = dataclasses.replace(leads_pdes.GS_QUICK, grid=10, n_frames=3)
    else:
        cfg = dataclasses.replace(leads_pdes.NS_QUICK, grid=12, warmup=0.0, n_frames=3, dt=0.01)
    cfg = dataclasses.replace(cfg, n_steps=2, chunk=2, width=4, n_train=1, n_val=1, n_test=1, variants=("leads",))
    res = get_experiment(f"leads-{system}").run(cfg, (0, 1), tmp_path)
    rows = _rows(res)
    assert set(rows) == {"LEADS"} and rows["LEADS"].reference["test_mse"] == leads_pdes.REF[system]["LEADS"][1]
    assert _kinds(res) == ["band"]  # the ordering needs another method
    assert (tmp_path / f"leads_{system}_per_env.png").exists()


@pytest.mark.slow
def test_leads_lv_groups_tiny(tmp_path):
    cfg = dataclasses.replace(leads_lv_groups.QUICK, n_steps=4, ms=(2, 8), methods=("one_for_all",), n_val=1,
                              n_test=2, chunk=2)
    res = leads_lv_groups.run(cfg, (0, 1), tmp_path)
    (row,) = res.rows
    assert row.method == "Groups (M=8): One-For-All" and row.reference == {"test_mse_m2": 0.22, "test_mse_m8": 0.47}
    assert len(row.values["test_mse_m8"]) == 2
    assert {c.name for c in res.checks if c.kind == "trend"} == {"Table 3.15: One-For-All error rises as m grows (m >= 2)"}
    assert _kinds(res) == ["band", "trend"]
    assert "m=2: floor" in res.notes and "excess" in res.notes
    assert (tmp_path / "leads_lv_groups.png").stat().st_size > 5_000


def test_full_configs_are_the_thesis_protocol():
    assert leads_lv.FULL.n_steps == 120000 and leads_lv.FULL.adapt_steps == (50, 2500, 10000)
    assert (leads_lv.FULL.lam, leads_lv.FULL.alpha, leads_lv.FULL.n_test) == (5e3, 1e-3, 32)
    gs, ns = leads_pdes.GS_FULL, leads_pdes.NS_FULL
    assert (gs.grid, gs.n_frames, gs.width, gs.dt, gs.lam, gs.alpha, gs.n_train) == (32, 10, 64, 40.0, 1e2, 1e-2, 1)
    assert (ns.grid, ns.n_frames, ns.width, ns.solver, ns.lam, ns.alpha, ns.n_train) == (32, 10, 10, "euler", 1e5, 1e-5, 8)
    assert get_experiment("leads-gs").config("gpu") == gs and get_experiment("leads-ns").config("gpu") == ns
    assert leads_lv_groups.FULL.ms == (1, 2, 4, 8) and leads_linear.FULL.ns == (2, 4)


@pytest.mark.parametrize("module, change, match", [
    (leads_linear, {"ms": (3,)}, "divisors"),
    (leads_linear, {"lams": ()}, "lams"),
    (leads_linear, {"dt": 6.0}, "horizon"),
    (leads_lv, {"variants": ("nope",)}, "variants"),
    (leads_lv, {"variants": ("leads",)}, "gbml"),
    (leads_lv, {"gbml_steps": -1}, "steps"),
    (leads_lv, {"adapt_steps": (10, 5)}, "adapt_steps"),
    (leads_lv_groups, {"ms": (8, 4)}, "divisors"),
    (leads_lv_groups, {"methods": ("one_per_env",)}, "methods"),
    (leads_pdes, {"grid": 9}, "grid"),
    (leads_pdes, {"solver": "rk5"}, "solver"),
])
def test_configs_validate(module, change, match):
    base = getattr(module, "QUICK", None) or module.GS_QUICK
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(base, **change)
