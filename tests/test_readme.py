"""The README's commands and the code in the README and the docs pages stay true.

Every fenced ```` ```python ```` block runs: the README's one by one, each docs page's in order in
one namespace (as a reader would paste them). A block whose first line is ``# not run: <reason>``
is skipped with that reason (e.g. multi-host code); blocks fenced ```` ```py ```` or ```` ```bash ````
are shown, never run.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text()
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"^\s*# not run: (.+)")
BLOCKS = FENCE.findall(TEXT)
PAGES = sorted(
    p
    for p in (ROOT / "docs").rglob("*.md")
    if "_hooks" not in p.parts and FENCE.search(p.read_text())
)


def _run(blocks: list[str], name: str, namespace: dict) -> list[str]:
    skipped = []
    for i, block in enumerate(blocks):
        reason = NOT_RUN.match(block)
        if reason:
            skipped.append(f"{name}[python block {i}]: {reason.group(1)}")
            continue
        exec(compile(block, f"{name}[python block {i}]", "exec"), namespace)
    return skipped


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", TEXT, re.S).group(1).strip().splitlines()
    assert first_block[0] == 'pip install -e ".[examples]" && python examples/sparse_mlp.py'
    assert first_block[1] == 'pip install -e ".[test]" && pytest'
    script = first_block[0].split("python ", 1)[1].split()[0]
    assert (README.parent / script).is_file()
    assert TEXT.index("```bash") < TEXT.index("\n## ")  # before any section


def test_readme_is_at_most_8_kb():
    assert len(README.read_bytes()) <= 8 * 1024


def test_readme_has_a_short_quickstart():
    assert BLOCKS, "the README has a python quickstart"
    assert len(BLOCKS[0].strip().splitlines()) <= 15


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
    assert not _run([BLOCKS[index]], "README.md", {})


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT / "docs")))
def test_docs_page_python_blocks_run_in_order(page):
    skipped = _run(FENCE.findall(page.read_text()), str(page.relative_to(ROOT)), {})
    for reason in skipped:
        print("skipped:", reason)


def test_not_run_marker_is_the_only_way_to_skip_a_block():
    """A skipped block says why on its first line; the marker is honoured, nothing else is."""
    assert _run(["# not run: needs a cluster\nraise RuntimeError"], "x", {}) == [
        "x[python block 0]: needs a cluster"
    ]
    with pytest.raises(RuntimeError):
        _run(["# not run\nraise RuntimeError"], "x", {})
