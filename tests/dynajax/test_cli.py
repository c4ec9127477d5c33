"""End-to-end tests of the CLI, the registry and the metrics.json contract."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dynajax import cli
from dynajax.experiments import Check, Result, Row, experiment_names, registry, reproduce
from dynajax.experiments.results import report_markdown


@pytest.fixture
def toy_experiment(monkeypatch):
    """A registered experiment whose numbers are known, removed after the test."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register("toy", "a toy experiment", default_seeds=2)
    def run(scale, seeds, out_dir):
        vals = np.arange(seeds, dtype=float) + (0.0 if scale == "quick" else 10.0)
        return Result(
            rows=[Row("method A", {"err": vals}, {"err": 0.5})],
            checks=[Check("err small", bool(vals.max() < 5), f"max {vals.max()}")],
            notes="toy",
        )

    return "toy"


def test_metrics_json_contract(tmp_path, toy_experiment):
    m = reproduce(toy_experiment, scale="quick", seeds=3, out=tmp_path)
    on_disk = json.loads((tmp_path / "toy" / "metrics.json").read_text())
    assert on_disk == m
    assert set(m) == {"experiment", "scale", "seeds", "wall_seconds", "versions", "rows", "checks", "notes"}
    assert m["notes"] == "toy"  # protocol and deviations travel with the numbers
    assert (m["experiment"], m["scale"], m["seeds"]) == ("toy", "quick", 3)
    assert set(m["versions"]) >= {"dynajax", "jax"}
    (row,) = m["rows"]
    assert row["method"] == "method A" and row["reference"] == {"err": 0.5}
    assert row["metrics"]["err"] == {"mean": 1.0, "std": pytest.approx(np.std([0, 1, 2])), "values": [0.0, 1.0, 2.0]}
    assert m["checks"] == [{"name": "err small", "passed": True, "detail": "max 2.0"}]
    report = (tmp_path / "toy" / "report.md").read_text()
    assert "| method A | err | 1 ± 0.816 | 0.5 |" in report and "toy" in report
    assert not [p for p in (tmp_path / "toy").iterdir() if p.name.startswith(".")]  # no temp files


def test_default_seeds_and_full_scale(tmp_path, toy_experiment):
    m = reproduce(toy_experiment, scale="full", out=tmp_path)
    assert m["seeds"] == 2 and m["rows"][0]["metrics"]["err"]["values"] == [10.0, 11.0]
    assert m["checks"][0]["passed"] is False


def test_nan_metrics_are_written_as_null(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("nan", "nan")(lambda s, n, o: Result([Row("m", {"x": [np.nan]})]))
    m = reproduce("nan", out=tmp_path, seeds=1)
    assert m["rows"][0]["metrics"]["x"]["values"] == [None]
    json.loads((tmp_path / "nan" / "metrics.json").read_text())  # strict JSON, no NaN literal


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="nope"), "unknown experiment 'nope'; known: .*solver-convergence"),
        (dict(name="toy", scale="huge"), "unknown scale 'huge'; allowed: quick, full"),
        (dict(name="toy", seeds=0), "seeds must be >= 1"),
    ],
)
def test_reproduce_bad_input(tmp_path, toy_experiment, kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        reproduce(name, out=tmp_path, **kwargs)


def test_unwritable_output_dir(tmp_path, toy_experiment):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot create output directory"):
        reproduce(toy_experiment, out=blocker)


def test_register_twice_is_an_error(toy_experiment):
    with pytest.raises(ValueError, match="already registered"):
        registry.register("toy", "again")(lambda *a: None)


def test_cli_list_and_errors(capsys, toy_experiment):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()}
    assert lines["toy"] == "a toy experiment" and "solver-convergence" in lines
    assert cli.main(["reproduce", "nope"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    assert cli.main(["reproduce"]) == 2
    assert "exactly one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "toy", "--scale", "huge"])


def test_cli_reproduce_and_report(tmp_path, capsys, toy_experiment):
    assert cli.main(["reproduce", "toy", "--seeds", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| method A | err | 0.5 ± 0.5 | 0.5 |" in out and "[PASS] err small" in out
    assert cli.main(["report", str(tmp_path / "toy")]) == 0
    assert "| method A | err |" in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path)]) == 2  # no metrics.json there


def test_cli_failed_check_exit_code(tmp_path, toy_experiment):
    assert cli.main(["reproduce", "toy", "--scale", "full", "--out", str(tmp_path)]) == 1
    assert (tmp_path / "toy" / "metrics.json").exists()  # written even when a check fails


def test_report_markdown_lists_figures():
    metrics = {"experiment": "e", "scale": "quick", "seeds": 1, "wall_seconds": 1.0,
               "versions": {"jax": "x"}, "rows": [], "checks": []}
    md = report_markdown(metrics, Result(rows=[], figures=["a.png"]))
    assert "![a.png](a.png)" in md


def test_quick_suite_contains_solver_convergence():
    assert "solver-convergence" in experiment_names("quick")
    with pytest.raises(ValueError, match="unknown suite"):
        experiment_names("slow")


def test_solver_convergence_end_to_end(tmp_path):
    """`python -m dynajax reproduce solver-convergence` writes orders within 0.2 of theory."""
    proc = subprocess.run(
        [sys.executable, "-m", "dynajax", "reproduce", "solver-convergence", "--seeds", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "solver-convergence" / "metrics.json").read_text())
    orders = {r["method"]: (r["metrics"]["order"]["mean"], r["reference"]["order"]) for r in m["rows"]}
    assert set(orders) == {"euler", "midpoint", "heun", "rk4", "rk4_38", "tsit5", "dopri5", "dopri8"}
    for name, (measured, expected) in orders.items():
        assert abs(measured - expected) < 0.2, (name, measured)
    assert all(c["passed"] for c in m["checks"])
    assert Path(tmp_path / "solver-convergence" / "convergence.png").stat().st_size > 10_000
    assert "| rk4_38 | order |" in proc.stdout
