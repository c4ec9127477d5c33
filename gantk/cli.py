"""The ``gantk`` command (also ``python -m gantk``): free-form GAN(TK)^2 analyses.

``gantk flow``   runs a particle flow and writes ``metrics.csv`` (step, W2^2/2, energy distance,
                 particle loss), ``snapshots.npz``, ``final.png`` and ``flow.gif``; resumable
                 (``--resume`` continues from ``checkpoint.npz``, exactly: particles, discriminator
                 and PRNG key; it refuses other settings, and a directory holding a run is never
                 overwritten without it).
``gantk field``  draws the Dirac-GAN gradient fields (Figs 5.6-5.7) for some kernels.
``gantk kernel`` evaluates a kernel between points / plots ``k(x, y0)`` along a line.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

import numpy as np

from gantk import kernels as K

__all__ = ["main"]


def _width(s: str) -> int | None:
    if s in ("inf", "infinite"):
        return None
    try:
        w = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"width must be 'inf' or a positive integer; got {s!r}") from None
    if w < 1:
        raise argparse.ArgumentTypeError(f"width must be 'inf' or a positive integer; got {s!r}")
    return w


def _default_eta(loss: str, kernel: str, width: int | None, n: int) -> float:
    """The released code's per-particle step (eta / N) scaled to N; x1000 for the sigmoid net."""
    per = 2.0 if width is None else (0.2 if loss == "ipm" else 0.002)
    return per * n * (1000.0 if kernel == "sigmoid" else 1.0)


def _positive(kind):
    def parse(s: str):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}; got {s!r}") from None
        if not v > 0 or v != v or v == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive finite {kind.__name__}; got {s!r}")
        return v

    return parse


# what a resumed flow must share with the run that wrote the checkpoint (--steps may grow)
_RUN_FIELDS = ("loss", "kernel", "width", "data", "n", "m", "seed", "eta", "tau", "disc_lr", "reset",
               "no_antisymmetric", "block_size", "snapshot_every")


