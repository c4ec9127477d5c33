"""MkDocs hooks of the dynajax site: generated pages, local MathJax, and the strict checks.

- API pages: one per subpackage, generated from the packages' ``__all__`` (read from the source
  with ``ast``, nothing imported), so a new public name gets an entry without editing the docs.
- Notebooks: ``notebooks/*.py`` (jupytext) are rendered as they are, or, when
  ``DYNAJAX_DOCS_NOTEBOOKS`` names a folder of executed ``.ipynb`` files (``make notebooks``
  writes them), the executed copies with their outputs.
- Results: the scorecard page is ``results/README.md`` as ``dynajax scorecard`` wrote it (with
  the run reports it links to); the benchmarks page is built from ``results/benchmarks/*.json``.
- Offline: MathJax is copied from the ``django-static-mathjax`` wheel; script tags that point
  to a CDN (nbconvert's MathJax 2 and Mermaid) are removed from the notebook pages.
- Strict: every public name must have an entry with a docstring; a page that loads anything from
  another host is an error. Both are logged as warnings, which ``mkdocs build --strict`` fails on.
"""

from __future__ import annotations

import ast
import hashlib
import html
import json
import logging
import os
import re
import subprocess
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.plugins.dynajax")
ROOT = Path(__file__).resolve().parents[2]

# The API reference, grouped as the packages are: page -> (title, one-line summary).
API_PAGES = {
    "dynajax": ("dynajax", "The top-level names: `integrate`, the compilation cache and one-core dispatch."),
    "dynajax.solve": ("solve", "`integrate`, the one door to diffrax, and the fixed-step tableaux."),
    "dynajax.nn": ("nn", "flax.linen building blocks: MLP, ConvNet, FNO, residual blocks, spectral norm."),
    "dynajax.train": ("train", "The training core: states, pure steps, `fit`, Uzawa multipliers, checkpoints."),
    "dynajax.parallel": ("parallel", "Data-parallel steps over a device mesh; multi-host setup."),
    "dynajax.systems": ("systems", "Physical systems: true fields, physical families, environments, datasets."),
    "dynajax.data": ("data", "Trajectory datasets, splits and the on-disk cache."),
    "dynajax.forecast": ("forecast", "Learning dynamics: APHYNITY, LEADS, hidden dynamics, baselines, adjoints."),
    "dynajax.arch": ("arch", "Continuous-depth and stable architectures, PINNs, Deep Ritz, MFNs."),
    "dynajax.transport": ("transport", "Optimal transport: Sinkhorn, exact and sliced distances, flows, least action."),
    "dynajax.cnf": ("cnf", "Continuous flows with a transport cost: OT-Flow, mean-field games, GP-flows."),
    "dynajax.experiments": ("experiments", "The reproductions: configurations, registry, runner, checks, scorecard."),
    "gantk": ("gantk", "Infinite-width NTK discriminators and the flows they induce."),
    "gantk.kernels": ("gantk.kernels", "Closed-form NTK / NNGP kernels (neural-tangents conventions), RBF."),
    "gantk.losses": ("gantk.losses", "IPM, LSGAN and original GAN losses in the (a, b, c) form."),
    "gantk.discriminators": ("gantk.discriminators", "Infinite-width and finite-width discriminators."),
    "gantk.flows": ("gantk.flows", "Particle flows driven by a discriminator; the NTK-MMD objective."),
    "gantk.data": ("gantk.data", "Datasets, rendered or shipped (no download)."),
    "gantk.metrics": ("gantk.metrics", "Distances between point clouds."),
    "gantk.plots": ("gantk.plots", "Figures."),
}


