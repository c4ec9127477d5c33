"""Benchmark mechanics: the workload registry, timing, result rows, the table and the JSON file.

A workload is a function ``run(ctx: Context) -> list[Row]`` registered under a name with
:func:`register`. Each :class:`Row` names the implementation it is compared with (``ref``);
:func:`fill_ratios` then sets ``ratio_vs_ref = median_s(ref) / median_s(row)``, so a ratio
above 1 means this implementation is faster than the reference. The reference row itself
gets 1.0, and every row whose reference was not measured (an optional baseline such as
torch is not installed) gets ``None`` (``null`` in JSON).

Rows written by ``python -m benchmarks NAME --json FILE``::

    {"workload": "integrate", "impl": "dynajax-fwd", "median_s": 0.012,
     "per_unit": 1.2e-07, "ratio_vs_ref": 2.5, "unit": "trajectory-step",
     "units": 102400, "ref": "torchdiffeq-fwd", "compile_s": 0.4, "repeats": 10,
     "times_s": [...]}

The first five keys are the contract; the others are extra information.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "WORKLOADS",
    "Context",
    "Row",
    "Timing",
    "block",
    "check_first_step",
    "compiled_step",
    "fill_ratios",
    "format_table",
    "import_reference",
    "register",
    "resolve_names",
    "run_workloads",
    "time_fn",
    "time_interleaved",
    "write_json",
    "RATIO_CONVENTION",
]

RATIO_CONVENTION = (
    "ratio_vs_ref = median_s(ref) / median_s(impl): >1 means impl is faster than its "
    "reference; the reference row is 1.0; null when the reference was not measured"
)

MIN_REPEATS = 5


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    description: str
    run: Callable[["Context"], list["Row"]]


# name -> Workload; filled by @register in the workload modules (imported by benchmarks/__init__).
WORKLOADS: dict[str, Workload] = {}


def register(name: str, description: str) -> Callable[[Callable], Callable]:
    """Decorator: registers ``run(ctx) -> list[Row]`` as the workload ``name``."""
    if name == "all":
        raise ValueError("'all' is reserved: it selects every workload")

    def deco(fn: Callable[[Context], list[Row]]) -> Callable[[Context], list[Row]]:
        if name in WORKLOADS and WORKLOADS[name].run is not fn:
            raise ValueError(f"workload {name!r} is registered twice")
        WORKLOADS[name] = Workload(name, description, fn)
        return fn

    return deco


@dataclasses.dataclass
class Context:
    """What a workload gets from the runner: the repeat count and a place for notes."""

    repeats: int = 10
    warmup: int = 1
    notes: list[str] = dataclasses.field(default_factory=list)
    echo: bool = True

    def note(self, msg: str) -> None:
        """Records a note for the report (and prints it at once): skipped rows, checks."""
        self.notes.append(msg)
        if self.echo:
            print(f"note: {msg}", flush=True)

    def time(self, fn: Callable[[], Any], sync: Callable[[Any], Any] | None = None) -> "Timing":
        return time_fn(fn, repeats=self.repeats, warmup=self.warmup, sync=sync)

    def time_interleaved(
        self, fns: dict[str, Callable[[], Any]], syncs: dict[str, Callable[[Any], Any]] | None = None
    ) -> dict[str, "Timing"]:
        return time_interleaved(fns, repeats=self.repeats, warmup=self.warmup, syncs=syncs)


@dataclasses.dataclass
class Timing:
    median_s: float
    times_s: list[float]
    warmup_s: list[float]


def import_reference(ctx: Context, workload: str, *modules: str) -> tuple[Any, ...]:
    """The reference implementation's modules, or ``None`` for each (with a note) if missing.

    When ``torch`` is among them, ``DYNAJAX_BENCH_TORCH_THREADS`` (if set) fixes its
    intra-op threads. ``DYNAJAX_BENCH_REFERENCES=0`` skips every reference (dynajax rows only).
    """
    try:
        if os.environ.get("DYNAJAX_BENCH_REFERENCES", "1") == "0":
            raise ImportError("references turned off by DYNAJAX_BENCH_REFERENCES=0")
        found = tuple(importlib.import_module(m) for m in modules)
    except ImportError as e:
        ctx.note(f"{workload}: {'/'.join(modules)} not importable ({e}); install the [bench] extra; ratio null")
        return (None,) * len(modules)
    threads = os.environ.get("DYNAJAX_BENCH_TORCH_THREADS")
    if threads and "torch" in modules:
        found[modules.index("torch")].set_num_threads(int(threads))
    return found


def check_first_step(ctx: Context, name: str, loss: float, ref_loss: float, weight_diff: float,
                     rtol: float, atol: float) -> None:
    """Raises unless one step from the same weights agrees with the reference (loss to
    ``rtol`` relative, weights to ``atol``); notes the agreement otherwise."""
    if not abs(loss - ref_loss) <= rtol * abs(ref_loss):
        raise RuntimeError(f"{name} benchmark: first-step loss dynajax {loss} vs reference {ref_loss}")
    if not weight_diff <= atol:
        raise RuntimeError(f"{name} benchmark: weights differ by {weight_diff} after one step")
    ctx.note(f"check first {name} step: loss {loss:.6f} vs reference {ref_loss:.6f}; max |dW| {weight_diff:.1e}")


def compiled_step(step: Callable, state0: Any, batch: Any) -> tuple[Callable, Callable[[], Any], float]:
    """``(compiled step, call advancing a held state and returning its loss, compile seconds)``
    for a training ``step(state, batch) -> (state, metrics)``."""
    import jax

    t0 = time.perf_counter()
    f = jax.jit(step).lower(state0, batch).compile()
    compile_s = time.perf_counter() - t0
    holder = {"s": state0}

    def call():
        holder["s"], m = f(holder["s"], batch)
        return m["loss"]

    return f, call, compile_s


def block(x: Any) -> Any:
    """Waits for every JAX array in ``x`` (a pytree) to be computed; other leaves pass through.

    JAX dispatches asynchronously, so a timer stopped before this would measure dispatch only.
    jax is imported only if ``x`` may hold JAX arrays, so torch-only callers do not pay for it.
    """
    if "jax" in sys.modules:
        import jax

        return jax.block_until_ready(x)
    return x


def time_fn(
    fn: Callable[[], Any],
    *,
    repeats: int = 10,
    warmup: int = 1,
    sync: Callable[[Any], Any] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Times ``fn()``: ``warmup`` untimed calls, then the median of ``repeats`` timed calls.

    Args:
        fn: the call to time, with no arguments. Compile JAX code before (see
            ``jax.jit(f).lower(...).compile()``) so that no compile lands in a timed call.
        repeats: timed calls (>= 1; the command line asks for >= 5).
        warmup: untimed calls first (caches, allocator, thread pools).
        sync: applied to each result inside the timed region; defaults to :func:`block`.
        clock: the timer (seconds).

    Returns:
        :class:`Timing` with the median, each timed call and each warm-up call, in seconds.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    sync = block if sync is None else sync
    warm = []
    for _ in range(warmup):
        t0 = clock()
        sync(fn())
        warm.append(clock() - t0)
    times = []
    for _ in range(repeats):
        t0 = clock()
        sync(fn())
        times.append(clock() - t0)
    return Timing(statistics.median(times), times, warm)


def time_interleaved(
    fns: dict[str, Callable[[], Any]],
    *,
    repeats: int = 10,
    warmup: int = 1,
    syncs: dict[str, Callable[[Any], Any]] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Like :func:`time_fn` for several calls, run round-robin (a, b, c, a, b, c, ...).

    Implementations that are compared with each other are timed in turn, so a change of
    machine load during the run (other processes, thermal) weighs on all of them alike
    instead of on whichever happened to run then. ``syncs`` maps a name to its sync
    (default :func:`block`).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    syncs = syncs or {}
    warm: dict[str, list[float]] = {k: [] for k in fns}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            sync = syncs.get(name, block)
            t0 = clock()
            sync(fn())
            (warm if i < warmup else times)[name].append(clock() - t0)
    return {k: Timing(statistics.median(times[k]), times[k], warm[k]) for k in fns}


@dataclasses.dataclass
class Row:
    """One measured implementation of a workload.

    ``per_unit = median_s / units``; ``unit`` says what one unit is (e.g. ``trajectory-step``:
    one RK step of one trajectory of the batch). ``ref`` is the impl this row is compared with
    (the reference row names itself); ``ratio_vs_ref`` is filled in by :func:`fill_ratios`.
    """

    workload: str
    impl: str
    median_s: float
    units: float
    unit: str
    ref: str | None = None
    compile_s: float | None = None
    times_s: list[float] = dataclasses.field(default_factory=list)
    ratio_vs_ref: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_timing(cls, workload: str, impl: str, timing: Timing, **kw) -> "Row":
        return cls(workload, impl, timing.median_s, times_s=list(timing.times_s), **kw)

    @property
    def per_unit(self) -> float:
        return self.median_s / self.units

    def to_dict(self) -> dict[str, Any]:
        d = {
            "workload": self.workload,
            "impl": self.impl,
            "median_s": self.median_s,
            "per_unit": self.per_unit,
            "ratio_vs_ref": self.ratio_vs_ref,
            "unit": self.unit,
            "units": self.units,
            "ref": self.ref,
            "compile_s": self.compile_s,
            "repeats": len(self.times_s),
            "times_s": self.times_s,
        }
        d.update(self.extra)
        return d


def fill_ratios(rows: Sequence[Row]) -> list[Row]:
    """Sets ``ratio_vs_ref`` on every row: its reference's median over its own median.

    The reference of a row is the row of the same workload whose ``impl`` is ``row.ref``.
    Rows without ``ref``, or whose reference is absent, get ``None``.
    """
    by_key = {(r.workload, r.impl): r for r in rows}
    for r in rows:
        ref = by_key.get((r.workload, r.ref)) if r.ref is not None else None
        r.ratio_vs_ref = None if ref is None else ref.median_s / r.median_s
    return list(rows)


def resolve_names(names: Sequence[str], registry: dict[str, Workload] | None = None) -> list[str]:
    """Expands ``all`` and checks every name; raises ``ValueError`` naming the known ones."""
    registry = WORKLOADS if registry is None else registry
    out: list[str] = []
    for name in names:
        if name == "all":
            picked = list(registry)
        elif name in registry:
            picked = [name]
        else:
            known = ", ".join(sorted(registry)) or "(none registered)"
            raise ValueError(f"unknown workload {name!r}; known workloads: {known}, or 'all'")
        out += [n for n in picked if n not in out]
    return out


def run_workloads(names: Sequence[str], ctx: Context | None = None) -> list[Row]:
    """Runs the named workloads (``all`` for every one) in this process; returns the rows."""
    ctx = Context() if ctx is None else ctx
    rows: list[Row] = []
    for name in resolve_names(names):
        got = WORKLOADS[name].run(ctx)
        for r in got:
            if r.workload != name:
                raise RuntimeError(f"workload {name!r} returned a row for {r.workload!r}")
        rows += got
    return fill_ratios(rows)


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table of the rows, with the ratio convention in the header."""
    head = ["workload", "impl", "median_s", "per_unit", "unit", "compile_s", "vs ref", "ratio_vs_ref", "GFLOP/s", "peak"]
    body = [
        [
            r.workload,
            r.impl,
            _fmt(r.median_s, ".4g"),
            _fmt(r.per_unit, ".3e"),
            r.unit,
            _fmt(r.compile_s, ".3g"),
            r.ref or "-",
            _fmt(r.ratio_vs_ref, ".2f"),
            _fmt(r.extra.get("gflop_per_s"), ".3g"),
            _fmt(r.extra.get("peak_fraction"), ".1%"),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [f"# {RATIO_CONVENTION}", "# per_unit = median_s / units; median over timed repeats after warm-up; compile_s excluded from median_s",
           "# GFLOP/s: matmul FLOPs of the step (counted on its jaxpr) / median_s; peak: that rate / the f32 GEMM rate"]
    out += [line(head), line(["-" * w for w in widths])]
    out += [line(b) for b in body]
    return "\n".join(out)


def environment() -> dict[str, Any]:
    """Versions and machine facts stored next to the rows."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    if hasattr(os, "getloadavg"):
        env["loadavg_1_5_15min_at_write"] = list(os.getloadavg())
    for mod in ("dynajax", "jax", "jaxlib", "diffrax", "equinox", "torch", "torchdiffeq"):
        m = sys.modules.get(mod)
        if m is not None:
            env[mod] = getattr(m, "__version__", "?")
    if "jax" in sys.modules:
        import jax

        env["jax_backend"] = jax.default_backend()
    if sys.modules.get("torch") is not None:
        env["torch_num_threads"] = sys.modules["torch"].get_num_threads()
    return env


def write_json(path: str | os.PathLike, rows: Sequence[Row], notes: Sequence[str] = ()) -> None:
    """Writes ``{"rows": [...], "ratio_convention", "notes", "environment"}`` to ``path``."""
    payload = {
        "rows": [r.to_dict() for r in rows],
        "ratio_convention": RATIO_CONVENTION,
        "notes": list(notes),
        "environment": environment(),
    }
    from dynajax._io import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
