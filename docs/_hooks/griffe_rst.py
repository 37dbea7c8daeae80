"""Griffe extension: the reST bits of l1optax's Google-style docstrings, as Markdown.

The docstrings follow optax: ``.. math::`` blocks, ``:math:`x``` roles, ``double backticks`` and
``:func:`name``` references. mkdocstrings renders Markdown, so before parsing each docstring:

* ``.. math:: <tex>`` (with indented continuation lines) becomes a ``$$ ... $$`` display block;
* ``:math:`<tex>``` becomes ``$<tex>$`` (rendered by KaTeX through pymdownx.arithmatex);
* ``:func:`x```, ``:class:`x``` and friends become code, linked when ``x`` is a public name;
* ``double backticks`` become single ones.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|attr|obj|mod|data|exc):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def _public() -> set[str]:
    try:
        import l1optax

        return set(l1optax.__all__)
    except Exception:  # noqa: BLE001 - rendering without links is still rendering
        return set()


def _continues(lines: list[str], j: int, indent: str) -> bool:
    """Line ``j`` belongs to a directive at ``indent``: indented deeper, or a blank line inside."""
    deeper = indent + " "
    if lines[j].startswith(deeper):
        return True
    return not lines[j].strip() and j + 1 < len(lines) and lines[j + 1].startswith(deeper)


def _math_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"^(\s*)\.\. math::\s*(.*)$", line)
        if not match:
            out.append(line)
            i += 1
            continue
        indent, first = match.groups()
        body = [first] if first.strip() else []
        i += 1

        while i < len(lines) and _continues(lines, i, indent):
            if lines[i].strip():
                body.append(lines[i].strip())
            i += 1
        out += ["", f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$", ""]
    return "\n".join(out)


def rst_to_markdown(text: str, public: set[str] | None = None) -> str:
    """Converts the reST constructs listed in the module docstring to Markdown."""
    public = _public() if public is None else public

    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        short = target.split(".")[-1].rstrip("()")
        if short in public:
            return f"[`{target}`][l1optax.{short}]"
        return f"`{target}`"

    text = _math_blocks(text)
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = _ROLE.sub(role, text)
    return _LITERAL.sub(r"`\1`", text)


class RstToMarkdown(griffe.Extension):
    """Rewrites every docstring before mkdocstrings parses it."""

    def __init__(self) -> None:
        super().__init__()
        self._public = _public()

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = obj.docstring.value
            if "{common}" in value:
                value = _runtime_docstring(obj.path) or value
            obj.docstring.value = rst_to_markdown(value, self._public)


def _runtime_docstring(path: str) -> str | None:
    """The docstring a decorator filled in at import (``{common}`` templates of the optimizers).

    Griffe reads docstrings from the source, where the shared argument text is still a template.
    """
    import importlib
    import inspect

    module, _, name = path.rpartition(".")
    try:
        return inspect.getdoc(getattr(importlib.import_module(module), name))
    except (ImportError, AttributeError):
        return None
