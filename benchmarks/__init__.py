"""dynajax benchmarks: each workload timed side by side with its reference implementation.

Run ``python -m benchmarks NAME [--json FILE]`` (``NAME`` may be ``all``). Workloads register
themselves in :data:`benchmarks.harness.WORKLOADS` when their module is imported below.
Optional references (torch, torchdiffeq, POT: the ``[bench]`` extra) are imported only inside
the workloads; when one is missing its rows are skipped with a printed note.
"""

from benchmarks.harness import WORKLOADS, Context, Row, register, run_workloads, time_fn

from benchmarks import integrate  # noqa: F401  (registers "integrate")
from benchmarks import sliced  # noqa: F401  (registers "sliced")

__all__ = ["WORKLOADS", "Context", "Row", "register", "run_workloads", "time_fn"]
