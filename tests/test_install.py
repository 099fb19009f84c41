"""A built wheel carries its configs and shipped data: `alpagasus --cfg job` works outside the
source tree, and `testsets=paper` / `benchmark=mt_bench` read the copies inside the wheel."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_install_runs_from_another_directory(tmp_path):
    wheels = tmp_path / "wheels"
    # From a clean copy: a build/ folder left in the tree would carry files into the wheel
    # that setup.cfg no longer names.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "outputs", "build", "*.egg-info", "__pycache__", ".*_cache"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob("alpagasus-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"alpagasus/resources/{rel}" for rel in SHIPPED_FILES}
    assert shipped <= names, sorted(shipped - names)

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
    # Without PYTHONPATH: a source tree on it (with the egg-info the build just wrote) reads
    # as "alpagasus is already installed" and pip would skip the wheel.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
         str(wheel)], env=env, capture_output=True, text=True, timeout=300)
    if install.returncode != 0 and "no such option: --python" in install.stderr:
        pytest.skip("pip too old for --python")
    assert install.returncode == 0, install.stderr[-2000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
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

    # The shipped test sets and MT-Bench files, read through the configs, from the wheel's copy.
    out = subprocess.run([str(py), "-c", SHIPPED_CHECK], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    where, prompts, questions = out.stdout.split()
    assert where.startswith(str(env_dir)) and (prompts, questions) == ("730", "80")


SHIPPED_FILES = [f"testsets/{n}_test_set.jsonl" for n in ("koala", "vicuna", "wizardlm", "sinstruct")] + [
    "testsets/LICENSES.md", "mt_bench/question.jsonl", "mt_bench/judge_prompts.jsonl",
    "mt_bench/reference_answer_gpt-4.jsonl", "mt_bench/LICENSES.md", "APACHE-2.0.txt"]
SHIPPED_CHECK = """
from hydra import compose, initialize_config_dir
from alpagasus.data import load_testsets
from alpagasus.evals.mt_bench import load_mt_bench
from alpagasus.main import CONF_DIR
with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
    cfg = compose(config_name="config", overrides=["testsets=paper", "benchmark=mt_bench"])
print(cfg.testsets.dir, len(load_testsets(cfg.testsets)),
      len(load_mt_bench(cfg.benchmark.path).questions))
"""
