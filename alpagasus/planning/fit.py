"""Refused when it cannot fit: every train, generate and IFD run checks its own step against
the machine it is on before it downloads or loads anything (``main.run`` calls ``check``).

The figures come from the same estimators as stage=plan (``step_memory``), so the plan and
the refusal never disagree. ``plan.check_fit=false`` runs a step anyway (an expert who knows
better: CPU offload, a smaller batch in a custom launcher).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpagasus.config import train_method
from alpagasus.errors import AlpagasusError
from alpagasus.planning import architecture
from alpagasus.planning.estimate import (
    Arch,
    Machine,
    Memory,
    TrainSetup,
    inference_memory,
    resolve_strategy,
    scoring_memory,
    train_memory,
)
from alpagasus.planning.hardware import describe, this_machine
from alpagasus.stages.train_checks import world_size

log = logging.getLogger(__name__)

# The accelerate file each strategy launches with (alpagasus/conf/accelerate/).
ACCELERATE_FILES = {"fsdp": "fsdp.yaml", "ddp": "ddp.yaml", "zero2": "deepspeed_zero2.yaml"}
MAX_GPUS = 64  # the most GPUs a "needs N GPUs" suggestion considers


class WontFitError(AlpagasusError, RuntimeError):
    """A step needs more memory than the machine has (the figures are in the message)."""

    hint = ("plan the run for another machine with stage=plan hardware=<preset>; "
            "plan.check_fit=false runs it anyway")


@dataclass(frozen=True)
class StepMemory:
    what: str  # "training (full fine-tuning, fsdp over 4 devices)"
    memory: Memory


def train_setup(cfg: Any, devices: int, gpu: bool, launched: str | None = None) -> TrainSetup:
    """The training as the estimators see it; ``launched``: the strategy accelerate actually
    set up, which is what runs when train.strategy=auto."""
    method = str(train_method(cfg.lora.enabled, cfg.quant.mode))
    requested = str(getattr(cfg.train, "strategy", "auto"))
    strategy = resolve_strategy(launched if launched and requested == "auto" else requested,
                                method, devices)
    return TrainSetup(
        method=method, strategy=strategy, devices=devices,
        micro_batch=cfg.train.per_device_batch_size, max_length=cfg.train.max_length,
        gradient_checkpointing=bool(cfg.train.gradient_checkpointing), gpu=gpu,
        packing=bool(cfg.train.packing), lora_r=cfg.lora.r if cfg.lora.enabled else 0,
        lora_targets=tuple(cfg.lora.target_modules) if cfg.lora.enabled else (),
        double_quant=bool(cfg.quant.double_quant), quant=str(cfg.quant.mode))


def train_step(arch: Arch, cfg: Any, devices: int, gpu: bool,
               batch_tokens: int | None = None, launched: str | None = None) -> StepMemory:
    setup = TrainSetup(**{**train_setup(cfg, devices, gpu, launched).__dict__,
                          "batch_tokens": batch_tokens})
    over = f", {setup.strategy} over {devices} devices" if devices > 1 else ""
    return StepMemory(f"training ({setup.method}{over})", train_memory(arch, setup))


def generate_step(arch: Arch, cfg: Any, context: int, gpu: bool) -> StepMemory:
    return StepMemory("generation", inference_memory(arch, cfg.generate.batch_size,
                                                     context + cfg.generate.max_new_tokens, gpu))


IFD_WEIGHT_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "auto": 2.0}


def ifd_step(arch: Arch, cfg: Any, gpu: bool) -> StepMemory:
    # A sequence longer than batch_tokens makes a batch of its own (stages/ifd.batches).
    tokens = max(cfg.ifd.batch_tokens, cfg.ifd.max_length)
    return StepMemory("IFD scoring", scoring_memory(arch, tokens, gpu,
                                                    IFD_WEIGHT_BYTES[str(cfg.ifd.dtype)]))


def gpus_needed(arch: Arch, cfg: Any, machine: Machine) -> int | None:
    """The fewest devices of this machine's kind the training fits on (None: not <= 64)."""
    for n in range(2, MAX_GPUS + 1):
        if train_step(arch, cfg, n, machine.is_gpu).memory.total_gib <= machine.memory_gib:
            return n
    return None


