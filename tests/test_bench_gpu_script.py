"""benchmarks/gpu.sh must not rot: its --small mode runs the same steps on any device."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_script_small_mode_checks_pass_and_every_table_is_written(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    run = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--small"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    log = (tmp_path / "gpu_tables.md").read_text()
    assert "CORRECTNESS CHECK FAILED" not in log
    assert "steps that failed or timed out" not in log
    check_rows = [line for line in log.splitlines() if line.startswith("| ") and "vs NumPy" in line]
    assert len(check_rows) >= 2
    assert all(row.split("|")[5].strip() == "True" for row in check_rows)
    for table in ("big_8leaves", "mid_256leaves", "many_1024leaves", "big_8leaves_bf16"):
        assert f"### {table}" in log
        assert (tmp_path / f"{table}.json").is_file()
