"""Files and folders that several jobs may write or create at the same instant.

A sweep's jobs (submitit, SLURM, two terminals) start together on a fresh output root and
share files: the per-user model cache, the sweep report, manifests. Two mechanisms keep them
whole, each where it fits:

* Build in a temporary name next to the target and rename it into place (``os.replace`` is
  atomic on one file system): a reader sees the old file or the new one, never half of one.
  Temporary names are unique per call (random), not only per pid: two nodes of a
  cluster can run the same pid on a shared file system.
* An exclusive ``flock`` on a sidecar lock file serializes work that should happen once (a
  model conversion) or writers whose outputs belong together (the sweep report's files). The
  kernel drops it when its holder dies. Over NFS without lock support it may not exclude:
  the renames above still keep every file whole, at worst work is done twice.

Bottom layer: imports nothing of ours.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``lock_path`` (created if missing; blocks until free). The
    file is never deleted, so every waiter locks the same inode."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _unique(name: str) -> str:
    return f"{name}{secrets.token_hex(6)}"


@contextlib.contextmanager
def replaced_on_success(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary file name next to ``path`` with the same suffix (matplotlib
    picks the format from it); rename it onto ``path`` when the block ends without error,
    delete it otherwise. Created with the usual permissions (umask), unlike ``mkstemp``'s 0600,
    so a shared output stays readable by the group."""
    path = Path(path)
    while True:
        tmp = path.with_name(_unique(f".{path.stem}.tmp-") + path.suffix)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str, encoding: str = "utf-8") -> None:
    with replaced_on_success(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}.tmp-{socket.gethostname()}-"


def _remove_dead_builds(target: Path) -> None:
    """Remove temporary folders that a crashed build on this host left next to ``target``
    (their pid is gone); another host's are left alone: it may still be building."""
    prefix = _tmp_prefix(target)
    for tmp in target.parent.glob(prefix + "*"):
        pid = tmp.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def build_folder_once(target: Path, is_complete: Callable[[Path], bool],
                      build: Callable[[Path], None]) -> bool:
    """Make the folder ``target`` once, however many processes ask for it at the same time.

    The first one builds it with ``build(tmp_dir)`` and renames it into place; the others wait
    on the lock (``<target>.lock``) and then find it complete. True: this call built it.
    A ``target`` left incomplete (an older layout, a copy cut short) is replaced."""
    target = Path(target)
    if is_complete(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(target.with_name(f".{target.name}.lock")):
        if is_complete(target):  # built by another process while we waited
            return False
        _remove_dead_builds(target)
        tmp = target.with_name(_unique(f"{_tmp_prefix(target)}{os.getpid()}-"))
        tmp.mkdir()  # the usual permissions (umask), unlike mkdtemp's 0700
        try:
            build(tmp)
            if is_complete(target):  # NFS without flock: another node finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            if target.exists():  # incomplete: replace it
                shutil.rmtree(target)
            try:
                os.replace(tmp, target)
            except OSError:  # NFS without flock: another node renamed its build first
                if not is_complete(target):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
                return False
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True
