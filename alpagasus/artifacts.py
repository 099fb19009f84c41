"""Content-addressed artifact store: the backbone of resumable runs and sweeps.

Each stage writes one directory ``<root>/<stage>/<key>/`` where the key hashes the stage's
own config plus the keys of its inputs. The directory is built under ``.partial-<key>``
(kept across crashes, so a stage may resume from what it left there) and renamed into
place only when complete, so a visible artifact is always whole. A file lock per key
makes concurrent sweep jobs wait for each other instead of doing the work twice.
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

from filelock import FileLock

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


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str))
    os.replace(tmp, path)


class ArtifactStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

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
        with FileLock(str(self.root / stage / f".{key}.lock")):
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
        lock = FileLock(str(self.root / stage / f".{key}.lock"))
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