# ----------------------------------------------------------------------------- source reading
def _source(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for p in (base / "__init__.py", base.with_suffix(".py")):
        if p.exists():
            return p
    return None


def _all(module: str) -> list[str] | None:
    """``module.__all__`` read from its source (None when it defines none)."""
    path = _source(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def _submodules(package: str) -> list[str]:
    """Public submodules of a package, one level down (none for a plain module)."""
    path = _source(package)
    if path is None or path.name != "__init__.py":
        return []
    out = []
    for p in sorted(path.parent.iterdir()):
        name = p.stem if p.suffix == ".py" else p.name
        if name.startswith("_") or name in ("cli",):
            continue
        if (p.suffix == ".py") or (p / "__init__.py").exists():
            out.append(f"{package}.{name}")
    return out


def _module_exports(package: str) -> set[str]:
    """Names of ``package.__all__`` that are submodules (``from package import sub``), not
    objects imported from them (``from package.sub import name`` may reuse a module's name)."""
    path = _source(package)
    if path is None or path.name != "__init__.py":
        return set()
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module == package:
            out |= {a.asname or a.name for a in node.names if _source(f"{package}.{a.name}") is not None}
    return out


def api_entries(page: str) -> list[tuple[str, list[str]]]:
    """The ``(module, members)`` blocks of an API page, in order.

    The page's own ``__all__`` first (modules in it become blocks of their own), then each
    public submodule with the names of its ``__all__`` that the package does not re-export
    (its docstring alone when there are none: module docstrings state the conventions).
    """
    names = _all(page) or []
    modules = _module_exports(page)
    own = [n for n in names if n not in modules]
    blocks = [(page, own)]
    if page == "gantk":  # the package page lists its modules; each has a page of its own
        return blocks
    for sub in _submodules(page):
        if sub in API_PAGES:
            continue
        extra = [n for n in (_all(sub) or []) if n not in names]
        blocks.append((sub, extra))
    return blocks


def api_markdown(page: str) -> str:
    title, _ = API_PAGES[page]  # the summary is the index's; the page opens with the docstring
    lines = [f"# {title}", ""]
    for i, (module, members) in enumerate(api_entries(page)):
        if i == 1:
            lines += ["## Modules", ""]
        lines += [
            f"::: {module}",
            "    options:",
            f"      show_root_heading: {'false' if i == 0 else 'true'}",
            f"      heading_level: {2 if i == 0 else 3}",
            f"      members: {json.dumps(members)}",
            "",
        ]
    return "\n".join(lines)


def api_slug(page: str) -> str:
    return "api/" + page.replace(".", "/") + ".md" if page.startswith("gantk") else \
        "api/" + (page.split(".", 1)[1] if "." in page else "dynajax") + ".md"


def api_index_markdown() -> str:
    rows = ["| page | what is in it | public names |", "|---|---|---|"]
    for page, (title, summary) in API_PAGES.items():
        n = sum(len(m) for _, m in api_entries(page))
        rel = api_slug(page).removeprefix("api/")
        rows.append(f"| [`{page}`]({rel}) | {summary} | {n} |")
    return "\n".join([
        "# API reference",
        "",
        "Generated from the docstrings: every name in a package's `__all__` has an entry, and each",
        "public module's own names that the package does not re-export are listed under it. Shapes",
        "are written in the signatures with jaxtyping (`Float[Array, \"n d\"]`: `n` points in",
        "dimension `d`); conventions (squared or rooted distances, units, PRNG keys) are stated in",
        "the module docstrings, which open each section.",
        "",
        *rows,
        "",
    ])


# ----------------------------------------------------------------------------- notebooks
def notebook_sources() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9]*.py"))


def notebook_title(src: Path) -> str:
    """The notebook's first heading as plain text (the nav would drop its code spans)."""
    for line in src.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#\s+#\s+(.*)", line)
        if m:
            return m.group(1).replace("`", "").strip()
    return src.stem


def executed_dir() -> Path | None:
    d = os.environ.get("DYNAJAX_DOCS_NOTEBOOKS")
    return Path(d).resolve() if d else None


def _notebook_file(config, src: Path) -> File:
    """The page of one notebook: the executed copy when one was asked for, the source otherwise."""
    out = executed_dir()
    path = src
    if out is not None:
        path = out / f"{src.stem}.ipynb"
        if not path.exists():
            log.warning("no executed notebook %s (run `make notebooks`)", path)
            path = src
        else:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get("dynajax", {})
            if meta.get("source_sha256") != hashlib.sha256(src.read_bytes()).hexdigest():
                log.warning("%s was executed from another version of %s (run `make notebooks`)", path, src.name)
    return File.generated(config, f"notebooks/{src.stem}.ipynb", abs_src_path=str(path))


# ----------------------------------------------------------------------------- results
RESULTS = Path(os.environ.get("DYNAJAX_DOCS_RESULTS") or ROOT / "results").resolve()  # tests point it elsewhere


def scorecard_markdown() -> tuple[str, list[Path]]:
    """The scorecard page (``results/README.md`` as generated) and the reports it links to."""
    card = RESULTS / "README.md"
    head = ["# Scorecard", ""]
    if not card.exists():
        records = sorted(RESULTS.glob("*/*/metrics.json")) if RESULTS.exists() else []
        if records:
            log.warning("results/ has %d records but no README.md: run `dynajax scorecard`", len(records))
        return "\n".join(head + [
            "No run records are committed yet. `make records` runs the quick suite into `results/`",
            "and `dynajax scorecard` writes the scorecard, which this page then shows as it is.",
            "",
        ]), []
    text = card.read_text(encoding="utf-8")
    reports = []
    for target in re.findall(r"\]\(([^)#]+/report\.md)\)", text):
        path = RESULTS / target
        if path.exists():
            reports.append(path)
        else:
            log.warning("results/README.md links to %s, which does not exist", target)
    text = text.replace("# Scorecard\n", "# Scorecard\n\n!!! note \"Source\"\n    This page is `results/README.md`, "
                        "written by `dynajax scorecard` from the run records; numbers are never copied by hand.\n", 1)
    return text, reports


def _git_date(path: Path) -> str:
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(path)], cwd=ROOT,
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or "uncommitted"