def _resume_rows(path: Path, every: int, start: int) -> list[dict]:
    """The rows of ``metrics.csv`` up to the checkpoint's step; refuses a truncated or edited file."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        steps = [int(r["step"]) for r in rows]
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is unreadable ({type(e).__name__}: {e}); it must hold the rows of the "
                         "checkpointed run: delete the run directory to start over") from e
    kept = [r for r, st in zip(rows, steps) if st <= start]
    if [int(r["step"]) for r in kept] != list(range(every, start + 1, every)):
        raise ValueError(f"{path} holds steps {steps[:3]}...{steps[-3:]} but the checkpoint is at step "
                         f"{start} (every {every}): the file was truncated or edited; delete the run "
                         "directory to start over")
    return kept


def _cmd_flow(args) -> int:
    import json

    import jax
    import jax.numpy as jnp

    from dynajax._io import atomic_write_bytes, atomic_write_text, ensure_writable_dir
    from dynajax.train import load_checkpoint, save_checkpoint
    from gantk import data, flows, metrics
    from gantk.losses import get_loss

    out = ensure_writable_dir(args.out)
    if args.steps % args.snapshot_every:
        raise ValueError(f"--steps ({args.steps}) must be a multiple of --snapshot-every ({args.snapshot_every})")
    ckpt, csv_path = out / "checkpoint.npz", out / "metrics.csv"
    if not args.resume and (ckpt.exists() or csv_path.exists()):
        raise ValueError(f"{out} already holds a flow run; pass --resume to continue it, or choose another --out")
    if args.resume and csv_path.exists() and not ckpt.exists():
        raise ValueError(f"{out} has metrics.csv but no checkpoint.npz to resume from; choose another --out")
    run = {f: getattr(args, f) for f in _RUN_FIELDS}
    eta = args.eta if args.eta is not None else _default_eta(args.loss, args.kernel, args.width, args.n)
    cfg = flows.FlowConfig(args.loss, args.kernel, args.width, tau=args.tau, eta=eta, disc_lr=args.disc_lr,
                           reset=args.reset, antisymmetric=not args.no_antisymmetric, block_size=args.block_size)
    x0, y = data.load(args.data, args.n, args.n if args.m is None else args.m, seed=args.seed)
    y = jnp.asarray(y)
    state = flows.init_state(cfg, jnp.asarray(x0), key=jax.random.key(args.seed))
    start, snaps, rows = 0, [np.asarray(x0)], []
    if args.resume and ckpt.exists():
        state, extra = load_checkpoint(ckpt, state, with_extra=True)
        saved = json.loads(extra["run"].tobytes())
        diff = {k: (saved.get(k), v) for k, v in run.items() if saved.get(k) != v}
        if diff:
            raise ValueError("--resume with other settings than the checkpointed run: " + ", ".join(
                f"--{k.replace('_', '-')} {new!r} (checkpoint: {old!r})" for k, (old, new) in diff.items()))
        start, snaps = int(extra["step"]), list(extra["snapshots"])
        if start > args.steps:
            raise ValueError(f"the checkpoint is at step {start}, beyond --steps {args.steps}")
        rows = _resume_rows(csv_path, args.snapshot_every, start)
        print(f"resuming at step {start}")
    step = flows.make_step(cfg, y)
    chunk = jax.jit(lambda s: jax.lax.fori_loop(0, args.snapshot_every, lambda i, t: step(t), s))
    layer, get = K.get_kernel(cfg.kernel, width=cfg.width or 128)
    loss = get_loss(cfg.loss)

    def particle_loss(s) -> float:
        if cfg.width is None:
            from gantk import discriminators as D

            disc = D.infinite(cfg.loss, layer, s.x, y, cfg.tau, get=get)
            f, _ = D.evaluate(disc, layer, s.x, get=get, block_size=cfg.block_size)
        else:
            f = flows._finite(cfg).apply(s.params, s.x)
        return float(jnp.mean(loss.c(f)))

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    it = range(start, args.steps, args.snapshot_every)
    bar = tqdm(it, desc="flow", unit="chunk") if tqdm is not None and not args.quiet else it
    for s in bar:
        state = chunk(state)
        x = np.asarray(state.x)
        snaps.append(x)
        m = metrics.all_metrics(x, y) if np.all(np.isfinite(x)) else {"half_w2": float("nan"), "energy": float("nan")}
        rows.append({"step": s + args.snapshot_every, "half_w2": m["half_w2"], "energy": m["energy"],
                     "particle_loss": particle_loss(state)})
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=["step", "half_w2", "energy", "particle_loss"])
        w.writeheader()
        w.writerows(rows)
        # the checkpoint first: a crash between the two leaves rows to drop, never rows missing
        save_checkpoint(ckpt, state, {"step": np.asarray(s + args.snapshot_every), "snapshots": np.stack(snaps),
                                      "run": np.frombuffer(json.dumps(run).encode(), np.uint8)})
        atomic_write_text(csv_path, text.getvalue())
    snaps_arr = np.stack(snaps)
    buf = io.BytesIO()
    np.savez_compressed(buf, snapshots=snaps_arr, target=np.asarray(y))
    atomic_write_bytes(out / "snapshots.npz", buf.getvalue())
    if y.shape[1] == 2:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from gantk import plots

        fig, ax = plt.subplots(figsize=(5, 5))
        plots.plot_particles(ax, snaps_arr[-1], np.asarray(y), kernel=cfg.kernel if cfg.width is None else None,
                             loss=cfg.loss, tau=cfg.tau)
        ax.set_title(f"{cfg.loss} {cfg.kernel} width={args.width or 'inf'} step {args.steps}")
        fig.savefig(out / "final.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        if not args.no_gif:
            plots.save_gif(snaps_arr, np.asarray(y), out / "flow.gif")
    last = rows[-1] if rows else {}
    print(f"final: W2^2/2 = {last.get('half_w2')}, energy = {last.get('energy')} -> {out}")
    return 0


def _cmd_field(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk import plots

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(args.loss), len(args.kernel), figsize=(4 * len(args.kernel), 2.4 * len(args.loss)),
                             squeeze=False)
    for i, loss in enumerate(args.loss):
        for j, kernel in enumerate(args.kernel):
            plots.plot_field(axes[i, j], kernel, loss, dim=args.dim, tau=args.tau, n=args.grid)
    path = out / f"field_d{args.dim}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")
    return 0


def _cmd_kernel(args) -> int:
    import jax.numpy as jnp

    layer, get = K.get_kernel(args.kernel)
    if args.points:
        pts = np.asarray([[float(v) for v in p.split(",")] for p in args.points], np.float32)
        k = np.asarray(K.kernel_matrix(layer, pts, pts, get=get))
        np.set_printoptions(precision=6, suppress=True)
        print(f"{get} of {args.kernel}:\n{k}")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = np.linspace(-3, 3, 401, dtype=np.float32)
        x = np.zeros((t.size, args.dim), np.float32)
        x[:, 0] = t
        y0 = np.zeros((1, args.dim), np.float32)
        y0[0, 0] = 1.0
        k = np.asarray(K.kernel_matrix(layer, jnp.asarray(x), jnp.asarray(y0), get=get))[:, 0]
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(t, k)
        ax.set_xlabel("x_1 (x = x_1 e_1)")
        ax.set_ylabel(f"k(x, e_1) [{get}]")
        ax.set_title(args.kernel)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        path = Path(args.out) / f"kernel_{args.kernel}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from gantk.data import DATASETS
    from gantk.losses import LOSSES

    parser = argparse.ArgumentParser(prog="gantk", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fl = sub.add_parser("flow", help="run a particle flow")
    fl.add_argument("--loss", default="ipm", choices=sorted(LOSSES))
    fl.add_argument("--width", type=_width, default=None, help="'inf' (default) or a finite width")
    fl.add_argument("--kernel", default="relu", choices=list(K.KERNELS))
    fl.add_argument("--data", default="8gaussians", choices=DATASETS)
    fl.add_argument("--n", type=_positive(int), default=200, help="particles")
    fl.add_argument("--m", type=_positive(int), default=None, help="target points (default: n)")
    fl.add_argument("--steps", type=_positive(int), default=2000)
    fl.add_argument("--snapshot-every", type=_positive(int), default=100)
    fl.add_argument("--eta", type=_positive(float), default=None, help="particle step (default: the thesis's eta/N times n)")
    fl.add_argument("--tau", type=_positive(float), default=1.0)
    fl.add_argument("--disc-lr", type=_positive(float), default=0.01)
    fl.add_argument("--reset", action="store_true", help="re-initialise the finite discriminator each step")
    fl.add_argument("--no-antisymmetric", action="store_true")
    fl.add_argument("--block-size", type=_positive(int), default=None)
    fl.add_argument("--seed", type=int, default=0)
    fl.add_argument("--resume", action="store_true", help="continue the run in --out (same settings; --steps may grow)")
    fl.add_argument("--no-gif", action="store_true")
    fl.add_argument("--quiet", action="store_true")
    fl.add_argument("--out", required=True)
    fi = sub.add_parser("field", help="Dirac-GAN gradient fields (Figs 5.6-5.7)")
    fi.add_argument("--kernel", nargs="+", default=["relu", "relu-nobias", "sigmoid", "rbf"], choices=list(K.KERNELS))
    fi.add_argument("--loss", nargs="+", default=["ipm", "lsgan"], choices=["ipm", "lsgan"])
    fi.add_argument("--dim", type=int, default=2)
    fi.add_argument("--tau", type=float, default=1.0)
    fi.add_argument("--grid", type=int, default=15)
    fi.add_argument("--out", required=True)
    ke = sub.add_parser("kernel", help="evaluate / plot a kernel")
    ke.add_argument("--kernel", default="relu", choices=list(K.KERNELS))
    ke.add_argument("--points", nargs="*", default=None, help="points as comma-separated coordinates")
    ke.add_argument("--dim", type=int, default=2)
    ke.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "flow" and os.environ.get("DYNAJAX_COMPILATION_CACHE", "1") != "0":
            from dynajax.compilation_cache import enable_compilation_cache

            enable_compilation_cache()  # a rerun or a resumed flow loads its programs from disk
        return {"flow": _cmd_flow, "field": _cmd_field, "kernel": _cmd_kernel}[args.command](args)
    except ValueError as e:
        print(f"gantk: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
