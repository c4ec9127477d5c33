"""The scorecard: ``results/README.md``, generated from the run records and nothing else.

Each record ``results/<experiment>/<scale>/{metrics.json, run.json}`` gives one row: its
status (computed from the band and trend checks, :func:`dynajax.experiments.results.status`),
its headline number (the first band check) beside the paper's, its wall time, hardware and
date. Registered experiments without a record at a scale are listed as not run, with the
wall time a timed slice estimates for that run where one was measured (``estimate.json``,
:mod:`dynajax.experiments.estimate`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from dynajax._io import atomic_write_text
from dynajax.experiments.results import STATUSES, fmt_number

RECORD_SCALES = ("quick", "full", "gpu")
NOT_RUN = "not run"
START, END = "<!-- scorecard-summary:start -->", "<!-- scorecard-summary:end -->"


def load_records(results: Path) -> list[dict]:
    """Every ``metrics.json`` under ``results/<experiment>/<scale>/`` with its ``run.json``.

    Raises:
        ValueError: a record that is not valid JSON or lacks ``run.json``, named by path.
    """
    records = []
    for path in sorted(Path(results).glob("*/*/metrics.json")):
        run_path = path.with_name("run.json")
        try:
            metrics = json.loads(path.read_text())
            run = json.loads(run_path.read_text())
        except FileNotFoundError as e:
            raise ValueError(f"record {path.parent} has no run.json") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"record {path.parent}: invalid JSON ({e})") from e
        records.append({"dir": path.parent.relative_to(results).as_posix(), "metrics": metrics, "run": run})
    return records


def load_estimates(results: Path) -> dict[tuple[str, str], dict]:
    """Every ``estimate.json`` under ``results/<experiment>/<scale>/``, by (experiment, scale).

    Raises:
        ValueError: an estimate that is not valid JSON, named by path.
    """
    out = {}
    for path in sorted(Path(results).glob("*/*/estimate.json")):
        try:
            est = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"estimate {path}: invalid JSON ({e})") from e
        out[(est["experiment"], est["scale"])] = est
    return out


def fmt_duration(seconds: float) -> str:
    """``seconds`` as ``"40 s"``, ``"12 min"`` or ``"3.2 h"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _not_run_row(name: str, scale: str, est: dict | None) -> str:
    if est is None:
        return f"| {name} | {scale} | {NOT_RUN} | | | | | |"
    fractions = " and ".join(f"{100 * s['fraction']:.2g}%" for s in est["slices"])
    hw = _hardware({"hardware": est["hardware"], "load_average": est["slices"][0]["load_average"]})
    return (f"| {name} | {scale} | {NOT_RUN} | needs about {fmt_duration(est['estimate_seconds'])} "
            f"(timed slices at {fractions} of the steps) | | ~{fmt_duration(est['estimate_seconds'])} "
            f"| {hw} | {est['started'][:10]} |")


def _headline(metrics: dict) -> str:
    for c in metrics["checks"]:
        if c.get("kind") == "band":
            return f"{c['name']}: {fmt_number(c.get('measured'))} vs {fmt_number(c.get('reference'))}"
    return "no band check"


def _checks(metrics: dict) -> str:
    def count(kind):
        cs = [c for c in metrics["checks"] if c.get("kind", "trend") == kind]
        return f"{sum(c['passed'] for c in cs)}/{len(cs)}"

    return f"band {count('band')}, trend {count('trend')}"


def _hardware(run: dict) -> str:
    hw = run["hardware"]
    where = ", ".join(hw["accelerators"]) if hw["accelerators"] else f"{hw['cores']} CPU cores"
    start, end = run["load_average"].get("start"), run["load_average"].get("end")
    if not start:
        return where
    # the 1-minute load average when the run started and when it ended
    return f"{where}, load {start[0]:.1f}" + (f" -> {end[0]:.1f}" if end else "")


def render(records: list[dict], registered: Iterable[str], estimates: dict[tuple[str, str], dict] | None = None) -> str:
    """The scorecard markdown; deterministic in its inputs (no clock, no machine state)."""
    registered, estimates = list(registered), estimates or {}
    by_key = {(r["metrics"]["experiment"], r["metrics"]["scale"]): r for r in records}
    names = sorted(set(registered) | {k[0] for k in by_key})
    counts = _counts(records, registered)
    lines = []
    for name in names:
        for scale in RECORD_SCALES:
            rec = by_key.get((name, scale))
            if rec is None:
                if scale != "gpu" or (name, scale) in estimates:
                    lines.append(_not_run_row(name, scale, estimates.get((name, scale))))
                continue
            m, run = rec["metrics"], rec["run"]
            lines.append(
                f"| [{name}]({rec['dir']}/report.md) | {scale} | **{m['status']}** | {_headline(m)} | "
                f"{_checks(m)} | {run['wall_seconds']:.0f} s | {_hardware(run)} | {run['started'][:10]} |"
            )
    summary = _summary_lines(counts)
    return "\n".join([
        "# Scorecard",
        "",
        "Generated by `dynajax scorecard` from the run records in this directory "
        "(`<experiment>/<scale>/{metrics.json, run.json, report.md}`); do not edit by hand.",
        "",
        "Status: **reproduced** when the experiment has band checks (a headline number within a stated "
        "band of the paper's value) and every check passes; **trend** when every trend check (orderings, "
        "improvements) passes but a band check fails or none exists; **not reproduced** otherwise.",
        "",
        "## Summary",
        "",
        *summary,
        "",
        "## Records",
        "",
        "| experiment | scale | status | headline: measured vs paper | checks passed | wall | hardware | date |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
        "",
    ])


