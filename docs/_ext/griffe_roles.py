"""A griffe extension: Sphinx roles in the docstrings become links in the Markdown site.

``.. math::`` blocks become display formulas (MathJax), and the literal blocks that reST
opens with ``::`` become code blocks. It also splits the grouped arguments this codebase writes (``rtol, atol: tolerances``) into
one entry per name, each with the shared description, as the Google style parser expects.

The library's docstrings are Google style with reST roles (``:func:`integrate```,
``:class:`~dynajax.train.TrainState```), which Markdown would print verbatim. Each role becomes
an *optional* cross-reference of mkdocs-autorefs: a link when the target is documented, plain
code otherwise (no warning: private helpers are named in docstrings too). Names without a dot
are looked up in the object's module, then in its package; dotted names are taken as written.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(func|class|meth|mod|data|attr|obj|exc|const):`(~?)([^`<>]+?)`")
_PACKAGES = ("dynajax", "gantk", "jax", "numpy", "optax", "diffrax", "equinox", "ott", "flax")


def _target(obj: griffe.Object, name: str) -> str:
    name = name.rstrip("()")
    if name.split(".")[0] in _PACKAGES:
        return name
    module = obj if obj.is_module else obj.module
    for scope in (obj if obj.is_class else None, module, module.parent):
        if scope is None:
            continue
        try:
            scope[name]  # noqa: B018 (a lookup that raises KeyError when absent)
        except (KeyError, AttributeError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        return f"{scope.path}.{name}"
    return f"{module.path}.{name}"


class SphinxRoles(griffe.Extension):
    """Rewrites ``:role:`target``` in every docstring into an optional autorefs link."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:  # noqa: D102
        # After the whole package is loaded, so that names defined later resolve too.
        for obj in _walk(pkg):
            doc = obj.docstring
            if doc is None:
                continue
            if "," in doc.value:
                doc.value = split_grouped_args(doc.value)
            if ".. math::" in doc.value or "::\n" in doc.value:
                doc.value = rest_blocks(doc.value)
            if ":`" not in doc.value:
                continue

            def sub(m: re.Match, obj: griffe.Object = obj) -> str:
                tilde, name = m.group(2), m.group(3).strip()
                shown = name.split(".")[-1] if tilde else name
                return f'<autoref identifier="{_target(obj, name)}" optional><code>{shown}</code></autoref>'

            doc.value = _ROLE.sub(sub, doc.value)


def _walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)


_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Keyword Arguments|Other Parameters):\s*$")
_GROUPED = re.compile(r"^(\s+)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)(\s*\([^)]*\))?:(\s.*|)$")


def split_grouped_args(text: str) -> str:
    """``a, b: text`` in an Args section becomes ``a: text`` and ``b: text``."""
    lines = text.split("\n")
    out: list[str] = []
    i, section_indent, entry_indent = 0, None, None
    while i < len(lines):
        line = lines[i]
        head = _SECTION.match(line)
        if head:
            section_indent, entry_indent = len(head.group(1)), None
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None
        if section_indent is not None and line.strip():
            entry_indent = indent if entry_indent is None else entry_indent
            m = _GROUPED.match(line)
            if m and indent == entry_indent:
                cont = []
                j = i + 1
                while j < len(lines) and (not lines[j].strip() or
                                          len(lines[j]) - len(lines[j].lstrip()) > entry_indent):
                    if not lines[j].strip() and (j + 1 >= len(lines) or
                                                 len(lines[j + 1]) - len(lines[j + 1].lstrip()) <= entry_indent):
                        break
                    cont.append(lines[j])
                    j += 1
                for name in (n.strip() for n in m.group(2).split(",")):
                    out.append(f"{m.group(1)}{name}{m.group(3) or ''}:{m.group(4)}")
                    out.extend(cont)
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _block(lines: list[str], start: int, base: int) -> int:
    """Index after the indented block that starts at ``start`` (blank lines inside allowed)."""
    j = start
    while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > base):
        j += 1
    while j > start and not lines[j - 1].strip():
        j -= 1
    return j


def rest_blocks(text: str) -> str:
    """``.. math::`` -> ``$$ ... $$``; a paragraph ending in ``::`` -> ``:`` and a fenced code block."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        base = len(line) - len(line.lstrip())
        stripped = line.strip()
        if stripped.startswith(".. math::"):
            first = stripped[len(".. math::"):].strip()
            j = _block(lines, i + 1, base)
            body = ([first] if first else []) + [l.strip() for l in lines[i + 1:j] if l.strip()]
            pad = " " * base
            out += [pad + "$$", *(pad + b for b in body), pad + "$$"]
            i = j
            continue
        if stripped.endswith("::") and not stripped.startswith("..") and i + 1 < len(lines) and not lines[i + 1].strip():
            j = _block(lines, i + 2, base)
            if j > i + 2:
                body = lines[i + 2:j]
                indent = min(len(l) - len(l.lstrip()) for l in body if l.strip())
                pad = " " * base
                text_line = line.rstrip()[:-1]  # "Example::" -> "Example:"
                if text_line.strip() == ":":
                    text_line = ""
                out += ([text_line] if text_line.strip() else []) + ["", pad + "```python",
                        *(pad + l[indent:] if l.strip() else "" for l in body), pad + "```"]
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)
