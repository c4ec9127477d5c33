"""The ``dynajax`` command: ``list``, ``reproduce NAME | --suite quick``, ``report DIR``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dynajax.experiments import experiment_names, get_experiment, reproduce
from dynajax.experiments.registry import SCALES
from dynajax.experiments.results import table_lines


def _print_metrics(metrics: dict) -> int:
    """Prints the measured-vs-reference table and the checks; returns the failed count."""
    print(f"\n## {metrics['experiment']} ({metrics['scale']}, {metrics['seeds']} seeds, "
          f"{metrics['wall_seconds']:.1f} s)")
    print("\n".join(table_lines(metrics)))
    failed = [c for c in metrics["checks"] if not c["passed"]]
    for c in metrics["checks"]:
        print(f"  [{'PASS' if c['passed'] else 'FAIL'}] {c['name']}: {c['detail']}")
    return len(failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynajax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered experiments")
    rep = sub.add_parser("reproduce", help="run an experiment and write metrics.json, report.md, figures")
    rep.add_argument("name", nargs="?", help="experiment name (see `dynajax list`)")
    rep.add_argument("--suite", choices=["quick"], help="run every experiment of a suite")
    rep.add_argument("--scale", default="quick", choices=SCALES)
    rep.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the experiment's)")
    rep.add_argument("--out", default="runs", help="output directory (default: runs)")
    show = sub.add_parser("report", help="print the table of an existing run directory")
    show.add_argument("dirs", nargs="+", help="run directories holding metrics.json")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            names = experiment_names()
            width = max(map(len, names))
            for name in names:
                print(f"{name:<{width}}  {get_experiment(name).description}")
            return 0
        if args.command == "report":
            failed = 0
            for d in args.dirs:
                path = Path(d) / "metrics.json"
                if not path.is_file():
                    raise ValueError(f"no metrics.json in {d}")
                failed += _print_metrics(json.loads(path.read_text()))
            return 1 if failed else 0
        if (args.name is None) == (args.suite is None):
            raise ValueError("give exactly one of an experiment NAME or --suite quick")
        names = experiment_names(args.suite) if args.suite else [args.name]
        for name in names:  # fail on bad names before running anything
            get_experiment(name)
        failed = 0
        for name in names:
            metrics = reproduce(name, scale=args.scale, seeds=args.seeds, out=args.out)
            failed += _print_metrics(metrics)
            print(f"  wrote {Path(args.out) / name}/metrics.json, report.md")
        if failed:
            print(f"\n{failed} check(s) failed", file=sys.stderr)
        return 1 if failed else 0
    except ValueError as e:
        print(f"dynajax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
