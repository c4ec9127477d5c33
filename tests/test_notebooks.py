"""Every notebook in notebooks/ runs top to bottom (so they never rot)."""

import os
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.py"))
# Each tour is a fresh process of 10-50 s on 2 cores (imports, compiles, training): `make test`
# leaves them to `make test-all` and `make notebooks` (the slow marker) to stay under 5 minutes.
PARAMS = [pytest.param(p, marks=pytest.mark.slow) for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nb = jupytext.read(path)  # percent format parses into a real notebook
    assert nb.cells and any(c.cell_type == "markdown" for c in nb.cells)
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
