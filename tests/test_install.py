"""A built wheel carries its configs: `alpagasus --cfg job` works outside the source tree."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_runs_from_another_directory(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob("alpagasus-*.whl"))

    # A fresh venv that reuses the installed dependencies (but not the editable alpagasus:
    # a path added by a .pth line is not scanned for further .pth files, so the editable
    # finder of the source tree stays out).
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "reuse_deps.pth").write_text("\n".join(deps) + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
         str(wheel)], capture_output=True, text=True, timeout=300)
    if install.returncode != 0 and "no such option: --python" in install.stderr:
        pytest.skip("pip too old for --python")
    assert install.returncode == 0, install.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(env_dir / "bin" / "alpagasus"), "--cfg", "job", "model=7b",
                          "filter=chatgpt", "experiment=paper_7b"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "meta-llama/Llama-2-7b-hf" in out.stdout
    where = subprocess.run([str(py), "-c", "import alpagasus; print(alpagasus.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert str(env_dir) in where.stdout  # the wheel's copy, not the source tree
    # A user's own config dir still adds groups on top of the packaged ones.
    extra = tmp_path / "myconf" / "model"
    extra.mkdir(parents=True)
    (extra / "mine.yaml").write_text("name: mine\nname_or_path: /models/mine\n")
    out = subprocess.run([str(env_dir / "bin" / "alpagasus"), "--cfg", "job",
                          f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", "model=mine"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "/models/mine" in out.stdout
