"""The four issue-8 experiments end to end at a tiny monkeypatched size."""

import json

import jax
import pytest

from dynajax.experiments import (
    deep_ritz,
    node_gradients,
    pinn_superres,
    reproduce,
    stable_resnets,
)

# Each experiment compiles 4-13 programs even at this size (diffrax's backsolve, four
# networks, Laplacian training loops): about 100 s of CPU together, so these end-to-end smoke
# runs of what `reproduce --scale quick` covers carry the slow marker.
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fast_random():
    with jax.threefry_partitionable(False):
        yield


def _rows(m):
    return {r["method"]: r["metrics"] for r in m["rows"]}


def test_node_gradients_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(node_gradients.SIZES, "quick", {
        "n_train": 32, "n_val": 16, "n_test": 32, "steps_list": (2, 8), "fine_steps": 8,
        "train_n_steps": 2, "train_steps": 4, "repeats": 1, "width": 4})
    m = reproduce("node-gradients", scale="quick", seeds=1, out=tmp_path)
    rows = _rows(m)
    # the discretise route is the exact gradient of the discrete network even at this size
    assert rows["discretize N=8"]["grad_err_fd"]["mean"] < 1e-6
    assert rows["backsolve N=2"]["grad_err_fd"]["mean"] > rows["backsolve N=8"]["grad_err_fd"]["mean"]
    assert json.loads((tmp_path / "node-gradients" / "metrics.json").read_text())["experiment"] == "node-gradients"
    assert (tmp_path / "node-gradients" / "node_gradients.png").exists()


def test_stable_resnets_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(stable_resnets.SIZES, "quick", {
        "n_train": 32, "n_val": 16, "n_test": 32, "depths": (2, 8), "train_depth": 2, "width": 4, "h": 0.5,
        "train_steps": 4, "lr": 1e-2})
    m = reproduce("stable-resnets", scale="quick", seeds=1, out=tmp_path)
    rows = _rows(m)
    assert set(rows) == set(stable_resnets.NETWORKS)
    assert rows["Hamiltonian reversible"]["grad_rel_diff_vs_autodiff"]["mean"] < 1e-4
    # the antisymmetric block at gamma = 0.01 neither blows up nor collapses perturbations
    assert 0.2 < rows["Antisymmetric"]["growth_init_L8"]["mean"] < 3


def test_deep_ritz_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(deep_ritz.SIZES, "quick", {
        "dims": (2,), "n_points": (32,), "train_steps": 3, "width": 8, "n_test": 64, "lr": 1e-3, "beta": 10.0})
    m = reproduce("deep-ritz", scale="quick", seeds=1, out=tmp_path)
    rows = _rows(m)
    assert set(rows) == {"Deep Ritz d=2", "PINN d=2"}
    assert all(0 < r["rel_l2_n32"]["mean"] < 10 for r in rows.values())


def test_pinn_superres_tiny(tmp_path, monkeypatch):
    monkeypatch.setitem(pinn_superres.SIZES, "quick", {
        "n": 16, "T": 0.01, "frac": 0.25, "train_steps": 4, "n_col": 16, "hidden": 8, "n_filters": 2,
        "input_scale": 4.0, "lam": 1e-2, "lr": 1e-3})
    m = reproduce("pinn-superres", scale="quick", seeds=1, out=tmp_path)
    rows = _rows(m)
    assert set(rows) == set(pinn_superres.METHODS)
    # interpolants reproduce the data somewhere: errors are finite and below a constant predictor's 1
    assert rows["GP (RBF kernel)"]["rel_l2"]["mean"] < 1.0
    assert rows["Cubic (Clough-Tocher)"]["rel_l2"]["mean"] < 1.0
