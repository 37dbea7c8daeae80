"""MkDocs hook: API pages for every name in ``l1optax.__all__``, the examples with their source.

Nothing here is edited when a public name is added: each run reads ``l1optax.__all__``, groups
the names by the private module that defines them (the section title is that module's docstring
summary), writes one page per name (``api/<name>.md``, rendered by mkdocstrings) plus an index
page, and adds them to the navigation. The build fails (``PluginError``) on a public name without
a docstring. ``tests/test_docs.py`` runs the same check without building.

The examples section gets one page per ``examples/*.py`` script: its module docstring, the command
to run it and its full source.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
API_DIR = "api"
EXAMPLES_DIR = "examples"
BENCH_DIR = "benchmarks"
SKIP = {"__version__"}  # documented on the API index page

# Pages the hook writes when the docs/ file is missing (none left: every page is written).
PLACEHOLDERS: dict[str, str] = {}


def _inline_math(match: re.Match[str]) -> str:
    tex = match.group(1).replace("\\|", "\\Vert ").replace("|", "\\vert ")  # no table pipes
    return f"${tex.strip()}$"


def _rst_to_md(text: str) -> str:
    text = re.sub(r":math:`([^`]+)`", _inline_math, text)
    return re.sub(r"``([^`]+)``", r"`\1`", re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text))


def summary(obj: Any) -> str:
    """The first sentence of a docstring, as markdown (empty if there is none)."""
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n", 1)[0].replace("\n", " ").strip()
    return _rst_to_md(first)


def is_documented(name: str, obj: Any) -> bool:
    """True when ``obj`` has a docstring of its own (not a NamedTuple's generated one)."""
    doc = inspect.getdoc(obj)
    if not doc or not doc.strip():
        return False
    fields = getattr(obj, "_fields", None)
    if isinstance(obj, type) and fields is not None:  # NamedTuple: "Name(a, b)" is generated
        if re.fullmatch(rf"{re.escape(obj.__name__)}\([\w, ]*\)", doc.strip()):
            return False
    return True


# Short section titles for the modules that exist today; any other module is titled from the
# first words of its docstring (up to a colon, comma or parenthesis), so new modules need no edit.
TITLES = {
    "l1optax._penalty": "Penalty",
    "l1optax._prox": "Proximal operators",
    "l1optax._transforms": "Transforms",
    "l1optax._optimizers": "Optimizers",
    "l1optax._ftrl": "FTRL",
    "l1optax._elastic_net": "Elastic net",
    "l1optax._group": "Group lasso",
    "l1optax._solvers": "Solvers",
    "l1optax._diagnostics": "Certificates and diagnostics",
    "l1optax._selection": "Parameter selection",
    "l1optax._flat": "Many-leaf fast path",
    "l1optax": "Other public names",
}


def section_title(module: str) -> str:
    """The API section title of a module: from ``TITLES`` or its docstring's first words."""
    if module in TITLES:
        return TITLES[module]
    doc = (importlib.import_module(module).__doc__ or "").strip()
    first = _rst_to_md(doc.split("\n\n", 1)[0].replace("\n", " "))
    short = re.split(r"[:,(;]| - | — ", first, maxsplit=1)[0].strip().rstrip(".")
    return short or module.removeprefix("l1optax.").lstrip("_")


def public_api() -> list[tuple[str, str, list[str]]]:
    """``[(module, section title, [names])]`` in the order of ``l1optax.__all__``."""
    import l1optax

    groups: dict[str, list[str]] = {}
    for name in l1optax.__all__:
        if name in SKIP:
            continue
        obj = getattr(l1optax, name)
        module = getattr(obj, "__module__", None) or "l1optax"
        if not module.startswith("l1optax"):
            module = "l1optax"
        groups.setdefault(module, []).append(name)
    out = []
    for module, names in groups.items():
        out.append((module, section_title(module), names))
    return out


def undocumented() -> list[str]:
    """Public names without a docstring of their own."""
    import l1optax

    return [
        name
        for name in l1optax.__all__
        if name not in SKIP and not is_documented(name, getattr(l1optax, name))
    ]


def api_pages() -> dict[str, str]:
    """``{path: markdown}`` for the API index and one page per public name."""
    import l1optax

    pages: dict[str, str] = {}
    lines = [
        "# API reference",
        "",
        f"Every public name of `l1optax` {l1optax.__version__} (`l1optax.__all__`), generated from "
        "the docstrings at build time. Import them from the top-level package: "
        "`import l1optax; l1optax.prox_adam(...)`. `l1optax.__version__` is the version string.",
        "",
    ]
    for _, title, names in public_api():
        lines += [f"## {title}", "", "| name | what it is |", "|---|---|"]
        for name in names:
            text = summary(getattr(l1optax, name)).replace("|", "\\|")
            lines.append(f"| [`{name}`]({name}.md) | {text} |")
            pages[f"{API_DIR}/{name}.md"] = f"::: l1optax.{name}\n"
        lines.append("")
    pages[f"{API_DIR}/index.md"] = "\n".join(lines)
    return pages


def api_nav() -> list[Any]:
    nav: list[Any] = [f"{API_DIR}/index.md"]
    for _, title, names in public_api():
        nav.append({title: [{name: f"{API_DIR}/{name}.md"} for name in names]})
    return nav


def example_pages() -> dict[str, str]:
    """One page per ``examples/*.py``: its docstring, how to run it, its source."""
    pages = {}
    for script in sorted((ROOT / "examples").glob("*.py")):
        source = script.read_text(encoding="utf-8")
        module_doc = ""
        match = re.match(r'\s*(?:r?""")(.*?)"""', source, re.S)
        if match:
            module_doc = _rst_to_md(inspect.cleandoc(match.group(1)))
        title, _, rest = module_doc.partition("\n")
        pages[f"{EXAMPLES_DIR}/{script.stem}.md"] = "\n".join(
            [
                f"# `{script.name}`",
                "",
                f"**{title.strip()}**",
                "",
                rest.strip(),
                "",
                "```bash",
                'pip install -e ".[examples]"',
                f"python examples/{script.name} --help",
                "```",
                "",
                "Recorded output and figures: [Examples](index.md).",
                "",
                "## Source",
                "",
                f'```python title="examples/{script.name}"',
                source.rstrip(),
                "```",
                "",
            ]
        )
    return pages


def results_page() -> dict[str, str]:
    """``benchmarks/RESULTS.md`` verbatim, so the site never lags behind the record.

    Image links to ``docs/images/`` are pointed at the site's copy; other relative links (files
    of the repository, not pages of the site) become inline code.
    """
    text = (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8")

    def link(match: re.Match[str]) -> str:
        bang, label, target = match.groups()
        if re.match(r"^[a-z]+://", target) or target.startswith("#"):
            return match.group(0)
        image = re.search(r"docs/images/(.+)$", target)
        if image:
            return f"{bang}[{label}](../images/{image.group(1)})"
        return label if label.startswith("`") else f"`{label}`"

    text = re.sub(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)", link, text)
    return {f"{BENCH_DIR}/results.md": text}


# ------------------------------------------------------------------------------------------
# mkdocs hook events
# ------------------------------------------------------------------------------------------


def _nav_paths(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_paths(value)]
    if isinstance(nav, list):
        return [p for entry in nav for p in _nav_paths(entry)]
    return []


def complete_nav(nav: list[Any], docs_dir: pathlib.Path) -> list[Any]:
    """Appends hand-written pages that ``mkdocs.yml`` does not list, under "More", so a page
    added by someone who cannot edit the nav is still reachable (and --strict still passes)."""
    listed = set(_nav_paths(nav))
    extra = sorted(
        str(p.relative_to(docs_dir))
        for p in docs_dir.rglob("*.md")
        if not {"_hooks", "assets"} & set(p.relative_to(docs_dir).parts)
        and str(p.relative_to(docs_dir)) not in listed
    )
    return nav + [{"More": extra}] if extra else nav


def on_config(config, **kwargs):
    from mkdocs.exceptions import PluginError

    missing = undocumented()
    if missing:
        raise PluginError(
            "public names without a docstring (every name in l1optax.__all__ needs one): "
            + ", ".join(missing)
        )
    nav = config.get("nav") or []
    for entry in nav:
        if isinstance(entry, dict) and "API reference" in entry:
            entry["API reference"] = api_nav()
        if isinstance(entry, dict) and "Examples" in entry:
            entry["Examples"] = [f"{EXAMPLES_DIR}/index.md"] + [
                {pathlib.Path(p).stem + ".py": p}
                for p in example_pages()
                if not p.endswith("index.md")
            ]
    config["nav"] = complete_nav(nav, pathlib.Path(config["docs_dir"]))
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    generated = {**api_pages(), **example_pages(), **results_page()}
    for path, content in PLACEHOLDERS.items():
        if files.get_file_from_path(path) is None:
            generated[path] = content
    for path, content in generated.items():
        existing = files.get_file_from_path(path)
        if existing is not None and path not in PLACEHOLDERS:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files
