"""dynajax benchmarks: each workload timed side by side with its reference implementation.

Run ``python -m benchmarks NAME [--json FILE]`` (``NAME`` may be ``all``). Workloads register
themselves in :data:`benchmarks.harness.WORKLOADS` when their module is imported; every module
here other than the harness and ``__main__`` is imported below, so a workload is one file.
Optional references (torch, torchdiffeq, POT: the ``[bench]`` extra) are imported only inside
the workloads; when one is missing its rows are skipped with a printed note.
"""

import importlib
import pkgutil

from benchmarks.harness import WORKLOADS, Context, Row, register, run_workloads, time_fn

__all__ = ["WORKLOADS", "Context", "Row", "register", "run_workloads", "time_fn"]

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in {"harness", "__main__"} and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
