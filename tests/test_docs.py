"""The documentation site builds in strict mode and its pages show what they should.

One build (without executing the notebooks: ``make docs`` does that) into a temporary folder,
then checks on the rendered HTML, as a reader would see it: formulas on the method pages,
figures, an entry for every public name, notebooks with their outputs, nothing loaded from
another host. The strict build itself fails on broken links, unresolved references, public
names without an entry or a docstring, and pages that load assets from the network.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import hooks  # noqa: E402  (the site's own hooks: the list of API pages and their entries)

# A 1x1 PNG: the figure of a fake executed notebook.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
)).decode()


def _executed_copies(out: Path) -> None:
    """Every notebook as an ``.ipynb`` stamped like ``make notebooks`` does; the first one with
    a text output and a figure, as if it had run."""
    for i, src in enumerate(hooks.notebook_sources()):
        nb = jupytext.read(src)
        if i == 0:
            code = next(c for c in nb.cells if c.cell_type == "code")
            code.outputs = [
                nbformat.v4.new_output("stream", name="stdout", text="docs-test-output\n"),
                nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}),
            ]
        nb.metadata["dynajax"] = {"source_sha256": hashlib.sha256(src.read_bytes()).hexdigest()}
        nbformat.write(nb, out / f"{src.stem}.ipynb")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("docs")
    executed = tmp / "executed"
    executed.mkdir()
    _executed_copies(executed)
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", DYNAJAX_DOCS_NOTEBOOKS=str(executed),
               DYNAJAX_DOCS_CACHE=str(tmp / "cache"))
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "WARNING" not in log, "\n".join(l for l in log.splitlines() if "WARNING" in l)
    return tmp / "site"


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def test_site(site):
    # One test for the whole site: the build is the expensive part, and pytest-xdist would
    # otherwise build it once per worker.
    _check_api(site)
    _check_methods(site)
    _check_notebooks(site)
    _check_results(site)
    _check_offline(site)


def _check_api(site: Path) -> None:
    ids = set()
    for page in hooks.API_PAGES:
        text = _page(site, hooks.api_slug(page).removesuffix(".md"))
        ids |= set(re.findall(r'\bid="([^"]+)"', text))
    for page in hooks.API_PAGES:
        for module, members in hooks.api_entries(page):
            for name in members:
                assert f"{module}.{name}" in ids, f"{module}.{name} has no API entry"
    # a docstring's reST role became a link, and the signature shows the jaxtyping shapes
    transport = _page(site, "api/transport")
    assert 'id="dynajax.transport.sliced_wasserstein"' in transport
    assert ":func:" not in transport and ":class:" not in transport
    assert "Float[ArrayLike, 'n d']" in html.unescape(re.sub(r"<[^>]+>", "", transport))
    assert "dynajax.integrate" in _page(site, "api/dynajax") or 'id="dynajax.integrate"' in _page(site, "api/dynajax")


METHOD_FORMULAS = {
    # page: TeX fragments that must be on it, as written in the source (MathJax typesets them)
    "methods/learning-dynamics": [r"\frac{\mathrm{d}X_t}{\mathrm{d}t} = F_\theta(X_t)",
                                  r"\min_{F_p \in \mathcal{F}_p,\; F_a \in \mathcal{F}} \lVert F_a \rVert",
                                  r"\Omega(G_e)"],
    "methods/networks-as-dynamics": [r"K_j = W_j - W_j^{\top} - \gamma I", r"\mathcal{C}(\theta)",
                                     r"\tfrac12 \lVert \nabla u(x) \rVert^2"],
    "methods/optimal-transport": [r"\mathrm{SW}_p^p(\mu, \nu)", r"S_\varepsilon(\mu, \nu)", r"\mathbb{S}^{d-1}"],
    "methods/gantk": [r"\varphi(z) = \frac{1 - e^{-z}}{z}", r"\mathrm{MMD}^2_{k_\infty}"],
}


def _check_methods(site: Path) -> None:
    for page, fragments in METHOD_FORMULAS.items():
        text = _page(site, page)
        assert text.count('class="arithmatex"') >= 10, f"{page}: too few formulas"
        for frag in fragments:
            assert frag in text, f"{page} lacks {frag}"
        assert 'href="../../api/' in text, f"{page} links to no API entry"
    home = _page(site, "")
    assert '<img alt="SW and SSW time' in home or "sliced_scaling.png" in home
    assert (site / "figures" / "sliced_scaling.png").exists()


def _check_notebooks(site: Path) -> None:
    sources = hooks.notebook_sources()
    assert len(sources) >= 10
    for i, src in enumerate(sources):
        text = _page(site, f"notebooks/{src.stem}")
        assert 'class="jupyter-wrapper"' in text, src.stem
        assert "cdnjs" not in text
        if i == 0:  # the fake executed copy: its outputs are on the page
            assert "docs-test-output" in text
            assert f'src="data:image/png;base64,{PNG}' in text


def _check_results(site: Path) -> None:
    card = _page(site, "results/scorecard")
    readme = ROOT / "results" / "README.md"
    if readme.exists():
        # every record row of results/README.md is on the page, numbers as generated
        for line in readme.read_text().splitlines():
            if line.startswith("| [") or line.startswith("| quick") or line.startswith("| full"):
                first = line.split("|")[1].strip()
                name = re.sub(r"\[([^]]+)\]\([^)]*\)", r"\1", first)
                assert name in card, name
    else:
        assert "No run records" in card
    assert "Benchmarks" in _page(site, "results/benchmarks")


def _check_offline(site: Path) -> None:
    assert (site / "assets" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000
    assert list((site / "assets" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    pattern = re.compile(r"<(?:script|img|iframe)\b[^>]*\bsrc=\"(?:https?:)?//", re.I)
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not pattern.search(text), f"{path.relative_to(site)} loads from another host"
        assert "fonts.googleapis" not in text, path