def benchmarks_markdown() -> str:
    files = sorted((RESULTS / "benchmarks").glob("*.json")) if RESULTS.exists() else []
    lines = [
        "# Benchmarks",
        "",
        "Timings written by `python -m benchmarks all --json results/benchmarks/<device>.json`: each",
        "workload against the implementation a user would otherwise reach for, in one process.",
        "`ratio vs ref` is the reference's median time over ours (above 1: dynajax is faster);",
        "compile time is excluded from the median.",
        "",
    ]
    if not files:
        return "\n".join(lines + ["No benchmark records are committed yet (`make bench` writes `runs/benchmarks.json`).", ""])
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        env = data.get("environment", {})
        where = ", ".join(str(x) for x in (env.get("platform"), f"{env.get('cpu_count')} cores",
                                           f"jax {env.get('jax', '?')} ({env.get('jax_backend', '?')})") if x)
        load = env.get("loadavg_1_5_15min_at_write")
        lines += [f"## {f.stem}", "", f"Hardware: {where}; load average at write "
                  f"{load[0]:.1f}" if load else f"Hardware: {where}", "",
                  f"Date: {data.get('date') or _git_date(f)}", "",
                  "| workload | implementation | median (s) | per unit | unit | ratio vs ref |", "|---|---|---|---|---|---|"]
        for r in data.get("rows", []):
            ratio = r.get("ratio_vs_ref")
            lines.append(f"| {r['workload']} | {r['impl']} | {r['median_s']:.4g} | {r['per_unit']:.3e} | "
                         f"{r.get('unit', '')} | {'-' if ratio is None else f'{ratio:.2f}'} |")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- MathJax
def mathjax_root() -> Path:
    import mathjax  # the django-static-mathjax wheel: MathJax 3, no Django needed to read files

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


MATHJAX_PARTS = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "a11y", "ui")


# ----------------------------------------------------------------------------- events
def on_config(config):
    nav = config.nav
    for item in nav:
        if "API reference" in item:
            item["API reference"] = ["api/index.md"] + [{API_PAGES[p][0]: api_slug(p)} for p in API_PAGES]
        if "Notebooks" in item:
            item["Notebooks"] = [{notebook_title(p): f"notebooks/{p.stem}.ipynb"} for p in notebook_sources()]
    return config


@event_priority(100)  # before mkdocs-jupyter wraps the notebook files
def on_files(files: Files, config) -> Files:
    gen = lambda uri, content: files.append(File.generated(config, uri, content=content))  # noqa: E731
    gen("api/index.md", api_index_markdown())
    for page in API_PAGES:
        gen(api_slug(page), api_markdown(page))
    for src in notebook_sources():
        files.append(_notebook_file(config, src))
    card, reports = scorecard_markdown()
    gen("results/scorecard.md", card)
    for report in reports:
        rel = report.relative_to(RESULTS).as_posix()
        files.append(File.generated(config, f"results/{rel}", abs_src_path=str(report)))
        for other in sorted(report.parent.iterdir()):  # figures, metrics.json, run.json
            if other.is_file() and other.suffix != ".md":
                files.append(File.generated(config, f"results/{other.relative_to(RESULTS).as_posix()}",
                                            abs_src_path=str(other)))
    gen("results/benchmarks.md", benchmarks_markdown())
    root = mathjax_root()
    for part in MATHJAX_PARTS:
        p = root / part
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                files.append(File.generated(config, f"assets/mathjax/{f.relative_to(root).as_posix()}",
                                            abs_src_path=str(f)))
    return files


