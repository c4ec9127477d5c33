"""The benchmark harness mechanics: timing, rows and ratios, the table, --json, name errors.

No timing is asserted (the clock is faked where numbers matter) and torch is never needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level package of the repo, not installed
    sys.path.insert(0, str(ROOT))

import benchmarks  # noqa: E402
from benchmarks import harness  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402

CONTRACT_KEYS = {"workload", "impl", "median_s", "per_unit", "ratio_vs_ref"}


class FakeClock:
    """Each call advances by the next duration while a call is open; records the order."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now = 0.0
        self.open = False

    def __call__(self):
        if self.open:
            self.now += self.durations.pop(0)
        self.open = not self.open
        return self.now


def test_time_fn_median_excludes_warmup_and_syncs_inside_timer():
    clock = FakeClock([100.0, 3.0, 1.0, 2.0, 5.0, 4.0])  # first one is the warm-up
    calls, synced = [], []

    def fn():
        calls.append(clock.open)  # the timer is running during the call
        return len(calls)

    def sync(x):
        synced.append((x, clock.open))  # and still running during the sync
        return x

    t = harness.time_fn(fn, repeats=5, warmup=1, sync=sync, clock=clock)
    assert t.median_s == 3.0
    assert t.times_s == [3.0, 1.0, 2.0, 5.0, 4.0]
    assert t.warmup_s == [100.0]
    assert calls == [True] * 6
    assert synced == [(i + 1, True) for i in range(6)]


def test_time_fn_real_clock_and_validation():
    t = harness.time_fn(lambda: sum(range(100)), repeats=5, warmup=0)
    assert len(t.times_s) == 5 and t.warmup_s == [] and t.median_s >= 0.0
    with pytest.raises(ValueError, match="repeats"):
        harness.time_fn(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        harness.time_fn(lambda: None, warmup=-1)


def test_block_waits_for_jax_arrays_and_passes_others():
    import jax.numpy as jnp

    x = {"a": jnp.ones(3) * 2, "b": 1}
    assert harness.block(x) is not None
    assert harness.block("plain") == "plain"


def _row(impl, median, ref, workload="w"):
    return harness.Row(workload, impl, median, units=100.0, unit="thing", ref=ref, times_s=[median] * 5)


def test_rows_ratios_and_dict_format():
    rows = harness.fill_ratios(
        [
            _row("torch-fwd", 2.0, "torch-fwd"),
            _row("jax-fwd", 0.5, "torch-fwd"),
            _row("jax-grad", 1.0, "torch-grad"),  # its reference is absent
            _row("solo", 1.0, None),
            _row("torch-fwd", 8.0, "torch-fwd", workload="other"),  # refs stay within a workload
        ]
    )
    assert [r.ratio_vs_ref for r in rows] == [1.0, 4.0, None, None, 1.0]
    d = rows[1].to_dict()
    assert CONTRACT_KEYS <= set(d)
    assert d["per_unit"] == pytest.approx(0.5 / 100.0)
    assert d["unit"] == "thing" and d["ref"] == "torch-fwd" and d["repeats"] == 5
    json.dumps([r.to_dict() for r in rows])  # serialisable, None -> null


def test_table_header_states_the_ratio_convention():
    rows = harness.fill_ratios([_row("ref", 2.0, "ref"), _row("fast", 1.0, "ref"), _row("x", 1.0, "gone")])
    table = harness.format_table(rows)
    assert harness.RATIO_CONVENTION in table
    assert ">1 means impl is faster" in table
    lines = table.splitlines()
    assert any("fast" in ln and "2.00" in ln for ln in lines)
    assert any(ln.startswith("w ") and " x " in ln and ln.rstrip().endswith("-") for ln in lines)


@pytest.fixture
def fake_workloads(monkeypatch):
    reg = {}
    monkeypatch.setattr(harness, "WORKLOADS", reg)

    @harness.register("fake", "a toy workload with a reference")
    def fake(ctx):
        t = ctx.time(lambda: sum(range(1000)))
        return [
            harness.Row.from_timing("fake", "ref", t, units=10, unit="op", ref="ref"),
            harness.Row.from_timing("fake", "ours", t, units=10, unit="op", ref="ref", compile_s=0.1),
        ]

    @harness.register("noref", "its optional reference is missing")
    def noref(ctx):
        ctx.note("noref: reference skipped, fakelib not installed; ratio_vs_ref is null")
        t = ctx.time(lambda: None)
        return [harness.Row.from_timing("noref", "ours", t, units=1, unit="op", ref="fakelib")]

    return reg


def test_main_writes_json_rows(fake_workloads, tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    assert main(["all", "--json", str(out), "--repeats", "5"]) == 0
    printed = capsys.readouterr().out
    assert harness.RATIO_CONVENTION in printed
    assert "noref: reference skipped" in printed  # the skip is said, not silent
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["workload"], r["impl"]) for r in rows] == [("fake", "ref"), ("fake", "ours"), ("noref", "ours")]
    for r in rows:
        assert CONTRACT_KEYS <= set(r)
        assert r["per_unit"] == pytest.approx(r["median_s"] / r["units"])
        assert len(r["times_s"]) == 5
    assert rows[0]["ratio_vs_ref"] == 1.0
    assert rows[1]["ratio_vs_ref"] == pytest.approx(rows[0]["median_s"] / rows[1]["median_s"])
    assert rows[2]["ratio_vs_ref"] is None
    assert any("fakelib" in n for n in data["notes"])
    assert data["ratio_convention"] == harness.RATIO_CONVENTION
    assert "jax" in data["environment"]


