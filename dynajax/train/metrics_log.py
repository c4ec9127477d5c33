"""A CSV of per-chunk training metrics, written as a run goes, so it can be watched.

One row per chunk of :func:`dynajax.train.fit`: the step reached, the chunk's mean of every
logged metric (over steps, seeds and models) and the validation loss when there is one.
The file is rebuilt from the history when a run resumes from a checkpoint, so it never
holds rows of steps the checkpoint does not (no lost and no duplicated rows).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from dynajax._io import atomic_write_text


def chunk_rows(history: dict[str, list], chunk_ends: list[int]) -> list[dict[str, float]]:
    """Rows of the chunks ending at ``chunk_ends`` from a per-step ``history``.

    ``history`` holds per-step metric lists (one entry per step) and optionally
    ``val_loss`` / ``val_step`` (one entry per validation).
    """
    val = dict(zip((int(s) for s in history.get("val_step", [])), history.get("val_loss", [])))
    per_step = {k: v for k, v in history.items() if k not in ("val_loss", "val_step")}
    rows, start = [], 0
    for end in chunk_ends:
        row = {"step": end}
        for k, v in sorted(per_step.items()):
            row[k] = float(np.mean(np.asarray(v[start:end], np.float64)))
        if end in val:
            row["val_loss"] = float(np.mean(np.asarray(val[end], np.float64)))
        rows.append(row)
        start = end
    return rows


class MetricsCSV:
    """Appends rows to ``path``; :meth:`rewrite` replaces the file with the given rows."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.columns: list[str] | None = None

    def rewrite(self, rows: list[dict[str, float]]) -> None:
        self.columns = list(rows[0]) if rows else None
        buf = io.StringIO()
        if rows:
            w = csv.DictWriter(buf, fieldnames=self.columns)
            w.writeheader()
            w.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def append(self, row: dict[str, float]) -> None:
        if self.columns is None or not self.path.exists() or self.path.stat().st_size == 0:
            self.rewrite([row])
            return
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(row)
            f.flush()
