"""``python -m benchmarks NAME [NAME ...] [--json FILE] [--repeats N]``; ``NAME`` may be ``all``."""

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
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="workload name(s), or 'all'; known: " + ", ".join(sorted(harness.WORKLOADS)))
    p.add_argument("--json", metavar="FILE", help="also write the rows (and environment) as JSON")
    p.add_argument("--repeats", type=int, default=10,
                   help=f"timed repeats per impl, median taken (>= {harness.MIN_REPEATS}; default 10)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < harness.MIN_REPEATS:
        parser.error(f"--repeats must be >= {harness.MIN_REPEATS}, got {args.repeats}")
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
