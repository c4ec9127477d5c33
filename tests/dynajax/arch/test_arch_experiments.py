"""The four architecture experiments end to end at a tiny config."""

import dataclasses
import json

import jax
import pytest

from dynajax.experiments import deep_ritz, node_gradients, pinn_superres, reproduce, stable_resnets
from dynajax.experiments.results import CHECK_KINDS, STATUSES, status

# Each experiment compiles 4-13 programs even at this size (diffrax's backsolve, four
# networks, Laplacian training loops), so these end-to-end smoke runs of what
# `reproduce --scale quick` covers carry the slow marker.


@pytest.fixture(autouse=True)
def _fast_random():
    with jax.threefry_partitionable(False):
        yield


def _rows(res):
    return {r.method: {k: sum(v) / len(v) for k, v in r.values.items()} for r in res.rows}


def _check_kinds(res):
    assert res.checks and all(c.kind in CHECK_KINDS for c in res.checks)
    assert any(c.kind == "band" for c in res.checks)
    assert all(c.reference is not None for c in res.checks if c.kind == "band")
    assert status(res.checks) in STATUSES


@pytest.mark.slow
def test_node_gradients_tiny(tmp_path):
    # through reproduce: --set overrides, seed offset and the run record
    m = reproduce("node-gradients", seeds=1, seed_offset=3, out=tmp_path, overrides=[
        "n_train=32", "n_val=16", "n_test=32", "steps_list=(2, 32)", "fine_steps=32", "train_n_steps=2",
        "train_steps=4", "repeats=1", "width=4"])
    rows = {r["method"]: {k: v["mean"] for k, v in r["metrics"].items()} for r in m["rows"]}
    # the discretise route is the exact gradient of the discrete network even at this size
    assert rows["discretize N=32"]["grad_err_fd"] < 1e-6
    assert rows["backsolve N=2"]["grad_err_fd"] > rows["backsolve N=32"]["grad_err_fd"]
    assert {c["kind"] for c in m["checks"]} == set(CHECK_KINDS) and m["status"] in STATUSES
    assert next(c for c in m["checks"] if c["name"].startswith("discretise-then-optimise"))["passed"]
    out = tmp_path / "node-gradients"
    assert json.loads((out / "metrics.json").read_text())["experiment"] == "node-gradients"
    assert m["seed_values"] == [3]
    assert json.loads((out / "run.json").read_text())["config"]["steps_list"] == [2, 32]
    assert (out / "node_gradients.png").exists()


@pytest.mark.slow
def test_stable_resnets_tiny(tmp_path):
    cfg = dataclasses.replace(stable_resnets.QUICK, n_train=32, n_val=16, n_test=32, depths=(2, 8), train_depth=2,
                              width=4, h=0.5, train_steps=4)
    res = stable_resnets.run(cfg, (0,), tmp_path)
    rows = _rows(res)
    assert set(rows) == set(stable_resnets.NETWORKS)
    assert rows["Hamiltonian reversible"]["grad_rel_diff_vs_autodiff"] < 1e-4
    # the antisymmetric block at gamma = 0.01 neither blows up nor collapses perturbations
    assert 0.2 < rows["Antisymmetric"]["growth_init_L8"] < 3
    _check_kinds(res)
    assert (tmp_path / "stable_resnets.png").exists()


@pytest.mark.slow
def test_deep_ritz_tiny(tmp_path):
    cfg = dataclasses.replace(deep_ritz.QUICK, dims=(2,), n_points=(32,), train_steps=3, ritz_steps=3, width=8, n_test=64,
                              lr=1e-3, beta=10.0)
    res = deep_ritz.run(cfg, (0,), tmp_path)
    rows = _rows(res)
    assert set(rows) == {"Deep Ritz d=2", "PINN d=2"}
    assert all(0 < r["rel_l2_n32"] < 10 for r in rows.values())
    _check_kinds(res)
    assert {c.reference for c in res.checks if c.kind == "band"} == {0.0}


@pytest.mark.slow
def test_pinn_superres_tiny(tmp_path):
    cfg = dataclasses.replace(pinn_superres.QUICK, n=16, T=0.01, frac=0.25, train_steps=4, n_col=16, hidden=8,
                              n_filters=2, input_scale=4.0, lr=1e-3)
    res = pinn_superres.run(cfg, (0,), tmp_path)
    rows = _rows(res)
    assert set(rows) == set(pinn_superres.METHODS)
    # interpolants reproduce the data somewhere: errors are finite and below a constant predictor's 1
    assert rows["GP (RBF kernel)"]["rel_l2"] < 1.0
    assert rows["Cubic (Clough-Tocher)"]["rel_l2"] < 1.0
    assert res.checks and all(c.kind in CHECK_KINDS for c in res.checks)
    assert status(res.checks) in STATUSES


@pytest.mark.parametrize("mod, bad", [
    (deep_ritz, {"dims": ()}), (deep_ritz, {"beta": 0.0}), (pinn_superres, {"frac": 0.0}),
    (pinn_superres, {"val_frac": 1.0}), (stable_resnets, {"depths": (0, 8)}), (stable_resnets, {"h": -0.1}),
    (node_gradients, {"steps_list": (16, 4)}), (node_gradients, {"fd_eps": 0.0}),
])
def test_configs_refuse_impossible_values(mod, bad):
    with pytest.raises(ValueError):
        dataclasses.replace(mod.QUICK, **bad)
