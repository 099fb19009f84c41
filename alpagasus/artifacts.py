"""Content-addressed artifact store: the backbone of resumable runs and sweeps.

Each stage writes one directory ``<root>/<stage>/<key>/`` where the key hashes the stage's
own config plus the keys of its inputs. The directory is built under ``.partial-<key>``
(kept across crashes, so a stage may resume from what it left there) and renamed into
place only when complete, so a visible artifact is always whole. A file lock per key
makes concurrent sweep jobs wait for each other instead of doing the work twice.

Two lock kinds (``paths.lock``):

* ``fcntl`` (default): an OS lock (``flock``) on ``.<key>.lock``. The kernel frees it when its
  process dies, so a crash never leaves it held. Safe on a local disk. On a network file
  system it is only as good as the mount's lock support: NFS without a lock manager
  (``nolock``), or Lustre mounted with ``localflock``, grants it to every node at once.
* ``soft``: the lock is the file itself, created with ``O_CREAT | O_EXCL``, which NFSv3+ and
  other network file systems make atomic across nodes. It records the holder's host and pid.
  A crash leaves the file behind: a waiter on the same host removes it once that pid is gone;
  one on another host cannot tell a dead holder from a slow one, so it keeps waiting, logging
  the holder and the file every minute (delete the file if that job is dead), up to
  ``paths.lock_timeout_s`` if set. Locks are never broken by age: two jobs building into the
  same ``.partial-<key>`` would corrupt it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import BaseFileLock, FileLock, SoftFileLock, Timeout

from alpagasus.shared_files import write_json_atomic

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_PACKAGES = ("alpagasus", "torch", "transformers", "peft", "accelerate", "hydra-core", "openai",
             "anthropic", "bitsandbytes", "trl", "wandb")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def artifact_key(config: dict[str, Any], inputs: dict[str, str]) -> str:
    return hashlib.sha256(canonical_json({"config": config, "inputs": inputs}).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    stage: str
    key: str
    path: Path
    reused: bool

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / MANIFEST).read_text())

    @property
    def counts(self) -> dict[str, Any]:
        return self.manifest.get("counts", {})


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    versions["python"] = sys.version.split()[0]
    return versions


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# How often a waiting job says who holds the lock it waits for.
LOCK_REPORT_S = 60.0
LOCK_KINDS: dict[str, type[BaseFileLock]] = {"fcntl": FileLock, "soft": SoftFileLock}


class LockTimeout(RuntimeError):
    exit_code = 1


def lock_holder(path: Path) -> str:
    """What a soft lock file says about its holder ("pid 123 on node7"), best effort: filelock
    writes "<pid>\\n<host>\\n" into it (an older filelock writes nothing)."""
    try:
        lines = path.read_text(errors="replace")[:1024].splitlines()
    except OSError:
        return "unknown holder"
    if len(lines) >= 2 and lines[0].strip().isdigit():
        return f"pid {lines[0].strip()} on {lines[1].strip()}"
    return "unknown holder"


def check_lock_settings(kind: Any, timeout_s: float | None) -> str:
    kind = getattr(kind, "value", kind)
    if kind not in LOCK_KINDS:
        raise ValueError(f"paths.lock={kind}: must be one of {', '.join(LOCK_KINDS)}")
    if timeout_s is not None and timeout_s <= 0:
        raise ValueError(f"paths.lock_timeout_s={timeout_s}: must be > 0 (or null: wait)")
    return kind


class ArtifactLock:
    """The per-key lock: waits as long as ``timeout_s`` (None: forever), saying who holds it."""

    def __init__(self, path: Path, kind: str = "fcntl", timeout_s: float | None = None,
                 report_s: float = LOCK_REPORT_S):
        kind = check_lock_settings(kind, timeout_s)
        self.path, self.kind, self.timeout_s, self.report_s = path, kind, timeout_s, report_s
        self._lock = LOCK_KINDS[kind](str(path))

    def acquire(self) -> None:
        started = time.monotonic()
        while True:
            waited = time.monotonic() - started
            step = self.report_s if self.timeout_s is None else min(
                self.report_s, max(self.timeout_s - waited, 0.0))
            try:
                self._lock.acquire(timeout=step)
                return
            except Timeout:
                waited = time.monotonic() - started
                holder = lock_holder(self.path) if self.kind == "soft" else "another process"
                if self.timeout_s is not None and waited >= self.timeout_s:
                    raise LockTimeout(
                        f"{self.path}: still held by {holder} after {waited:.0f}s "
                        f"(paths.lock_timeout_s={self.timeout_s:g}); if that job is dead, "
                        "delete the file and rerun") from None
                log.info("waiting %.0fs for %s, held by %s%s", waited, self.path, holder,
                         " (if that job is dead, delete the file)" if self.kind == "soft"
                         else "")

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> ArtifactLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ArtifactStore:
    def __init__(self, root: str | Path, lock: str = "fcntl", lock_timeout_s: float | None = None):
        self.root = Path(root)
        self.lock_kind = check_lock_settings(lock, lock_timeout_s)
        self.lock_timeout_s = lock_timeout_s

    def lock(self, stage: str, key: str) -> ArtifactLock:
        return ArtifactLock(self.root / stage / f".{key}.lock", self.lock_kind, self.lock_timeout_s)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def find(self, stage: str, key: str) -> Artifact | None:
        path = self.path(stage, key)
        if (path / MANIFEST).is_file():
            return Artifact(stage, key, path, reused=True)
        return None

    def ensure(
        self,
        stage: str,
        config: dict[str, Any],
        inputs: dict[str, str],
        build: Callable[[Path], dict[str, Any]],
        resumable: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> Artifact:
        """Return the artifact for (stage, config, inputs), building it if it is missing.

        ``build(workdir)`` writes the outputs into ``workdir`` and returns counts/metrics
        for the manifest. With ``resumable`` the workdir survives a failure so ``build`` can
        resume from it (training checkpoints); otherwise a failure leaves nothing behind.
        ``meta`` goes into the manifest but not the key (e.g. which arm asked for it first).
        """
        key = artifact_key(config, inputs)
        found = self.find(stage, key)
        if found:
            log.info("[%s] reusing artifact %s", stage, found.path)
            return found
        (self.root / stage).mkdir(parents=True, exist_ok=True)
        with self.lock(stage, key):
            found = self.find(stage, key)  # another process may have built it while we waited
            if found:
                log.info("[%s] reusing artifact %s (built by another job)", stage, found.path)
                return found
            workdir = self.root / stage / f".partial-{key}"
            if not resumable:
                shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(exist_ok=True)
            log.info("[%s] building artifact %s", stage, key)
            started = time.time()
            try:
                counts = build(workdir)
            except BaseException:
                if not resumable:
                    shutil.rmtree(workdir, ignore_errors=True)
                raise
            return self._publish(stage, key, config, inputs, counts, started, workdir, meta)

    def ensure_collective(
        self,
        stage: str,
        config: dict[str, Any],
        inputs: dict[str, str],
        build: Callable[[Path], dict[str, Any]],
        is_main: bool,
        barrier: Callable[[], None],
        meta: dict[str, Any] | None = None,
    ) -> Artifact:
        """ensure() for a build that every process of a distributed job runs together.

        All ranks build in the same (resumable) workdir; rank 0 holds the lock and publishes
        the manifest, the others wait at the barrier and then see the finished artifact.
        A per-rank lock would deadlock: rank 0 would wait inside the build for rank 1.
        """
        key = artifact_key(config, inputs)
        found = self.find(stage, key)
        barrier()  # all ranks decided on the same state before anyone builds
        if found:
            log.info("[%s] reusing artifact %s", stage, found.path)
            return found
        workdir = self.root / stage / f".partial-{key}"
        lock = self.lock(stage, key)
        if is_main:
            (self.root / stage).mkdir(parents=True, exist_ok=True)
            lock.acquire()
            workdir.mkdir(exist_ok=True)
        barrier()
        try:
            log.info("[%s] building artifact %s (collectively)", stage, key)
            started = time.time()
            counts = build(workdir)
            barrier()
            if is_main:
                self._publish(stage, key, config, inputs, counts, started, workdir, meta)
            barrier()
        finally:
            if is_main:
                lock.release()
        return Artifact(stage, key, self.path(stage, key), reused=False)

    def _publish(self, stage: str, key: str, config: dict[str, Any], inputs: dict[str, str],
                 counts: dict[str, Any], started: float, workdir: Path,
                 meta: dict[str, Any] | None = None) -> Artifact:
        """Write the manifest and rename the finished workdir into place."""
        manifest = {
            "stage": stage,
            "key": key,
            "config": config,
            "inputs": inputs,
            "counts": counts,
            "meta": meta or {},
            "versions": package_versions(),
            "git_commit": git_commit(),
            "started": started,
            "finished": time.time(),
            "seconds": round(time.time() - started, 3),
        }
        write_json_atomic(workdir / MANIFEST, manifest)
        final = self.path(stage, key)
        if final.exists():  # a stale, manifest-less directory from an older layout
            shutil.rmtree(final)
        os.replace(workdir, final)
        log.info("[%s] wrote %s in %.1fs", stage, final, manifest["seconds"])
        return Artifact(stage, key, final, reused=False)
