"""End-to-end tests of the CLI, the registry and the metrics.json contract."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from dynajax import cli
from dynajax.experiments import (
    Check,
    ExperimentConfig,
    Result,
    Row,
    band,
    experiment_names,
    override,
    registry,
    reproduce,
    seed_keys,
    status,
)
from dynajax.experiments.results import report_markdown


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToyConfig(ExperimentConfig):
    shift: float = 0.0
    label: str = "a"
    sizes: tuple = (1, 2)

    def __post_init__(self):
        if self.shift < 0:
            raise ValueError(f"shift must be >= 0, got {self.shift}")


@pytest.fixture
def toy_experiment(monkeypatch):
    """A registered experiment whose numbers are known, removed after the test."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    configs = {"quick": ToyConfig(seeds=2), "full": ToyConfig(seeds=2, shift=10.0)}

    @registry.register("toy", "a toy experiment", configs=configs)
    def run(cfg, seeds, out_dir):
        vals = np.asarray(seeds, dtype=float) + cfg.shift
        return Result(
            rows=[Row("method A", {"err": vals}, {"err": 0.5})],
            checks=[Check("err small", bool(vals.max() < 5), f"max {vals.max()}"),
                    band("mean err", float(vals.mean()), 1.0, 0.6)],
            notes=f"toy {cfg.label}",
        )

    return "toy"


def test_metrics_json_contract(tmp_path, toy_experiment):
    m = reproduce(toy_experiment, scale="quick", seeds=3, out=tmp_path)
    on_disk = json.loads((tmp_path / "toy" / "metrics.json").read_text())
    assert on_disk == m
    assert set(m) == {"experiment", "scale", "seeds", "seed_values", "wall_seconds", "versions", "rows",
                      "checks", "status", "notes"}
    assert m["notes"] == "toy a"  # protocol and deviations travel with the numbers
    assert (m["experiment"], m["scale"], m["seeds"], m["seed_values"]) == ("toy", "quick", 3, [0, 1, 2])
    assert set(m["versions"]) >= {"dynajax", "jax"}
    (row,) = m["rows"]
    assert row["method"] == "method A" and row["reference"] == {"err": 0.5}
    assert row["metrics"]["err"] == {"mean": 1.0, "std": pytest.approx(np.std([0, 1, 2])), "values": [0.0, 1.0, 2.0]}
    assert m["checks"][0] == {"name": "err small", "passed": True, "detail": "max 2.0", "kind": "trend",
                              "measured": None, "reference": None}
    assert m["checks"][1]["kind"] == "band" and m["checks"][1]["measured"] == 1.0 and m["status"] == "reproduced"
    report = (tmp_path / "toy" / "report.md").read_text()
    assert "| method A | err | 1 ± 0.816 | 0.5 |" in report and "toy a" in report and "reproduced" in report
    assert not [p for p in (tmp_path / "toy").iterdir() if p.name.startswith(".")]  # no temp files


def test_run_json_records_config_seeds_and_machine(tmp_path, toy_experiment):
    reproduce(toy_experiment, seeds=2, seed_offset=7, overrides=["label='b'", "sizes=[3]"], out=tmp_path,
              record=True)
    run = json.loads((tmp_path / "toy" / "quick" / "run.json").read_text())
    assert run["seeds"] == [7, 8] and run["overrides"] == ["label='b'", "sizes=[3]"]
    assert run["config"] == {"seeds": 2, "shift": 0.0, "label": "b", "sizes": [3]}
    assert set(run["hardware"]) == {"cpu", "cores", "platform", "accelerators"} and run["hardware"]["cores"] >= 1
    assert {"jax", "numpy", "python"} <= set(run["versions"]) and run["wall_seconds"] >= 0
    assert len(run["load_average"]["start"]) == 3 and "commit" in run and "dirty" in run
    m = json.loads((tmp_path / "toy" / "quick" / "metrics.json").read_text())
    assert m["seed_values"] == [7, 8] and m["rows"][0]["metrics"]["err"]["values"] == [7.0, 8.0]


def test_git_state_dirty_ignores_records(tmp_path):
    from dynajax.experiments.record import git_state

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "results" / "run.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "c")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "results" / "run.json").write_text('{"new": 1}\n')  # a record written by a run
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_state(tmp_path)["dirty"] is True


