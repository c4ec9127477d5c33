"""`hidden-ns` end to end at a tiny monkeypatched size: outputs, rows and checks are written."""

import json

import pytest

from dynajax.experiments import hidden_ns, reproduce


@pytest.mark.slow
def test_hidden_ns_tiny_run(tmp_path, monkeypatch):
    tiny = dict(hidden_ns.SIZES["quick"], n_train=2, n_val=2, n_test=2, train_frames=5, width=4, n_down=1,
                n_blocks=1, T=2, substeps=1, batch=2, steps=2, val_every=1, horizon=5, models=("setting2",))
    monkeypatch.setitem(hidden_ns.SIZES, "quick", tiny)
    monkeypatch.setattr(hidden_ns, "HORIZONS", (1, 2, 5))
    m = reproduce("hidden-ns", scale="quick", seeds=1, out=tmp_path)
    out = tmp_path / "hidden-ns"
    assert json.loads((out / "metrics.json").read_text())["experiment"] == "hidden-ns"
    rows = {r["method"]: r for r in m["rows"]}
    s2 = rows["Ours, Setting 2 (X0 given)"]
    assert s2["reference"]["rel_err_h1"] == 0.118 and s2["reference"]["cos_h1"] == 0.798  # T=5 refs
    pers = rows["Persistence (rho; velocity frozen)"]["metrics"]
    # persistence errors grow with the horizon (the flow moves the density), cosines decay
    assert 0 < pers["rel_err_h1"]["mean"] < pers["rel_err_h5"]["mean"]
    assert 1 > pers["cos_h1"]["mean"] > pers["cos_h5"]["mean"]
    names = {c["name"] for c in m["checks"]}
    assert any("beats persistence" in n for n in names)
    assert (out / "hidden_ns_rollout.png").stat().st_size > 10_000


def test_curriculum_stages_cover_the_steps_and_end_at_the_full_horizon():
    stages = hidden_ns.curriculum_stages(8, 401, ((0.25, 0.3), (0.5, 0.3), (1.0, 0.4)))
    assert [h for h, _ in stages] == [2, 4, 8]
    assert sum(n for _, n in stages) == 401 and stages[0][1] == round(0.3 * 401)
    assert hidden_ns.curriculum_stages(6, 10) == [(6, 10)]  # default: the full horizon throughout
    for bad in (((0.5, 1.0),), ((1.0, 0.5),), ((0.5, 0.0), (1.0, 1.0)), ((2.0, 0.5), (1.0, 0.5))):
        with pytest.raises(ValueError, match="curriculum"):
            hidden_ns.curriculum_stages(8, 100, bad)
