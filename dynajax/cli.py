"""The ``dynajax`` command: ``list``, ``reproduce NAME | --suite demo|quick|gpu``, ``estimate NAME...``, ``report DIR``, ``scorecard``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from dynajax.compilation_cache import enable_compilation_cache
from dynajax.cpu_dispatch import use_sync_dispatch_on_one_core
from dynajax.experiments import experiment_names, get_experiment, reproduce
from dynajax.experiments.estimate import estimate
from dynajax.experiments.registry import SCALES, SUITES
from dynajax.experiments.runner import check_free, run_dir
from dynajax.experiments.results import table_lines
from dynajax.experiments.scorecard import committed_summary, fmt_duration, load_records, stale_files, summary_table, write_scorecard


def _print_metrics(metrics: dict) -> int:
    """Prints the measured-vs-reference table and the checks; returns the failed count."""
    print(f"\n## {metrics['experiment']} ({metrics['scale']}, {metrics['seeds']} seeds, "
          f"{metrics['wall_seconds']:.1f} s): {metrics.get('status', '')}")
    print("\n".join(table_lines(metrics)))
    for c in metrics["checks"]:
        print(f"  [{'PASS' if c['passed'] else 'FAIL'}] ({c.get('kind', 'trend')}) {c['name']}: {c['detail']}")
    return sum(not c["passed"] for c in metrics["checks"])


def _reproduce(args) -> int:
    if (args.name is None) == (args.suite is None):
        raise ValueError(f"give exactly one of an experiment NAME or --suite {{{','.join(SUITES)}}}")
    names = experiment_names(args.suite) if args.suite else [args.name]
    scale = args.suite if args.suite in ("demo", "gpu") else args.scale
    if args.set and len(names) > 1:
        raise ValueError("--set applies to one experiment; give its NAME instead of --suite")
    out = args.out or ("results" if args.record else "runs")
    for name in names:  # fail on bad names, scales and existing runs before running anything
        get_experiment(name).config(scale)
        check_free(run_dir(name, scale, out, args.record), args.force)
    start, failed, runs, crashed = time.perf_counter(), 0, [], []
    for name in names:
        try:
            metrics = reproduce(name, scale=scale, seeds=args.seeds, seed_offset=args.seed_offset,
                                overrides=args.set, out=out, record=args.record, force=args.force)
        except Exception as e:  # one experiment's crash does not stop a suite; it fails the command
            if len(names) == 1:
                raise
            traceback.print_exc()
            crashed.append(f"{name} ({type(e).__name__}: {e})")
            continue
        failed += _print_metrics(metrics)
        where = run_dir(name, scale, out, args.record)
        runs.append({"metrics": metrics, "dir": str(where)})
        print(f"  wrote {where}/metrics.json, report.md, run.json")
    if len(runs) > 1:
        print(f"\n# Scorecard of this run ({time.perf_counter() - start:.0f} s, records under {out}/)")
        print("\n".join(summary_table(runs)))
    if args.suite == "demo" and Path("results").is_dir():
        print("\n# The committed records (results/README.md; quick and full scales)")
        print("\n".join(committed_summary(load_records(Path("results")))))
    if failed:
        print(f"\n{failed} check(s) failed" + ("" if args.strict else " (results, not errors; --strict makes them fail the command)"),
              file=sys.stderr)
    if crashed:
        print(f"\n{len(crashed)} experiment(s) did not run to the end: " + "; ".join(crashed), file=sys.stderr)
        return 1
    return 1 if failed and args.strict else 0


def _estimate(args) -> int:
    out = args.out or "results"
    for name in args.names:  # fail on bad names and scales before timing anything
        get_experiment(name).config(args.scale)
    for name in args.names:
        est = estimate(name, scale=args.scale, fractions=args.fractions, out=out, force=args.force)
        slices = ", ".join(f"{s['wall_seconds']:.0f} s at {100 * s['fraction']:.2g}%" for s in est["slices"])
        print(f"{name} ({args.scale}): about {fmt_duration(est['estimate_seconds'])} "
              f"(fixed {est['fixed_seconds']:.0f} s + steps {est['scaling_seconds']:.0f} s; slices: {slices}); "
              f"wrote {run_dir(name, args.scale, out, True)}/estimate.json", flush=True)
    return 0


def _scorecard(args) -> int:
    results = Path(args.results)
    readme = Path(args.readme) if args.readme else None
    if args.check:
        stale = stale_files(results, experiment_names(), readme)
        if stale:
            raise ValueError(f"{', '.join(map(str, stale))} out of date with the records in {results}; "
                             "run `dynajax scorecard`")
        print(f"{results}/README.md is up to date")
        return 0
    paths = write_scorecard(results, experiment_names(), readme)
    print("\n".join(summary_table(load_records(results))))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynajax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered experiments")
    rep = sub.add_parser("reproduce", help="run an experiment and write metrics.json, report.md, run.json, figures")
    rep.add_argument("name", nargs="?", help="experiment name (see `dynajax list`)")
    rep.add_argument("--suite", choices=SUITES, help="run every experiment of a suite (demo: the showcase at its demo scale; quick: at --scale; gpu: the gpu configurations)")
    rep.add_argument("--scale", default="quick", choices=SCALES)
    rep.add_argument("--seeds", type=int, default=None, help="number of seeds (default: the config's)")
    rep.add_argument("--seed-offset", type=int, default=0, help="run seeds K..K+N-1 (default 0)")
    rep.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a config field (Python literal); repeatable")
    rep.add_argument("--out", default=None, help="output root (default: runs, or results with --record)")
    rep.add_argument("--record", action="store_true", help="write a run record: OUT/NAME/SCALE/")
    rep.add_argument("--force", action="store_true", help="replace a run already in the output directory")
    rep.add_argument("--strict", action="store_true", help="exit 1 when a check fails")
    est = sub.add_parser("estimate", help="time two slices of a scale's run and extrapolate its wall time")
    est.add_argument("names", nargs="+", help="experiment names (those declaring budget fields)")
    est.add_argument("--scale", default="full", choices=SCALES)
    est.add_argument("--fractions", type=float, nargs=2, default=(0.0025, 0.01), metavar=("F1", "F2"),
                     help="the two slices, as fractions of the budget fields (default 0.0025 0.01)")
    est.add_argument("--out", default=None, help="records' root (default: results); writes OUT/NAME/SCALE/estimate.json")
    est.add_argument("--force", action="store_true", help="replace an existing estimate")
    show = sub.add_parser("report", help="print the table of an existing run directory")
    show.add_argument("dirs", nargs="+", help="run directories holding metrics.json")
    card = sub.add_parser("scorecard", help="regenerate results/README.md from the run records")
    card.add_argument("--results", default="results", help="the records' root (default: results)")
    card.add_argument("--readme", default=None,
                      help="also the summary block of this README (default: ./README.md when --results is results)")
    card.add_argument("--check", action="store_true", help="fail if the scorecard differs from the records")
    args = parser.parse_args(argv)

    try:
        if args.command in ("reproduce", "estimate"):
            use_sync_dispatch_on_one_core()  # before the first computation (dynajax.cpu_dispatch)
        if args.command == "reproduce" and os.environ.get("DYNAJAX_COMPILATION_CACHE", "1") != "0":
            enable_compilation_cache()
        if args.command == "list":
            names = experiment_names()
            width = max(map(len, names))
            for name in names:
                exp = get_experiment(name)
                print(f"{name:<{width}}  {exp.description}  [{', '.join(exp.configs)}]")
            return 0
        if args.command == "report":
            failed = 0
            for d in args.dirs:
                path = Path(d) / "metrics.json"
                if not path.is_file():
                    raise ValueError(f"no metrics.json in {d}")
                failed += _print_metrics(json.loads(path.read_text()))
            return 1 if failed else 0
        if args.command == "scorecard":
            if args.readme is None and args.results == "results" and Path("README.md").is_file():
                args.readme = "README.md"
            return _scorecard(args)
        if args.command == "estimate":
            return _estimate(args)
        return _reproduce(args)
    except ValueError as e:
        print(f"dynajax: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
