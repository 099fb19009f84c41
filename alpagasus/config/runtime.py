"""Schemas of where a run happens and what it writes: hardware, planning, logger, paths."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from alpagasus.config.checks import _positive
from alpagasus.config.enums import JournalMode, LockMode, LoggerMode
from alpagasus.errors import ConfigError


@dataclass
class HardwareConfig:
    """The machine a plan is made for (`hardware` group); `auto` detects this one, and any
    field set here (hardware.memory_gib=...) overrides what detection finds."""

    name: str = "auto"
    gpu: str | None = None  # "cpu" for a CPU-only machine
    gpus: int | None = None
    memory_gib: float | None = None  # per GPU (CPU: the machine's RAM)
    bf16_tflops: float | None = None  # dense peak per GPU (CPU: fp32 peak of all cores)
    mfu: float | None = None  # assumed model FLOPs utilization of that peak in training
    memory_bandwidth_gbs: float | None = None  # per GPU: bounds decoding speed
    price_per_gpu_hour: float | None = None  # then the plan prices compute too

    def __post_init__(self) -> None:
        for key in ("gpus", "memory_gib", "bf16_tflops", "memory_bandwidth_gbs"):
            _positive(f"hardware.{key}", getattr(self, key))
        _positive("hardware.price_per_gpu_hour", self.price_per_gpu_hour, allow_zero=True)
        if self.mfu is not None and not 0 < self.mfu <= 1:
            raise ConfigError(f"hardware.mfu={self.mfu}: must be in (0, 1]")


@dataclass
class PlanConfig:
    """stage=plan, and the fit check every train/generate/IFD run makes before loading."""

    # false: run a step the estimate says cannot fit this machine (an expert's override).
    check_fit: bool = True


@dataclass
class LoggerConfig:
    name: str = MISSING
    enabled: bool = True
    project: str = "alpagasus"
    entity: str | None = None
    mode: LoggerMode = LoggerMode.offline
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    root: str = "outputs"
    artifacts: str = "${paths.root}/artifacts"
    # The artifact lock: fcntl (local disk), or soft when jobs on several nodes share the
    # artifacts over NFS (hydra/launcher=slurm sets it). lock_timeout_s: give up waiting for
    # another job's lock after that long (null: wait; the log names the holder every minute).
    lock: LockMode = LockMode.fcntl
    lock_timeout_s: float | None = None
    wandb: str = "${paths.root}"
    # Converted embedded models and other per-user downloads.
    cache: str = "${oc.env:ALPAGASUS_CACHE,${oc.env:HOME}/.cache/alpagasus}"
    # Every judge reply (SQLite): shared by runs and sweep jobs, so nothing is paid twice.
    judge_cache: str = "${paths.root}/cache/judge.sqlite"
    # wal, or delete when judge_cache is on NFS (WAL's shared memory is unsafe there).
    judge_cache_journal: JournalMode = JournalMode.wal