def test_existing_run_is_refused_without_force(tmp_path, toy_experiment):
    reproduce(toy_experiment, out=tmp_path)
    before = (tmp_path / "toy" / "metrics.json").read_text()
    with pytest.raises(ValueError, match="already holds a run"):
        reproduce(toy_experiment, scale="full", out=tmp_path)
    assert (tmp_path / "toy" / "metrics.json").read_text() == before
    m = reproduce(toy_experiment, scale="full", out=tmp_path, force=True)
    assert m["scale"] == "full"


def test_config_seeds_and_full_scale(tmp_path, toy_experiment):
    m = reproduce(toy_experiment, scale="full", out=tmp_path)
    assert m["seeds"] == 2 and m["rows"][0]["metrics"]["err"]["values"] == [10.0, 11.0]
    assert m["checks"][0]["passed"] is False and m["status"] == "not reproduced"


def test_nan_metrics_are_written_as_null(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("nan", "nan", configs={"quick": ToyConfig(), "full": ToyConfig()})(
        lambda c, s, o: Result([Row("m", {"x": [np.nan]})]))
    m = reproduce("nan", out=tmp_path, seeds=1)
    assert m["rows"][0]["metrics"]["x"]["values"] == [None]
    json.loads((tmp_path / "nan" / "metrics.json").read_text())  # strict JSON, no NaN literal


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="nope"), "unknown experiment 'nope'; known: .*solver-convergence"),
        (dict(name="toy", scale="huge"), "unknown scale 'huge'; allowed: demo, quick, full, gpu"),
        (dict(name="toy", scale="gpu"), "unknown scale 'gpu' for toy; allowed: quick, full"),
        (dict(name="toy", seeds=0), "seeds must be >= 1"),
        (dict(name="toy", seed_offset=-1), "seed offset must be >= 0"),
        (dict(name="toy", overrides=["nope=1"]), "ToyConfig has no field 'nope'; fields: label, seeds, shift, sizes"),
        (dict(name="toy", overrides=["shift"]), "--set expects field=value"),
        (dict(name="toy", overrides=["shift=abc"]), "shift holds a float .* got str 'abc'"),
        (dict(name="toy", overrides=["shift=-1"]), "shift must be >= 0"),
        (dict(name="toy", overrides=["label=1"]), "label holds a str"),
    ],
)
def test_reproduce_bad_input(tmp_path, toy_experiment, kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        reproduce(name, out=tmp_path, **kwargs)
    assert not (tmp_path / name / "metrics.json").exists()


def test_override_coerces_to_the_field_type():
    cfg = override(ToyConfig(), ["shift=2", "sizes=4", "label=word", "seeds=3"])
    assert cfg == ToyConfig(shift=2.0, sizes=(4,), label="word", seeds=3) and isinstance(cfg.shift, float)
    with pytest.raises(ValueError, match="seeds holds a int"):
        override(ToyConfig(), ["seeds=True"])


def test_every_field_of_every_experiment_can_be_set():
    # `--set field=value` with each field's own value round-trips for every config of every
    # experiment (literal syntax and type checks included), and a new seed count lands
    for name in experiment_names():
        for scale, cfg in registry.get_experiment(name).configs.items():
            for f in dataclasses.fields(cfg):
                value = getattr(cfg, f.name)
                assert override(cfg, [f"{f.name}={value!r}"]) == cfg, (name, scale, f.name)
            assert override(cfg, ["seeds=7"]).seeds == 7


def test_seed_keys_depend_on_the_seed_value_only():
    a = jax.random.key_data(seed_keys((3, 4, 5)))
    b = jax.random.key_data(seed_keys((5, 9)))
    np.testing.assert_array_equal(a[2], b[0])
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(jax.random.key_data(seed_keys((3,), stream=1))[0], a[0])


def test_register_validation(toy_experiment):
    with pytest.raises(ValueError, match="already registered"):
        registry.register("toy", "again", configs={"quick": ToyConfig(), "full": ToyConfig()})
    with pytest.raises(ValueError, match=r"missing \['full'\]"):
        registry.register("x", "x", configs={"quick": ToyConfig()})
    with pytest.raises(ValueError, match=r"unknown \['huge'\]"):
        registry.register("x", "x", configs={"quick": ToyConfig(), "full": ToyConfig(), "huge": ToyConfig()})
    with pytest.raises(ValueError, match="same ExperimentConfig subclass"):
        registry.register("x", "x", configs={"quick": ToyConfig(), "full": ExperimentConfig()})


@pytest.mark.parametrize(
    "kinds_passed, expected",
    [
        ([("band", True), ("trend", True)], "reproduced"),
        ([("band", True)], "reproduced"),
        ([("band", False), ("trend", True)], "trend"),
        ([("trend", True)], "trend"),
        ([("band", True), ("trend", False)], "not reproduced"),
        ([("band", False)], "not reproduced"),
        ([], "not reproduced"),
    ],
)
def test_status(kinds_passed, expected):
    assert status([Check("c", p, kind=k) for k, p in kinds_passed]) == expected


@pytest.mark.parametrize(
    "measured, reference, tol, scale, passed",
    [
        (-4.9, -5.1, 0.3, "abs", True), (-1.15, -5.1, 1.0, "abs", False),
        (0.105, 0.1, 0.1, "rel", True), (0.12, 0.1, 0.1, "rel", False),
        (1.9e-3, 1e-3, 0.3, "log10", True), (2.1e-3, 1e-3, 0.3, "log10", False),
        (1.9, 1.0, 2.0, "factor", True), (0.49, 1.0, 2.0, "factor", False),
        (2.0, 1.0, 0.7, "ln", True), (2.1, 1.0, 0.7, "ln", False),
        (float("nan"), 1.0, 2.0, "factor", False), (-1.0, 1.0, 0.3, "log10", False),
    ],
)
def test_band(measured, reference, tol, scale, passed):
    c = band("x", measured, reference, tol, scale)
    assert (c.passed, c.kind, c.reference) == (passed, "band", reference)


@pytest.mark.parametrize("args, match", [((1.0, 1.0, 0.0), "tolerance must be > 0"),
                                         ((1.0, 1.0, 1.0, "huge"), "unknown band scale"),
                                         ((1.0, -1.0, 1.0, "log10"), "positive reference")])
def test_band_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        band("x", *args)
    with pytest.raises(ValueError, match="unknown check kind"):
        Check("x", True, kind="vibes")


def test_unwritable_output_dir(tmp_path, toy_experiment):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot create output directory"):
        reproduce(toy_experiment, out=blocker)


def test_cli_list_and_errors(capsys, toy_experiment):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()}
    assert lines["toy"] == "a toy experiment [quick, full]" and "solver-convergence" in lines
    assert cli.main(["reproduce", "nope"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    assert cli.main(["reproduce"]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert cli.main(["reproduce", "--suite", "quick", "--set", "shift=1"]) == 2
    assert "--set applies to one experiment" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "toy", "--scale", "huge"])


def test_cli_reproduce_and_report(tmp_path, capsys, toy_experiment):
    assert cli.main(["reproduce", "toy", "--seeds", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| method A | err | 0.5 ± 0.5 | 0.5 |" in out and "[PASS] (trend) err small" in out
    assert cli.main(["report", str(tmp_path / "toy")]) == 0
    assert "| method A | err |" in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path)]) == 2  # no metrics.json there
    assert cli.main(["reproduce", "toy", "--out", str(tmp_path)]) == 2  # no overwrite without --force
    assert "already holds a run" in capsys.readouterr().err


