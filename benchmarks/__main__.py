"""``python -m benchmarks NAME [NAME ...] [--json FILE] [--repeats N]``; ``NAME`` may be ``all``.

``python -m benchmarks --suite gpu [--tiny] [--out DIR] [--force]``: the accelerator suite
(:mod:`benchmarks.gpu_suite`), its record in ``DIR/<device>.json`` (default ``results/benchmarks``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from benchmarks import harness


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time dynajax workloads against their reference implementations. "
        + harness.RATIO_CONVENTION + ".",
    )
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="workload name(s), or 'all'; known: " + ", ".join(sorted(harness.WORKLOADS)))
    p.add_argument("--json", metavar="FILE", help="also write the rows (and environment) as JSON")
    p.add_argument("--repeats", type=int, default=10,
                   help=f"timed repeats per impl, median taken (>= {harness.MIN_REPEATS}; default 10)")
    p.add_argument("--suite", choices=["gpu"], help="run a suite instead of named workloads")
    p.add_argument("--tiny", action="store_true", help="the suite at toy sizes (a smoke test)")
    p.add_argument("--out", default="results/benchmarks", help="the suite's record directory")
    p.add_argument("--force", action="store_true", help="replace the suite record of this device")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < harness.MIN_REPEATS:
        parser.error(f"--repeats must be >= {harness.MIN_REPEATS}, got {args.repeats}")
    if args.suite:
        if args.names or args.json:
            parser.error("--suite runs its own workloads and writes its record under --out; give no NAME or --json")
        from benchmarks.gpu_suite import run_suite

        try:
            path = run_suite(args.out, tiny=args.tiny, repeats=args.repeats, force=args.force)
        except ValueError as e:
            parser.error(str(e))
        print(path.with_suffix(".md").read_text())
        print(f"wrote {path}")
        return 0
    if not args.names:
        parser.error("give workload name(s), 'all', or --suite")
    try:
        names = harness.resolve_names(args.names)
    except ValueError as e:
        parser.error(str(e))  # exits with status 2 and the message on stderr
    ctx = harness.Context(repeats=args.repeats)
    rows = harness.run_workloads(names, ctx)
    print(harness.format_table(rows))
    if ctx.notes:
        print("\nnotes:")
        for n in ctx.notes:
            print(f"  - {n}")
    if args.json:
        harness.write_json(args.json, rows, ctx.notes)
        print(f"\nwrote {len(rows)} rows to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