def test_unknown_workload_is_a_clear_error(fake_workloads, capsys):
    with pytest.raises(SystemExit) as e:
        main(["nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown workload 'nope'" in err and "fake" in err and "noref" in err
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        harness.resolve_names(["fake", "nope"])
    assert harness.resolve_names(["noref", "all"]) == ["noref", "fake"]
    with pytest.raises(SystemExit):
        main(["fake", "--repeats", "2"])  # a median of fewer than 5 is refused


def test_register_rejects_all_and_duplicates(fake_workloads):
    with pytest.raises(ValueError, match="reserved"):
        harness.register("all", "x")(lambda ctx: [])
    with pytest.raises(ValueError, match="twice"):
        harness.register("fake", "again")(lambda ctx: [])


@pytest.mark.slow
def test_integrate_is_registered_and_import_needs_no_torch():
    assert "integrate" in benchmarks.WORKLOADS
    code = "import sys, benchmarks; assert 'torch' not in sys.modules; print(sorted(benchmarks.WORKLOADS))"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "integrate" in res.stdout


@pytest.mark.slow
def test_sliced_is_registered_and_import_needs_no_pot():
    assert "sliced" in benchmarks.WORKLOADS
    code = "import sys, benchmarks; assert 'ot' not in sys.modules; print(sorted(benchmarks.WORKLOADS))"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "sliced" in res.stdout



def test_time_interleaved_runs_round_robin():
    order = []
    clock = FakeClock([9.0, 9.0, 1.0, 10.0, 2.0, 20.0, 3.0, 30.0])  # a, b warm-up, then timed
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    t = harness.time_interleaved(fns, repeats=3, warmup=1, clock=clock, syncs={"a": lambda x: x})
    assert order == ["a", "b"] * 4
    assert t["a"].times_s == [1.0, 2.0, 3.0] and t["a"].median_s == 2.0
    assert t["b"].times_s == [10.0, 20.0, 30.0] and t["b"].warmup_s == [9.0]
    with pytest.raises(ValueError, match="repeats"):
        harness.time_interleaved(fns, repeats=0)


@pytest.mark.slow
def test_compile_workload_times_cold_warm_and_steady_in_fresh_processes():
    from benchmarks import compile as comp

    rows = comp.run(harness.Context(echo=False), families=("gantk",))
    by = {r.impl: r for r in rows}
    assert set(by) == {"gantk-steady", "gantk-cold-first", "gantk-warm-first"}
    assert all(r.ref == "gantk-steady" and r.median_s > 0 for r in rows)
    assert len(by["gantk-steady"].times_s) == 2 * comp.STEADY_REPEATS
    # a first call traces and compiles (or loads): never faster than a steady call
    assert by["gantk-cold-first"].median_s > by["gantk-steady"].median_s


@pytest.mark.slow
@pytest.mark.parametrize("family", ["aphynity", "leads", "hidden", "node", "gantk"])
def test_compile_families_build_a_step_that_runs(family):
    import jax

    from benchmarks import compile as comp

    step, state, batch = comp.build(family)
    new, _ = jax.jit(step)(state, batch)
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(state)
    assert all(bool(jax.numpy.all(jax.numpy.isfinite(a))) for a in jax.tree_util.tree_leaves(new)
               if jax.numpy.issubdtype(a.dtype, jax.numpy.floating))


@pytest.mark.heavy
def test_gpu_suite_runs_at_tiny_size_and_keeps_its_record(tmp_path, capsys, monkeypatch):
    # the accelerator suite's code path, at toy sizes on the host (so it never rots); without
    # the torch references (as without the [bench] extra): their agreement checks are tuned
    # for the default XLA flags, not for make test's fast-compile ones
    monkeypatch.setenv("DYNAJAX_BENCH_REFERENCES", "0")
    assert main(["--suite", "gpu", "--tiny", "--repeats", "5", "--out", str(tmp_path)]) == 0
    records = list(tmp_path.glob("*-tiny.json"))
    assert len(records) == 1 and records[0].with_suffix(".md").exists()
    payload = json.loads(records[0].read_text())
    from benchmarks.gpu_suite import WORKLOADS

    assert {r["workload"] for r in payload["rows"]} == set(WORKLOADS)
    assert all(r["median_s"] > 0 for r in payload["rows"])
    assert any(f"suite: {len(WORKLOADS)} workloads" in n for n in payload["notes"])
    with pytest.raises(SystemExit):  # a second run does not overwrite the record
        main(["--suite", "gpu", "--tiny", "--repeats", "5", "--out", str(tmp_path)])
    assert "already holds a suite record" in capsys.readouterr().err
