"""The README's commands and code blocks stay true."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", TEXT, re.S).group(1).strip().splitlines()
    assert first_block[0].startswith('pip install -e ".[examples]" && python examples/')
    assert first_block[1] == 'pip install -e ".[test]" && pytest'
    script = first_block[0].split("python ", 1)[1].split()[0]
    assert (README.parent / script).is_file()


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index):
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})