def test_cli_failed_checks_are_results_unless_strict(tmp_path, capsys, toy_experiment):
    assert cli.main(["reproduce", "toy", "--scale", "full", "--out", str(tmp_path)]) == 0
    assert "check(s) failed" in capsys.readouterr().err
    assert (tmp_path / "toy" / "metrics.json").exists()  # written even when a check fails
    args = ["reproduce", "toy", "--scale", "full", "--out", str(tmp_path), "--force", "--strict"]
    assert cli.main(args) == 1
    assert cli.main(["reproduce", "toy", "--set", "shift=0.5", "--record", "--out", str(tmp_path)]) == 0
    run = json.loads((tmp_path / "toy" / "quick" / "run.json").read_text())
    assert run["config"]["shift"] == 0.5


def test_scorecard_regenerates_and_checks(tmp_path, capsys, toy_experiment):
    reproduce(toy_experiment, out=tmp_path, record=True)
    reproduce(toy_experiment, scale="full", out=tmp_path, record=True)
    results = ["--results", str(tmp_path)]
    assert cli.main(["scorecard", "--check", *results]) == 2  # no README yet
    assert cli.main(["scorecard", *results]) == 0
    card = (tmp_path / "README.md").read_text()
    assert "| [toy](toy/quick/report.md) | quick | **reproduced** | mean err: 0.5 vs 1 |" in card
    assert "| [toy](toy/full/report.md) | full | **not reproduced** | mean err: 10.5 vs 1 |" in card
    assert "| solver-convergence | quick | not run |" in card
    capsys.readouterr()
    assert cli.main(["scorecard", "--check", *results]) == 0
    (tmp_path / "README.md").write_text(card.replace("reproduced", "REPRODUCED"))
    assert cli.main(["scorecard", "--check", *results]) == 2
    assert "out of date" in capsys.readouterr().err
    # the project README's summary block is regenerated and checked too
    readme = tmp_path / "PROJECT.md"
    readme.write_text("intro\n<!-- scorecard-summary:start -->\nold\n<!-- scorecard-summary:end -->\nrest\n")
    assert cli.main(["scorecard", "--check", *results, "--readme", str(readme)]) == 2
    assert cli.main(["scorecard", *results, "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n<!-- scorecard-summary:start -->\n| scale |") and text.endswith("end -->\nrest\n")
    assert "| quick | 1 | 0 | 0 |" in text and "| full | 0 | 0 | 1 |" in text
    assert cli.main(["scorecard", "--check", *results, "--readme", str(readme)]) == 0
    (tmp_path / "toy" / "full" / "run.json").unlink()
    assert cli.main(["scorecard", *results]) == 2
    assert "has no run.json" in capsys.readouterr().err


def test_report_markdown_lists_figures():
    metrics = {"experiment": "e", "scale": "quick", "seeds": 1, "wall_seconds": 1.0, "status": "trend",
               "versions": {"jax": "x"}, "rows": [], "checks": []}
    md = report_markdown(metrics, Result(rows=[], figures=["a.png"]))
    assert "![a.png](a.png)" in md


def test_quick_suite_contains_solver_convergence():
    assert "solver-convergence" in experiment_names("quick") and "solver-convergence" in experiment_names("demo")
    with pytest.raises(ValueError, match="unknown suite"):
        experiment_names("slow")
    # the gpu suite: exactly the experiments whose paper scale has a gpu configuration
    gpu = experiment_names("gpu")
    assert gpu and all("gpu" in registry.get_experiment(n).configs for n in gpu)
    assert {"aphynity-rd", "leads-gs"} <= set(gpu) and "solver-convergence" not in gpu


@pytest.mark.slow
def test_solver_convergence_end_to_end(tmp_path):
    """`python -m dynajax reproduce solver-convergence` writes orders within 0.2 of theory."""
    proc = subprocess.run(
        [sys.executable, "-m", "dynajax", "reproduce", "solver-convergence", "--seeds", "1", "--seed-offset", "7",
         "--set", "tolerance=0.25", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "solver-convergence" / "metrics.json").read_text())
    orders = {r["method"]: (r["metrics"]["order"]["mean"], r["reference"]["order"]) for r in m["rows"]}
    assert set(orders) == {"euler", "midpoint", "heun", "rk4", "rk4_38", "tsit5", "dopri5", "dopri8"}
    for name, (measured, expected) in orders.items():
        assert abs(measured - expected) < 0.2, (name, measured)
    assert all(c["passed"] and c["kind"] == "band" for c in m["checks"]) and m["status"] == "reproduced"
    assert m["seed_values"] == [7] and "(band 0.25)" in m["checks"][0]["detail"]
    assert Path(tmp_path / "solver-convergence" / "convergence.png").stat().st_size > 10_000
    assert "| rk4_38 | order |" in proc.stdout
