"""The docs site covers the public API: every name documented, every name with a page.

The checks here are what ``mkdocs build --strict`` (run by ``.ci/run``) relies on, without
building: ``docs/_hooks/api.py`` is the hook that generates the API pages.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys
import typing

import pytest

import l1optax

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"l1optax_docs_{name}", DOCS / "_hooks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


api = _load("api")


def _nav_paths(nav) -> list[str]:
    out = []
    for entry in nav:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                out += _nav_paths(value) if isinstance(value, list) else [value]
    return out


def _mkdocs_nav() -> list:
    text = (ROOT / "mkdocs.yml").read_text()
    nav_text = text[text.index("\nnav:") :]
    return re.findall(r":\s*([\w./-]+\.md)\s*$|^\s*-\s*([\w./-]+\.md)\s*$", nav_text, re.M)


def test_every_public_name_has_a_docstring():
    assert api.undocumented() == [], "public names without a docstring"


def test_undocumented_names_are_caught():
    class Bare(typing.NamedTuple):
        count: int

    def bare():
        pass

    class Documented(typing.NamedTuple):
        """A state."""

        count: int

    assert not api.is_documented("Bare", Bare)  # the generated "Bare(count,)" is not a docstring
    assert not api.is_documented("bare", bare)
    assert api.is_documented("Documented", Documented)
    assert api.is_documented("prox_adam", l1optax.prox_adam)


def test_every_public_name_gets_an_api_page_and_a_nav_entry():
    public = [n for n in l1optax.__all__ if n != "__version__"]
    pages = api.api_pages()
    for name in public:
        assert pages[f"api/{name}.md"].strip() == f"::: l1optax.{name}"
    assert set(_nav_paths(api.api_nav())) == set(pages)
    index = pages["api/index.md"]
    assert all(f"[`{name}`]({name}.md)" in index for name in public)
    grouped = [n for _, _, names in api.public_api() for n in names]
    assert sorted(grouped) == sorted(public)  # each name in exactly one section
    titles = [title for _, title, _ in api.public_api()]
    assert len(set(titles)) == len(titles) and all(0 < len(t) <= 60 for t in titles)


def test_every_example_script_gets_a_page_with_its_source():
    pages = api.example_pages()
    scripts = sorted((ROOT / "examples").glob("*.py"))
    assert scripts and len(pages) == len(scripts)
    for script in scripts:
        page = pages[f"examples/{script.stem}.md"]
        assert script.read_text().rstrip() in page


def test_results_page_is_results_md_with_links_the_site_can_resolve():
    page = api.results_page()["benchmarks/results.md"]
    assert page.splitlines()[0] == "# Benchmark results"
    for target in re.findall(r"\]\(([^)\s]+)\)", page):
        assert re.match(r"^[a-z]+://|^#|^\.\./images/", target), target
        if target.startswith("../images/"):
            assert (DOCS / "images" / target.removeprefix("../images/")).is_file()


def test_a_page_missing_from_the_nav_is_appended_under_more(tmp_path):
    (tmp_path / "a.md").write_text("# a")
    (tmp_path / "new.md").write_text("# new")
    (tmp_path / "_hooks").mkdir()
    (tmp_path / "_hooks" / "x.md").write_text("# not a page")
    assert api.complete_nav(["a.md"], tmp_path) == ["a.md", {"More": ["new.md"]}]
    assert api.complete_nav(["a.md", "new.md"], tmp_path) == ["a.md", "new.md"]


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = {a or b for a, b in _mkdocs_nav()}
    written = {
        str(p.relative_to(DOCS))
        for p in DOCS.rglob("*.md")
        if "_hooks" not in p.parts and "assets" not in p.parts
    }
    generated = {"api/index.md", "benchmarks/results.md", *api.PLACEHOLDERS}
    assert written - nav == set(), "pages missing from mkdocs.yml nav"
    assert nav - written - generated == set(), "nav entries without a page"


def test_relative_links_between_pages_resolve():
    pages = [p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts and "assets" not in p.parts]
    generated = {f"examples/{s.stem}.md" for s in (ROOT / "examples").glob("*.py")}
    generated |= {"api/index.md", "benchmarks/results.md", *api.PLACEHOLDERS}
    for page in pages:
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"^[a-z]+://", target):
                continue
            resolved = (page.parent / target).resolve()
            rel = str(resolved.relative_to(DOCS)) if resolved.is_relative_to(DOCS) else None
            assert resolved.exists() or rel in generated, f"{page.name}: {target}"


def test_readme_links_to_docs_pages_that_exist():
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(((?:docs/)[^)\s#]+)", text):
        path = target.removeprefix("docs/")
        assert (ROOT / target).is_file() or path in api.PLACEHOLDERS, target


def test_rst_math_and_roles_become_markdown():
    rst = pytest.importorskip("griffe") and _load("griffe_rst")
    doc = (
        "Soft threshold.\n\n"
        ".. math:: S_t(x) = \\mathrm{sign}(x)\n"
        "   \\max(|x| - t, 0)\n\n"
        "Zero where :math:`|x| \\le t`; see :func:`l1optax.prox_l1` and ``jnp.abs``.\n\n"
        "Args:\n  x: an array."
    )
    out = rst.rst_to_markdown(doc, {"prox_l1"})
    assert "$$\nS_t(x) = \\mathrm{sign}(x)\n\\max(|x| - t, 0)\n$$" in out
    assert "$|x| \\le t$" in out
    assert "[`l1optax.prox_l1`][l1optax.prox_l1]" in out
    assert "`jnp.abs`" in out and "``" not in out
    assert out.endswith("Args:\n  x: an array.")


def test_rst_math_inside_an_indented_section_keeps_its_indentation():
    rst = pytest.importorskip("griffe") and _load("griffe_rst")
    out = rst.rst_to_markdown("Returns:\n  .. math:: x^2\n  more text", set())
    assert "  $$\n  x^2\n  $$" in out and out.rstrip().endswith("  more text")


def test_a_new_module_gets_a_section_title_from_its_docstring(monkeypatch):
    import types

    fake = types.ModuleType("l1optax._fake_new_module")
    fake.__doc__ = "Sparse training: a target sparsity, nonconvex proxes, pruning.\n\nMore."
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    assert api.section_title(fake.__name__) == "Sparse training"
    assert api.section_title("l1optax._prox") == "Proximal operators"


def test_summaries_render_inline_math_without_table_pipes():
    def f():
        r"""Proximal operator of :math:`\lambda\|\cdot\|_1` (see ``prox_l1``, :func:`~x.y`)."""

    assert (
        api.summary(f)
        == r"Proximal operator of $\lambda\Vert \cdot\Vert _1$ (see `prox_l1`, `x.y`)."
    )


@pytest.mark.parametrize(
    "name", ["prox_sgd", "prox_adam", "prox_adamw", "prox_rmsprop", "prox_adagrad"]
)
def test_api_pages_get_the_docstring_the_decorator_filled_in(name):
    """Griffe reads the source, where the optimizers' shared argument text is a ``{common}``
    template; the extension must hand mkdocstrings the text filled in at import."""
    griffe = pytest.importorskip("griffe")
    rst = _load("griffe_rst")
    package = griffe.load("l1optax", search_paths=[str(ROOT)])
    function = package[name]
    assert "{common}" in function.docstring.value  # the source still has the template
    rst.RstToMarkdown().on_instance(obj=function)
    parsed = {
        p.name
        for section in function.docstring.parse("google")
        if section.kind.value == "parameters"
        for p in section.value
    }
    assert {"learning_rate", "l1reg", "l2reg", "mask", "prox"} <= parsed
    assert "{common}" not in function.docstring.value