def _counts(records: list[dict], registered: Iterable[str]) -> dict[str, dict[str, int]]:
    by_key = {(r["metrics"]["experiment"], r["metrics"]["scale"]): r for r in records}
    names = set(registered) | {k[0] for k in by_key}
    counts = {s: dict.fromkeys((*STATUSES, NOT_RUN), 0) for s in RECORD_SCALES}
    for name in names:
        for scale in RECORD_SCALES:
            rec = by_key.get((name, scale))
            if rec is not None:
                counts[scale][rec["metrics"]["status"]] += 1
            elif scale != "gpu":
                counts[scale][NOT_RUN] += 1
    return counts


def _summary_lines(counts: dict[str, dict[str, int]]) -> list[str]:
    lines = ["| scale | " + " | ".join((*STATUSES, NOT_RUN)) + " |", "|---" * (len(STATUSES) + 2) + "|"]
    for scale in RECORD_SCALES:
        if scale == "gpu" and not any(counts["gpu"][s] for s in STATUSES):
            continue
        lines.append(f"| {scale} | " + " | ".join(str(counts[scale][s]) for s in (*STATUSES, NOT_RUN)) + " |")
    return lines


def readme_block(records: list[dict], registered: Iterable[str]) -> str:
    """The summary table for the project README, between its scorecard-summary markers."""
    return "\n".join([START, *_summary_lines(_counts(records, registered)), "",
                      "Every row, with its headline number beside the paper's: [results/README.md](results/README.md).",
                      END])


def with_readme_block(readme: str, block: str) -> str:
    """``readme`` with the text between the markers replaced by ``block``.

    Raises:
        ValueError: the README lacks the markers.
    """
    i, j = readme.find(START), readme.find(END)
    if i < 0 or j < i:
        raise ValueError(f"the README has no {START} ... {END} markers")
    return readme[:i] + block + readme[j + len(END):]


def summary_table(records: list[dict]) -> list[str]:
    """Status counts and one line per record, for the terminal."""
    lines = [f"  {r['metrics']['experiment']:<24} {r['metrics']['scale']:<6} {r['metrics']['status']:<15} "
             f"{_headline(r['metrics'])}" for r in records]
    tally = {s: sum(r["metrics"]["status"] == s for r in records) for s in STATUSES}
    return lines + ["  " + ", ".join(f"{v} {k}" for k, v in tally.items())]


def committed_summary(records: list[dict]) -> list[str]:
    """Status counts per scale, one line each, for the terminal."""
    lines = []
    for scale in RECORD_SCALES:
        at = [r for r in records if r["metrics"]["scale"] == scale]
        if at:
            tally = ", ".join(f"{sum(r['metrics']['status'] == s for r in at)} {s}" for s in STATUSES)
            lines.append(f"  {scale}: {len(at)} records: {tally}")
    return lines or ["  no records yet"]


def stale_files(results: Path, registered: Iterable[str], readme: Path | None = None) -> list[Path]:
    """The files :func:`write_scorecard` would change (empty when all are up to date)."""
    registered = list(registered)
    records = load_records(results)
    card = Path(results) / "README.md"
    text = render(records, registered, load_estimates(results))
    stale = [] if card.exists() and card.read_text() == text else [card]
    if readme is not None:
        text = readme.read_text()
        if with_readme_block(text, readme_block(records, registered)) != text:
            stale.append(readme)
    return stale


def write_scorecard(results: Path, registered: Iterable[str], readme: Path | None = None) -> list[Path]:
    """Regenerates ``results/README.md`` (and the summary block of ``readme``); returns the paths."""
    registered = list(registered)
    records = load_records(results)
    card = Path(results) / "README.md"
    atomic_write_text(card, render(records, registered, load_estimates(results)))
    if readme is None:
        return [card]
    atomic_write_text(readme, with_readme_block(readme.read_text(), readme_block(records, registered)))
    return [card, readme]
