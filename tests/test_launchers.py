"""Launchers: launcher=local runs a sweep's jobs in parallel without doing any work twice;
launcher=slurm composes and submits the right sbatch array (checked without a cluster);
the artifact lock's NFS-safe kind (paths.lock=soft)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from alpagasus.artifacts import ArtifactLock, ArtifactStore, LockTimeout, lock_holder
from alpagasus.main import CONF_DIR
from alpagasus.stages.select import items_key


def _hydra_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_local_launcher_composes():
    cfg = _hydra_cfg("launcher=local")
    assert cfg.hydra.launcher._target_.endswith("submitit_launcher.LocalLauncher")
    assert cfg.hydra.sweeper.max_batch_size == 2  # parallel workers
    assert cfg.hydra.launcher.timeout_min >= 24 * 60
    assert cfg.paths.lock == "fcntl"


def test_slurm_launchers_compose_with_the_nfs_safe_lock():
    gpu = _hydra_cfg("launcher=slurm", "hydra.launcher.partition=gpu")
    launcher = gpu.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node) == ("gpu", 8, 8)
    assert launcher.timeout_min > 0 and launcher.mem_gb > 0 and launcher.cpus_per_task > 0
    assert gpu.paths.lock == "soft"
    cpu = _hydra_cfg("launcher=slurm_cpu")
    assert cpu.hydra.launcher.gpus_per_node is None and cpu.hydra.launcher.tasks_per_node == 1
    assert cpu.paths.lock == "soft"
    # The judge cache's SQLite journal must not be WAL on NFS either.
    assert gpu.paths.judge_cache_journal == "delete" == cpu.paths.judge_cache_journal


def test_slurm_submission_is_the_right_job_array(tmp_path):
    """`alpagasus -m experiment=threshold_sweep launcher=slurm` without a cluster: stub srun and
    sbatch (which refuses), then read what submitit wrote for sbatch: the #SBATCH resources,
    the command, and the four pickled jobs with their overrides."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).write_text("#!/bin/sh\necho \"$0: no cluster here (test)\" >&2\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "WANDB_MODE": "offline"}
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "alpagasus", "-m", "experiment=threshold_sweep",
           "launcher=slurm", "hydra.launcher.partition=gpu",
           "hydra.launcher.setup=[\"source .venv/bin/activate\"]", f"paths.root={tmp_path}",
           f"hydra.sweep.dir={sweep_dir}"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "no cluster here" in out.stderr  # sbatch was called
    [script] = (sweep_dir / ".submitit").glob(".submission_file_*.sh")
    text = script.read_text()
    for line in ("#SBATCH --array=0-3%4", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --ntasks-per-node=8", "#SBATCH --cpus-per-task=10",
                 "#SBATCH --mem=480GB", "#SBATCH --time=2880", "#SBATCH --nodes=1",
                 "source .venv/bin/activate", "export SUBMITIT_EXECUTOR=slurm"):
        assert line in text, line
    assert f"srun --unbuffered --output {sweep_dir}/.submitit/%A_%a/%A_%a_%t_log.out" in text
    assert f"{sys.executable} -u -m submitit.core._submit {sweep_dir}/.submitit/%j" in text
    jobs = {}
    for path in (sweep_dir / ".submitit").glob("*.pkl"):
        submission = pickle.loads(path.read_bytes())
        overrides, _, num = submission.args[:3]
        jobs[num] = overrides
    assert sorted(jobs) == [0, 1, 2, 3]
    assert [jobs[n][0] for n in range(4)] == [f"threshold={t}" for t in ("3.5", "4.0", "4.5", "5.0")]
    assert all("experiment=threshold_sweep" in o and "launcher=slurm" in o for o in jobs.values())


# --- the artifact lock --------------------------------------------------------------------------


N_JOBS = 6


def _build_once(root: str, kind: str, log: str, all_missed, results) -> None:
    """One sweep job asking for the artifact. Every job first sees it missing (``find`` is
    wrapped to meet the others at a barrier after its first miss), so all of them go for
    the lock together and only its re-check can keep them from building twice."""
    store = ArtifactStore(root, lock=kind)
    find, first = store.find, [True]

    def find_then_meet(stage, key):
        found = find(stage, key)
        if first[0]:
            first[0] = False
            assert found is None
            all_missed.wait()
        return found

    store.find = find_then_meet

    def build(workdir):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        (workdir / "out.txt").write_text("x")
        return {"n": 1}

    artifact = store.ensure("stage", {"k": 1}, {}, build)
    results.put((artifact.key, artifact.reused, (artifact.path / "out.txt").read_text()))


@pytest.mark.parametrize("kind", ["fcntl", "soft"])
def test_concurrent_jobs_build_an_artifact_once(tmp_path, kind):
    log = tmp_path / "builds.log"
    ctx = multiprocessing.get_context("spawn")
    all_missed, results = ctx.Barrier(N_JOBS, timeout=240), ctx.Queue()
    jobs = [ctx.Process(target=_build_once, args=(str(tmp_path / "store"), kind, str(log),
                                                  all_missed, results)) for _ in range(N_JOBS)]
    for job in jobs:
        job.start()
    outcomes = [results.get(timeout=300) for _ in jobs]
    for job in jobs:
        job.join(timeout=60)
    assert [job.exitcode for job in jobs] == [0] * N_JOBS
    assert len({key for key, _, _ in outcomes}) == 1
    assert sorted(reused for _, reused, _ in outcomes) == [False] + [True] * (N_JOBS - 1)
    assert {text for _, _, text in outcomes} == {"x"}
    assert len(log.read_text().splitlines()) == 1
    assert not list((tmp_path / "store" / "stage").glob(".partial-*"))
    assert not list((tmp_path / "store" / "stage").glob(".*.lock")) or kind == "fcntl"