def qlora_figure(arch: Arch, cfg: Any, gpu: bool) -> float:
    """What the same run needs as a QLoRA (train=qlora_paper's adapters, nf4)."""
    setup = train_setup(cfg, 1, gpu)
    q = TrainSetup(**{**setup.__dict__, "method": "qlora", "strategy": "single", "lora_r": 8,
                      "lora_targets": ("q_proj", "v_proj"), "double_quant": True, "quant": "nf4",
                      "gradient_checkpointing": True})
    return train_memory(arch, q).total_gib


def suggestions(arch: Arch, cfg: Any, machine: Machine) -> str:
    tips = []
    if train_method(cfg.lora.enabled, cfg.quant.mode) != "qlora":
        tips.append(f"try train=qlora_paper (~{qlora_figure(arch, cfg, machine.is_gpu):.1f} GiB)")
    needed = gpus_needed(arch, cfg, machine)
    if needed is not None and machine.is_gpu:
        setup = train_setup(cfg, needed, True)
        tips.append(f"or {needed} GPUs: accelerate launch --config_file alpagasus/conf/accelerate/"
                    f"{ACCELERATE_FILES.get(setup.strategy, 'fsdp.yaml')} --num_processes "
                    f"{needed} -m alpagasus ...")
    elif not machine.is_gpu:
        tips.append("or a GPU machine (stage=plan hardware=a100_80gb_x4 shows what fits)")
    else:
        tips.append("or more GPUs")
    return "; ".join(tips)


def launched_strategy() -> str | None:
    """What `accelerate launch` set up (None: not launched by accelerate, or one process)."""
    if world_size() <= 1:
        return None
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "zero2"
    return "ddp"


def steps_of(cfg: Any, stage: str, trains: bool, generates: bool,
             machine: Machine, devices: int, launched: str | None = None) -> list[StepMemory]:
    """The memory of each step ``stage`` runs that the planner can size (model arch known)."""
    cache = Path(cfg.paths.cache).expanduser()
    found = architecture.find(cfg.model.name_or_path, cache, cfg.model.arch)
    steps: list[StepMemory] = []
    if found.arch is None:
        log.info("fit check of %s skipped: %s", cfg.model.name, found.source)
    else:
        if trains:
            steps.append(train_step(found.arch, cfg, devices, machine.is_gpu,
                                    launched=launched))
        if generates:
            steps.append(generate_step(found.arch, cfg, cfg.train.max_length, machine.is_gpu))
    ranks_by_ifd = trains and "ifd" in (cfg.filter.method, cfg.baseline.method)
    if stage == "ifd" or ranks_by_ifd:
        model = cfg.filter.model or cfg.ifd.model
        preset = cfg.model.arch if model == cfg.model.name_or_path else None
        scorer = architecture.find(model, cache, preset)
        if scorer.arch is not None:
            steps.append(ifd_step(scorer.arch, cfg, machine.is_gpu))
    return steps


def check(cfg: Any, stage: str, trains: bool, generates: bool) -> None:
    """Exit (WontFitError) before anything loads when a step cannot fit this machine."""
    machine = this_machine(cfg.hardware)
    devices = world_size()
    requested = str(getattr(cfg.train, "strategy", "auto"))
    launched = launched_strategy()
    if trains and launched and requested not in ("auto", launched):
        raise WontFitError(
            f"train.strategy={requested} but this job was launched with {launched}: "
            f"accelerate launch --config_file alpagasus/conf/accelerate/"
            f"{ACCELERATE_FILES[requested]} ...", hint="launch with the strategy's file, or "
            f"set train.strategy={launched}")
    # CPU processes share the RAM; each GPU process has its own device.
    memory = machine.memory_gib if machine.is_gpu else machine.memory_gib / devices
    for step in steps_of(cfg, stage, trains, generates, machine, devices, launched):
        need = step.memory.total_gib
        if need <= memory:
            log.info("fit: %s needs ~%.1f GiB per device, %s has %.1f GiB", step.what, need,
                     machine.name, memory)
            continue
        message = (f"stage={stage}: {step.what} of {cfg.model.name} needs ~{need:.1f} GiB per "
                   f"device ({step.memory.describe()}), this machine has {memory:.1f} GiB "
                   f"({describe(machine)})")
        if not cfg.plan.check_fit:
            log.warning("%s; running anyway (plan.check_fit=false)", message)
            continue
        found = architecture.find(cfg.model.name_or_path, Path(cfg.paths.cache).expanduser(),
                                  cfg.model.arch)
        tips = suggestions(found.arch, cfg, machine) if step.what.startswith("training") \
            and found.arch is not None else "use a smaller model or a bigger machine"
        raise WontFitError(f"{message}; {tips}")
