"""Timed slices: the slice configurations, the linear fit, estimate.json and its scorecard row."""

import dataclasses
import json
import time

import pytest

from dynajax import cli
from dynajax.experiments import Check, ExperimentConfig, Result, experiment_names, get_experiment, override, registry
from dynajax.experiments.estimate import estimate, fit_estimate, slice_overrides
from dynajax.experiments.scorecard import fmt_duration

FIXED_S, PER_STEP_S = 0.05, 0.0004


@dataclasses.dataclass(frozen=True, kw_only=True)
class SleepConfig(ExperimentConfig):
    steps: int = 10
    every: int = 5
    adapt: tuple = (4, 8)


@pytest.fixture
def sleeper(monkeypatch):
    """An experiment whose wall time is FIXED_S + PER_STEP_S * (steps + sum(adapt)), known exactly."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    configs = {"quick": SleepConfig(), "full": SleepConfig(steps=2000, every=400, adapt=(500, 1000))}

    @registry.register("sleeper", "sleeps", configs=configs, budget=("steps", "every", "adapt"))
    def run(cfg, seeds, out_dir):
        time.sleep(FIXED_S + PER_STEP_S * (cfg.steps + sum(cfg.adapt)))
        return Result(rows=[], checks=[Check("ran", True, f"{cfg.steps} steps every {cfg.every}")])

    return "sleeper"


def test_slice_overrides_scale_every_budget_field():
    cfg = SleepConfig(steps=2000, every=400, adapt=(500, 1000))
    sets, eff = slice_overrides(cfg, ("steps", "every", "adapt"), 0.01)
    assert sets == ["steps=20", "every=4", "adapt=(5, 10)"] and eff == 0.01
    sets, eff = slice_overrides(cfg, ("steps",), 1e-5)  # never below one step; the effective fraction says so
    assert sets == ["steps=1"] and eff == 1 / 2000
    with pytest.raises(ValueError, match="no budget fields"):
        slice_overrides(cfg, (), 0.1)
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        slice_overrides(cfg, ("steps",), 0.0)


def test_fit_estimate_recovers_a_line():
    fit = fit_estimate([0.01, 0.04], [12.0 + 0.01 * 3000, 12.0 + 0.04 * 3000])
    assert fit == {"fixed_seconds": 12.0, "scaling_seconds": 3000.0, "estimate_seconds": 3012.0}
    assert fit_estimate([0.1, 0.2], [5.0, 4.0])["scaling_seconds"] == 0.0  # noise never gives a negative slope
    with pytest.raises(ValueError, match="increasing"):
        fit_estimate([0.2, 0.1], [1.0, 2.0])


def test_estimate_extrapolates_the_wall_time(tmp_path, sleeper):
    est = estimate(sleeper, fractions=(0.1, 0.4), out=tmp_path)
    full = FIXED_S + PER_STEP_S * 3500
    assert est["estimate_seconds"] == pytest.approx(full, rel=0.1)
    assert est["fixed_seconds"] == pytest.approx(FIXED_S, abs=0.05)
    assert [s["overrides"] for s in est["slices"]] == [["steps=200", "every=40", "adapt=(50, 100)"],
                                                      ["steps=800", "every=160", "adapt=(200, 400)"]]
    path = tmp_path / sleeper / "full" / "estimate.json"
    assert json.loads(path.read_text()) == est and est["commit"] is not None and est["hardware"]["cores"]
    with pytest.raises(ValueError, match="exists"):  # never overwritten without force
        estimate(sleeper, fractions=(0.1, 0.4), out=tmp_path)
    with pytest.raises(ValueError, match="slices differ"):
        estimate(sleeper, fractions=(0.0001, 0.0002), out=tmp_path, force=True)
    # the scorecard shows the estimate on the row of the record not yet run
    assert cli.main(["scorecard", "--results", str(tmp_path)]) == 0
    card = (tmp_path / "README.md").read_text()
    assert f"| sleeper | full | not run | needs about {fmt_duration(est['estimate_seconds'])} (timed slices at 10% and 40%" in card
    assert "| sleeper | quick | not run | | |" in card


def test_failed_slice_leaves_no_empty_folder(tmp_path, sleeper, monkeypatch):
    import dynajax.experiments.estimate as est_mod

    def fail(*args, **kwargs):
        raise RuntimeError("slice failed")

    monkeypatch.setattr(est_mod, "reproduce", fail)
    with pytest.raises(RuntimeError, match="slice failed"):
        estimate(sleeper, fractions=(0.1, 0.4), out=tmp_path)
    assert not (tmp_path / sleeper).exists()


def test_cli_estimate(tmp_path, capsys, sleeper):
    assert cli.main(["estimate", sleeper, "--fractions", "0.1", "0.2", "--out", str(tmp_path)]) == 0
    assert "sleeper (full): about" in capsys.readouterr().out
    assert cli.main(["estimate", "solver-convergence", "--out", str(tmp_path)]) == 2
    assert "declares no budget fields" in capsys.readouterr().err
    assert cli.main(["estimate", "nope", "--out", str(tmp_path)]) == 2


def test_every_budget_slices_its_full_config():
    """Each declared budget gives a slice its config accepts (a slice that fails would waste a timed run)."""
    for name in experiment_names():
        exp = get_experiment(name)
        if exp.budget:
            sets, eff = slice_overrides(exp.config("full"), exp.budget, 0.0025)
            assert 0 < eff <= 0.01, (name, sets)
            override(exp.config("full"), sets)  # runs the config's validation


def test_register_rejects_a_budget_that_is_not_a_step_count(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match="budget field 'nope'"):
        registry.register("x", "x", configs={"quick": SleepConfig(), "full": SleepConfig()}, budget=("nope",))
