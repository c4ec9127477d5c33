"""Results of an experiment and the files that record them (``metrics.json``, ``report.md``).

The ``metrics.json`` layout is a contract (DESIGN.md): method and metric names are stable
identifiers; add, don't rename.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from dynajax._io import atomic_write_bytes, atomic_write_text


@dataclasses.dataclass(frozen=True)
class Row:
    """One method's measured metrics (one value per seed) and the published reference."""

    method: str
    values: Mapping[str, Sequence[float]]
    reference: Mapping[str, float | None] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        metrics = {}
        for name, vals in self.values.items():
            v = np.asarray(vals, dtype=np.float64).ravel()
            metrics[name] = {
                "mean": _num(np.mean(v)) if v.size else None,
                "std": _num(np.std(v)) if v.size else None,
                "values": [_num(x) for x in v],
            }
        return {"method": self.method, "metrics": metrics, "reference": dict(self.reference)}


@dataclasses.dataclass(frozen=True)
class Check:
    """A pass/fail criterion of the reproduction, with what was compared."""

    name: str
    passed: bool
    detail: str = ""


@dataclasses.dataclass
class Result:
    """What an experiment's ``run`` returns.

    Attributes:
        rows: measured metrics per method.
        checks: the criteria that say whether the reproduction holds.
        figures: file names (relative to the output directory) of the PNGs written.
        notes: free text for the report and metrics.json (protocol, deviations from the paper).
    """

    rows: list[Row]
    checks: list[Check] = dataclasses.field(default_factory=list)
    figures: list[str] = dataclasses.field(default_factory=list)
    notes: str = ""


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def metrics_dict(
    name: str, scale: str, seeds: int, wall_seconds: float, versions: dict, result: Result
) -> dict:
    """The ``metrics.json`` content."""
    return {
        "experiment": name,
        "scale": scale,
        "seeds": seeds,
        "wall_seconds": round(wall_seconds, 3),
        "versions": versions,
        "rows": [r.to_json() for r in result.rows],
        "checks": [dataclasses.asdict(c) for c in result.checks],
        "notes": result.notes.strip(),
    }


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    x = float(x)
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def table_lines(metrics: dict) -> list[str]:
    """A markdown table of measured (mean +/- std over seeds) vs reference values."""
    lines = ["| method | metric | measured (mean ± std) | reference |", "|---|---|---|---|"]
    for row in metrics["rows"]:
        for metric, s in row["metrics"].items():
            measured = f"{_fmt(s['mean'])} ± {_fmt(s['std'])}" if s["mean"] is not None else "-"
            ref = row["reference"].get(metric)
            lines.append(f"| {row['method']} | {metric} | {measured} | {_fmt(ref)} |")
    return lines


def report_markdown(metrics: dict, result: Result) -> str:
    """The ``report.md`` content."""
    out = [
        f"# {metrics['experiment']}",
        "",
        f"scale `{metrics['scale']}`, {metrics['seeds']} seeds, "
        f"{metrics['wall_seconds']:.1f} s wall, "
        + ", ".join(f"{k} {v}" for k, v in metrics["versions"].items()),
        "",
        *table_lines(metrics),
        "",
        "## Checks",
        "",
    ]
    for c in metrics["checks"]:
        out.append(f"- [{'x' if c['passed'] else ' '}] **{c['name']}**: {c['detail']}")
    if result.notes:
        out += ["", "## Notes", "", result.notes.strip()]
    if result.figures:
        out += ["", "## Figures", ""] + [f"![{f}]({f})" for f in result.figures]
    return "\n".join(out) + "\n"


def write_outputs(out_dir: Path, metrics: dict, result: Result) -> None:
    """Writes ``metrics.json`` and ``report.md`` atomically into ``out_dir``."""
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out_dir / "report.md", report_markdown(metrics, result))


def save_figure(fig, path: Path) -> str:
    """Saves a matplotlib figure as PNG atomically; returns the file name."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path.name
