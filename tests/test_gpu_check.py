"""benchmarks/gpu_check.py (`make gpu-check`) skips cleanly where there is no CUDA device."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


def test_without_cuda_it_says_skipped_lists_the_checks_and_exits_0(tmp_path):
    # No visible CUDA device, even on a GPU machine: torch then reports none.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                          "--json", str(tmp_path / "gpu_check.json")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "no CUDA device: skipped. On a CUDA machine this runs:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == list(gpu_check.CHECKS)
    assert not (tmp_path / "gpu_check.json").exists()  # nothing measured, nothing written


def test_make_gpu_check_runs_the_script():
    if not shutil.which("make"):
        pytest.skip("no make")
    out = subprocess.run(["make", "--no-print-directory", "-n", "gpu-check", "ARGS=--steps 3"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].endswith("python benchmarks/gpu_check.py --steps 3")
