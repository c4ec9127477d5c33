"""Executes the jupytext notebooks into ``.ipynb`` files with their outputs (``make notebooks``).

    python docs/_ext/notebooks.py [--out notebooks] [--limit 150] [--force] [NAME ...]

Each ``notebooks/NN_name.py`` becomes ``OUT/NN_name.ipynb``, executed top to bottom by a
Jupyter kernel in a scratch folder, under a time limit for the whole notebook (the kernel is
stopped when it runs out, and the command fails naming the notebook). The outputs are a cache:
a notebook is executed again only when its source, the library's code (``dynajax/``,
``gantk/``; docstrings and comments do not count) or the lock file changed since its
``.ipynb`` was written (``--force`` executes them all). The
key is stored in the notebook's metadata (``metadata.dynajax``), beside the execution time.
The documentation build renders these files when ``DYNAJAX_DOCS_NOTEBOOKS=OUT``.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import datetime
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _code(path: Path) -> bytes:
    """A module's code without its docstrings and comments: editing the docs keeps the cache."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def library_sha256() -> str:
    """One hash of the library's code (``dynajax/``, ``gantk/``, docstrings excluded) and of the
    lock: what a notebook's outputs depend on."""
    h = hashlib.sha256()
    for p in sorted(p for pkg in ("dynajax", "gantk") for p in (ROOT / pkg).rglob("*.py")):
        h.update(p.relative_to(ROOT).as_posix().encode())
        h.update(_code(p))
    lock = ROOT / "requirements-lock.txt"
    if lock.exists():
        h.update(lock.read_bytes())
    return h.hexdigest()


def cached(out: Path, source_sha: str, lib_sha: str) -> bool:
    import nbformat

    if not out.exists():
        return False
    try:
        meta = nbformat.read(out, as_version=4).metadata.get("dynajax", {})
    except Exception:  # a corrupted or foreign file is executed again
        return False
    return meta.get("source_sha256") == source_sha and meta.get("library_sha256") == lib_sha


async def _execute(nb, workdir: str, limit: float) -> None:
    from nbclient import NotebookClient

    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel's inline backend
    client = NotebookClient(nb, timeout=limit, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": workdir}})
    # The limit is for the whole notebook; on time-out the client shuts its kernel down.
    await asyncio.wait_for(client.async_execute(env=env, cwd=workdir), timeout=limit)


def execute(src: Path, out: Path, limit: float, lib_sha: str) -> float:
    """Executes one notebook into ``out``; returns its wall time in seconds."""
    import jupytext
    import nbformat

    nb = jupytext.read(src)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"nb-{src.stem}-") as work:
        try:
            asyncio.run(_execute(nb, work, limit))
        except asyncio.TimeoutError:
            raise RuntimeError(f"{src.name} ran past its limit of {limit:.0f} s") from None
    seconds = time.perf_counter() - start
    nb.metadata["dynajax"] = {
        "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "library_sha256": lib_sha,
        "seconds": round(seconds, 1),
        "executed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    nb.metadata.setdefault("kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"})
    tmp = out.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, out)
    return seconds


def _run_one(src: Path, out: Path, limit: float, lib_sha: str) -> tuple[bool, str]:
    """Executes one notebook in a child process, so that Ctrl-C (or a SIGTERM) stops the whole
    run: nbclient turns those signals into a kernel shutdown inside the process that runs it."""
    cmd = [sys.executable, __file__, "--_one", str(src), str(out), str(limit), lib_sha]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = child.communicate()
    except BaseException:
        child.terminate()  # nbclient shuts the kernel down on SIGTERM
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
        raise
    lines = [l for l in stderr.splitlines() if "Kernel is running over TCP" not in l]
    return child.returncode == 0, (stdout.strip() if child.returncode == 0 else "\n".join(lines[-30:]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_one"]:  # the child of _run_one
        src, out, limit, lib_sha = Path(argv[1]), Path(argv[2]), float(argv[3]), argv[4]
        print(f"{execute(src, out, limit, lib_sha):.1f}")
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="notebook stems (default: all of notebooks/*.py)")
    p.add_argument("--out", default=str(ROOT / "notebooks"), help="folder of the .ipynb files")
    p.add_argument("--limit", type=float, default=float(os.environ.get("DYNAJAX_NOTEBOOK_LIMIT", 240)),
                   help="seconds allowed to one notebook (default 240, twice the 2-minute budget of a "
                        "notebook on 2 cores; or $DYNAJAX_NOTEBOOK_LIMIT)")
    p.add_argument("--force", action="store_true", help="execute even the notebooks whose cache is fresh")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a SIGTERM stops the run like Ctrl-C
    sources = sorted((ROOT / "notebooks").glob("[0-9]*.py"))
    if args.names:
        known = {s.stem: s for s in sources}
        unknown = [n for n in args.names if n not in known]
        if unknown:
            raise SystemExit(f"unknown notebooks {unknown}; known: {', '.join(known)}")
        sources = [known[n] for n in args.names]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    lib_sha, failed = library_sha256(), []
    try:
        for src in sources:
            out = out_dir / f"{src.stem}.ipynb"
            if not args.force and cached(out, hashlib.sha256(src.read_bytes()).hexdigest(), lib_sha):
                print(f"  {src.stem:<24} cached", flush=True)
                continue
            for attempt in (1, 2):  # a kernel that dies (out of memory on a busy machine) gets one more try
                ok, msg = _run_one(src, out, args.limit, lib_sha)
                if ok:
                    print(f"  {src.stem:<24} executed in {msg} s", flush=True)
                    break
                if attempt == 1 and "Kernel died" in msg:
                    print(f"  {src.stem:<24} kernel died; trying again", file=sys.stderr, flush=True)
                    continue
                failed.append(src.stem)
                print(f"  {src.stem:<24} FAILED:\n{msg}", file=sys.stderr, flush=True)
                break
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
