"""The gantk table experiments end to end at a tiny monkeypatched size."""

import math

import pytest

from dynajax.experiments import gantk_tables, reproduce


@pytest.mark.slow
def test_gantk_table_experiment_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(gantk_tables.SIZES, "quick", {"n": 8, "steps": {"density": 40}, "snap": 20})
    monkeypatch.setattr(gantk_tables, "ROWS", ("IPM (inf.)",))
    monkeypatch.setattr(gantk_tables, "KERNEL_COLS", ("rbf", "relu"))
    m = reproduce("gantk-density", scale="quick", seeds=2, out=tmp_path)
    rows = {r["method"]: r for r in m["rows"]}
    assert set(rows) == {"IPM (inf.) rbf", "IPM (inf.) relu"}
    assert rows["IPM (inf.) relu"]["reference"] == {"sinkhorn": 3.34e-9}
    for r in rows.values():
        assert len(r["metrics"]["sinkhorn"]["values"]) == 2
        assert all(math.isfinite(v) and v >= 0 for v in r["metrics"]["sinkhorn"]["values"])
    names = [c["name"] for c in m["checks"]]
    assert "IPM (inf.): ReLU beats rbf" in names
    assert (tmp_path / "gantk-density" / "final_particles_density.png").stat().st_size > 5_000