@event_priority(100)  # before mkdocs-jupyter reads the page
def on_pre_page(page, config, files):
    """mkdocs-jupyter's wrapper of a generated file does not see its source path: give it."""
    f = page.file
    inner = getattr(f, "file", None)
    if inner is not None and f.__dict__.get("abs_src_path") is None:
        f.__dict__["abs_src_path"] = inner.abs_src_path
    return page


_CDN_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>\s*", re.S)
_REMOTE_MODULE = re.compile(r"<script\b[^>]*>(?:(?!</script>).)*?https?://(?:(?!</script>).)*?</script>\s*", re.S)
_MATHJAX2_CONFIG = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)


def on_page_content(html_text: str, page, config, files) -> str:
    """Notebook pages: drop nbconvert's CDN scripts (MathJax 2, Mermaid; the site loads MathJax 3)."""
    if page.file.src_uri.startswith("notebooks/"):
        html_text = _MATHJAX2_CONFIG.sub("", html_text)
        html_text = _CDN_SCRIPT.sub("", html_text)
        html_text = _REMOTE_MODULE.sub("", html_text)
    return html_text


_EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(https?:)?//[^\"]*\"", re.I)
_SCRIPT_BODY = re.compile(r"<script\b[^>]*>((?:(?!</script>).)*)</script>", re.S | re.I)
_URL_IN_SCRIPT = re.compile(r"""(?:import\(|src\s*=|fetch\(|Url\s*=)\s*["'](https?:)?//""")


def on_post_page(output: str, page, config) -> str:
    for m in _EXTERNAL.finditer(output):
        if m.group(0).lower().startswith("<link") and "stylesheet" not in m.group(0).lower():
            continue  # <link rel="canonical"> and the like load nothing
        log.warning("%s loads %s from another host: the site must build and read offline",
                    page.file.src_uri, html.unescape(m.group(0))[:160])
    for m in _SCRIPT_BODY.finditer(output):
        if _URL_IN_SCRIPT.search(m.group(1)):
            log.warning("%s has a script that loads code from another host: %s",
                        page.file.src_uri, m.group(1).strip()[:160])
    return output


def on_post_build(config) -> None:
    """Every public name has an entry with a docstring (else a warning: strict fails)."""
    site = Path(config.site_dir)
    ids: set[str] = set()
    for page in API_PAGES:
        out = site / api_slug(page).removesuffix(".md") / "index.html"
        if out.exists():
            ids |= set(re.findall(r'\bid="([^"]+)"', out.read_text(encoding="utf-8")))
    missing, undocumented = [], []
    for page in API_PAGES:
        for module, members in api_entries(page):
            for name in members:
                anchor = f"{module}.{name}"
                if anchor not in ids:
                    missing.append(anchor)
    if missing:
        log.warning("public names without an API entry: %s", ", ".join(missing))
    for anchor in _undocumented(config):
        undocumented.append(anchor)
    if undocumented:
        log.warning("public names without a docstring: %s", ", ".join(undocumented))


def _undocumented(config) -> list[str]:
    """Public names whose object (after following re-exports) has no docstring."""
    import griffe

    loader = griffe.GriffeLoader(search_paths=[str(ROOT)], docstring_parser="google")
    for pkg in ("dynajax", "gantk"):
        loader.load(pkg)
    loader.resolve_aliases(implicit=False, external=False)
    out = []
    for page in API_PAGES:
        for module, members in api_entries(page):
            mod = loader.modules_collection[module]
            for name in members:
                try:
                    obj = mod[name]
                    doc = obj.docstring
                except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                    continue  # reported as a missing entry if it did not render
                # Constants render with their value; functions, classes and modules need words.
                if obj.is_attribute or obj.is_type_alias:
                    continue
                if doc is None or not doc.value.strip():
                    out.append(f"{module}.{name}")
    return out
