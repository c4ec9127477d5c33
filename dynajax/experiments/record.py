"""``run.json``: where, when and with what a run record was made.

A number in ``results/`` is only as good as what can be said of the run that wrote it: the
commit (and whether the tree had uncommitted changes), the package versions, the hardware,
the load average around the run (a loaded machine stretches wall times), the seeds and the
full configuration.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from dynajax.cpu_dispatch import usable_cores

_PACKAGES = ("dynajax", "jax", "jaxlib", "flax", "optax", "diffrax", "equinox", "ott-jax", "numpy", "POT")


def versions() -> dict[str, str]:
    """Python and the installed versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state(cwd: Path | None = None) -> dict[str, str | bool | None]:
    """``{"commit", "dirty"}`` of the checkout holding this package (``None`` outside git).

    ``dirty``: a tracked file differs from the commit, records under ``results/`` aside (a run
    that writes its record into the checkout does not make the next run's code dirty).
    """
    where = cwd or Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)results") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict:
    """CPU model, the cores this process may run on (its affinity, e.g. under ``taskset``) and the
    accelerators JAX sees."""
    import jax

    devices = jax.devices()
    accel = sorted({d.device_kind for d in devices if d.platform != "cpu"})
    return {
        "cpu": _cpu_model(),
        "cores": usable_cores(),
        "platform": devices[0].platform,
        "accelerators": [f"{len([d for d in devices if d.device_kind == k])} x {k}" for k in accel],
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_record(*, experiment: str, scale: str, seeds: tuple[int, ...], config: dict, overrides: list[str],
               started: str, wall_seconds: float, load_start: list[float] | None) -> dict:
    """The ``run.json`` content of a finished run."""
    return {
        "experiment": experiment,
        "scale": scale,
        "command": " ".join(["dynajax", *sys.argv[1:]]) if Path(sys.argv[0]).name in ("dynajax", "__main__.py") else None,
        "started": started,
        "finished": now_utc(),
        "wall_seconds": round(wall_seconds, 1),
        "load_average": {"start": load_start, "end": load_average()},
        "seeds": list(seeds),
        "overrides": list(overrides),
        "config": config,
        **git_state(),
        "versions": versions(),
        "hardware": hardware(),
    }
