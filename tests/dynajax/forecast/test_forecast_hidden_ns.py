"""`hidden-ns`: config validation and a tiny end-to-end run (rows, thesis references, checks, figure)."""

import dataclasses

import pytest

from dynajax.experiments import hidden_ns
from dynajax.experiments.results import status


def test_config_rejects_impossible_settings():
    for bad, match in (({"models": ("setting3",)}, "models"), ({"models": ("pkni",)}, "models"), ({"horizons": (10, 5)}, "horizons"),
                       ({"T": 30}, "train_frames"), ({"grid": 36}, "grid"), ({"batch": 10**6}, "batch"),
                       ({"curriculum": ((0.5, 1.0),)}, "curriculum"), ({"restr_seqs": 100}, "restr_seqs")):
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(hidden_ns.QUICK, **bad)


def test_thesis_references_follow_the_horizons():
    assert hidden_ns.thesis_refs("setting2", (5, 50)) == {"rel_err_h5": 0.118, "rel_err_h50": 0.483,
                                                          "cos_h5": 0.798, "cos_h50": 0.483}
    assert hidden_ns.thesis_refs("setting1", (2, 10)) == {"rel_err_h10": 0.243}  # no cosine in Table 2.1


@pytest.mark.slow
def test_hidden_ns_tiny_run(tmp_path):
    cfg = dataclasses.replace(hidden_ns.DEMO, n_train=2, n_val=1, n_test=2, train_frames=5, width=4, T=2, batch=2,
                              steps=2, val_every=1, horizons=(1, 2, 5), models=("setting2", "setting1", "pkni"),
                              est_width=4, restr_seqs=2, restr_steps=2)
    res = hidden_ns.run(cfg, (3,), tmp_path)
    rows = {r.method: r.to_json() for r in res.rows}
    assert rows["Ours, Setting 2 (X0 given)"]["reference"] == {"rel_err_h5": 0.118, "cos_h5": 0.798}
    pers = rows["Persistence (rho; velocity frozen)"]["metrics"]
    # persistence errors grow with the horizon (the flow moves the density), cosines decay
    assert 0 < pers["rel_err_h1"]["mean"] < pers["rel_err_h5"]["mean"]
    assert 1 > pers["cos_h1"]["mean"] > pers["cos_h5"]["mean"]
    assert "cos_h5" in rows["Ours, Setting 1 restructured (2 sequences)"]["metrics"]
    assert rows["PKnI"]["reference"] == {"rel_err_h5": 0.194, "cos_h5": 0.243}
    bands = [c for c in res.checks if c.kind == "band"]
    assert {c.reference for c in bands} >= {0.118, 0.798, 0.152, 0.192, 0.582}
    assert any("PKnI" in c.name for c in res.checks)
    assert status(res.checks) in ("reproduced", "trend", "not reproduced")
    assert (tmp_path / "hidden_ns_rollout.png").stat().st_size > 10_000
