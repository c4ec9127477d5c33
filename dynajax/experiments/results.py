"""Results of an experiment and the files that record them (``metrics.json``, ``report.md``).

The ``metrics.json`` layout is a contract: method and metric names are stable identifiers;
add, don't rename. A check is a ``band`` check (a headline number within a stated band of the
paper's value) or a ``trend`` check (an ordering or an improvement); :func:`status` turns
them into the scorecard's status.
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


CHECK_KINDS = ("band", "trend")
BAND_SCALES = ("abs", "rel", "log10", "ln", "factor")
STATUSES = ("reproduced", "trend", "not reproduced")


@dataclasses.dataclass(frozen=True)
class Check:
    """A pass/fail criterion of the reproduction, with what was compared.

    Attributes:
        name: what is checked, in words.
        passed: whether it holds.
        detail: the measured values behind the verdict.
        kind: ``"band"`` (a number against the paper's within a band) or ``"trend"``.
        measured: the headline number of a band check.
        reference: the paper's value of a band check.
    """

    name: str
    passed: bool
    detail: str = ""
    kind: str = "trend"
    measured: float | None = None
    reference: float | None = None

    def __post_init__(self):
        if self.kind not in CHECK_KINDS:
            raise ValueError(f"unknown check kind {self.kind!r}; allowed: {', '.join(CHECK_KINDS)}")
        object.__setattr__(self, "passed", bool(self.passed))


def band(name: str, measured: float, reference: float, tol: float, scale: str = "abs") -> Check:
    """A band check: ``measured`` within ``tol`` of the paper's ``reference``.

    ``scale`` says how the distance is taken: ``abs`` ``|m - r|``, ``rel`` ``|m - r| / |r|``,
    ``log10`` and ``ln`` the absolute difference of logarithms, ``factor`` ``max(m/r, r/m)``
    (positive values). A non-finite ``measured`` fails.
    """
    if scale not in BAND_SCALES:
        raise ValueError(f"unknown band scale {scale!r}; allowed: {', '.join(BAND_SCALES)}")
    if not tol > 0:
        raise ValueError(f"band tolerance must be > 0, got {tol}")
    m, r = float(measured), float(reference)
    if scale in ("log10", "ln", "factor") and r <= 0:
        raise ValueError(f"band scale {scale!r} needs a positive reference, got {r}")
    if not math.isfinite(m) or scale in ("log10", "ln", "factor") and m <= 0:
        dist = math.inf
    elif scale == "abs":
        dist = abs(m - r)
    elif scale == "rel":
        dist = abs(m - r) / abs(r)
    elif scale == "log10":
        dist = abs(math.log10(m / r))
    elif scale == "ln":
        dist = abs(math.log(m / r))
    else:
        dist = max(m / r, r / m)
    what = {"abs": "|diff|", "rel": "rel. diff", "log10": "|log10 ratio|", "ln": "|ln ratio|", "factor": "factor"}[scale]
    detail = f"measured {fmt_number(m)} vs reference {fmt_number(r)}: {what} {fmt_number(dist)} (band {fmt_number(tol)})"
    return Check(name, dist <= tol, detail, "band", _num(m), r)


def status(checks: Sequence[Check] | Sequence[Mapping]) -> str:
    """``reproduced`` (band checks exist and every check passes), ``trend`` (every trend check
    passes, some band check fails or none exist) or ``not reproduced``."""
    rows = [dataclasses.asdict(c) if isinstance(c, Check) else c for c in checks]
    bands = [c for c in rows if c.get("kind", "trend") == "band"]
    trends = [c for c in rows if c.get("kind", "trend") == "trend"]
    if not all(c["passed"] for c in trends):
        return "not reproduced"
    if bands and all(c["passed"] for c in bands):
        return "reproduced"
    return "trend" if trends else "not reproduced"


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
    name: str, scale: str, seeds: Sequence[int], wall_seconds: float, versions: dict, result: Result
) -> dict:
    """The ``metrics.json`` content."""
    return {
        "experiment": name,
        "scale": scale,
        "seeds": len(seeds),
        "seed_values": list(seeds),
        "wall_seconds": round(wall_seconds, 3),
        "versions": versions,
        "rows": [r.to_json() for r in result.rows],
        "checks": [dataclasses.asdict(c) for c in result.checks],
        "status": status(result.checks),
        "notes": result.notes.strip(),
    }


def fmt_number(x) -> str:
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
            measured = f"{fmt_number(s['mean'])} ± {fmt_number(s['std'])}" if s["mean"] is not None else "-"
            ref = row["reference"].get(metric)
            lines.append(f"| {row['method']} | {metric} | {measured} | {fmt_number(ref)} |")
    return lines


def _seed_text(metrics: dict) -> str:
    vals = metrics.get("seed_values") or list(range(metrics["seeds"]))
    return f"{vals[0]}..{vals[-1]}" if len(vals) > 1 else str(vals[0])


def report_markdown(metrics: dict, result: Result) -> str:
    """The ``report.md`` content."""
    out = [
        f"# {metrics['experiment']}",
        "",
        f"status **{metrics['status']}**; scale `{metrics['scale']}`, seeds {_seed_text(metrics)}, "
        f"{metrics['wall_seconds']:.1f} s wall, "
        + ", ".join(f"{k} {v}" for k, v in metrics["versions"].items()),
        "",
        *table_lines(metrics),
        "",
        "## Checks",
        "",
    ]
    for c in metrics["checks"]:
        out.append(f"- [{'x' if c['passed'] else ' '}] ({c.get('kind', 'trend')}) **{c['name']}**: {c['detail']}")
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


def save_image_grid(panels: Sequence[tuple[str, Sequence, dict]], steps: Sequence[int], path: Path,
                    title: str = "", step_label: str = "t={}") -> str:
    """A grid of images, one row per panel and one column per step; saved as PNG.

    Args:
        panels: ``(row title, frames [n, H, W], imshow keywords)`` per row.
        steps: frame indices shown in the columns.
        path: the PNG file.
        title: figure title.
        step_label: format of the step in each image's title.

    Returns:
        The file name (:func:`save_figure`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), len(steps), figsize=(2.1 * len(steps), 2.1 * len(panels)), squeeze=False)
    for r, (name, frames, kw) in enumerate(panels):
        for j, s in enumerate(steps):
            axes[r, j].imshow(np.asarray(frames[s]), **kw)
            axes[r, j].set(xticks=[], yticks=[])
            axes[r, j].set_title(f"{name}, {step_label.format(s)}", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def median_seconds(fn, *args, repeats: int = 5) -> float:
    """Median wall time of ``fn(*args)`` over ``repeats`` calls after one untimed (compiling)
    call, each synchronised with ``jax.block_until_ready``."""
    import statistics
    import time

    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)