def test_soft_lock_left_by_a_dead_process_on_this_host_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    path = tmp_path / ".k.lock"
    path.write_text(f"{dead}\n{socket.gethostname()}\n")
    lock = ArtifactLock(path, "soft", timeout_s=5)
    lock.acquire()
    assert lock_holder(path).startswith(f"pid {os.getpid()} on ")
    lock.release()
    assert not path.exists()


def test_soft_lock_held_on_another_host_times_out_naming_the_holder(tmp_path, caplog):
    path = tmp_path / ".k.lock"
    path.write_text("4242\nnode-elsewhere-7\n")
    caplog.set_level(logging.INFO, logger="alpagasus.artifacts")
    lock = ArtifactLock(path, "soft", timeout_s=1.5, report_s=0.5)
    started = time.monotonic()
    with pytest.raises(LockTimeout, match="held by pid 4242 on node-elsewhere-7 after") as e:
        lock.acquire()
    assert 1.4 <= time.monotonic() - started < 120  # not early; the ceiling is generous
    assert str(path) in str(e.value) and "delete the file" in str(e.value)
    assert "waiting" in caplog.text and "node-elsewhere-7" in caplog.text
    assert path.read_text() == "4242\nnode-elsewhere-7\n"  # never broken by age


def test_lock_settings_are_checked():
    with pytest.raises(ValueError, match="paths.lock=nfs"):
        ArtifactStore("x", lock="nfs")
    with pytest.raises(ValueError, match="paths.lock_timeout_s=0"):
        ArtifactStore("x", lock="soft", lock_timeout_s=0)


# --- parallel sweep on one machine --------------------------------------------------------------


@pytest.mark.slow
def test_local_launcher_2x2_sweep_builds_each_artifact_once(tmp_path):
    """A 2x2 sweep (threshold x baseline) with 2 parallel workers: one rating pass for the one
    judge, one training per distinct arm, each built by exactly one job (the others, running
    at the same time, wait on its lock and reuse it)."""
    env = {**os.environ, "WANDB_MODE": "offline"}
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "alpagasus", "-m", "debug=smoke", "launcher=local",
           "threshold=1.0,1.5", "baseline=all,random", "stage=train", "train.max_steps=1",
           "logger.enabled=false", f"paths.root={tmp_path}", f"hydra.sweep.dir={sweep_dir}"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3000)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-3000:])
    results = [json.loads((sweep_dir / str(n) / "result.json").read_text()) for n in range(4)]
    assert [r["status"] for r in results] == ["completed"] * 4
    artifacts = Path(tmp_path) / "artifacts"
    assert len([p for p in (artifacts / "rate").iterdir() if p.name[0] != "."]) == 1
    arms = {r["arms"][role]["select_key"] for r in results for role in ("a", "b")}
    assert len(arms) == 5  # A@1.0, A@1.5, all, random@|A@1.0|, random@|A@1.5|
    # Training is keyed by the items: A@1.0 keeps all 12, as do `all` and random@12.
    contents = {items_key(json.loads((p / "selected.json").read_text()))
                for p in (artifacts / "select").iterdir() if (p / "manifest.json").is_file()}
    trained = [p for p in (artifacts / "train").iterdir() if not p.name.startswith(".")]
    assert len(trained) == len(contents) < len(arms)
    builders: dict[str, list[int]] = {}
    for r in results:
        for art in r["artifacts"].values():
            if art["stage"] in ("rate", "train") and not art["reused"]:
                builders.setdefault(art["key"], []).append(r["job"]["num"])
    assert len(builders) == 1 + len(contents)  # the rating and each distinct training
    assert all(len(jobs) == 1 for jobs in builders.values())
    # Two workers: jobs 0 and 1 ran at the same time, as did 2 and 3.
    for i, j in ((0, 1), (2, 3)):
        assert results[i]["started"] < results[j]["finished"]
        assert results[j]["started"] < results[i]["finished"]
    assert results[2]["started"] >= min(results[0]["finished"], results[1]["finished"])


def test_slurm_tasks_of_a_job_get_the_torch_distributed_environment(monkeypatch):
    """What on_job_start does in task 3 of a 2-node x 2-GPU SLURM job (env as srun sets it)."""
    from alpagasus.callbacks import export_submitit_distributed

    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "4",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1", "SLURM_PROCID": "3",
             "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]",
             "CUDA_VISIBLE_DEVICES": "0,1"}
    exported = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                "MASTER_PORT", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")
    for key in exported:  # recorded as absent, so monkeypatch removes what the export sets
        monkeypatch.setenv(key, "x")
        monkeypatch.delenv(key)
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    assert export_submitit_distributed()
    env = os.environ
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == (
        "3", "4", "1", "2")
    assert env["MASTER_ADDR"] == "gpu07" and 20000 <= int(env["MASTER_PORT"]) <= 60000
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"  # every task sees the node's GPUs
    assert not export_submitit_distributed()  # RANK is set now: nothing more to do
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.delenv("RANK")
    assert not export_submitit_distributed()  # a one-task job is not distributed
