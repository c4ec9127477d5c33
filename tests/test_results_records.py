"""The committed run records: the scorecard and the README summary are generated from them."""

import json
from pathlib import Path

from dynajax.experiments import experiment_names
from dynajax.experiments.results import status
from dynajax.experiments.scorecard import load_records, stale_files

ROOT = Path(__file__).resolve().parents[1]


def test_scorecard_and_readme_are_up_to_date_with_the_records():
    stale = stale_files(ROOT / "results", experiment_names(), ROOT / "README.md")
    assert not stale, f"run `dynajax scorecard`: {stale} out of date with results/"


def test_every_record_is_complete_and_its_status_is_computed_from_its_checks():
    for rec in load_records(ROOT / "results"):
        m, run = rec["metrics"], rec["run"]
        where = rec["dir"]
        assert where == f"{m['experiment']}/{m['scale']}", where
        assert m["experiment"] in experiment_names(), f"{where}: not a registered experiment"
        assert m["status"] == status(m["checks"]), where
        assert run["seeds"] == m["seed_values"] and run["config"]["seeds"] == m["seeds"], where
        assert run["commit"] and run["hardware"]["cores"] and run["versions"]["jax"], where
        assert (ROOT / "results" / where / "report.md").is_file(), where
        json.dumps(m, allow_nan=False)  # strict JSON
