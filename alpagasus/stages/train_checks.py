"""The training checks that need no weights (validate) and only the model's config (preflight),
run by the entrypoint before anything is spent, and the train artifact's key (training_spec,
which stage=plan computes too). Apart from stages/train.py so that importing them loads
neither torch nor transformers (imported inside the functions that use them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alpagasus.config import Config, QuantMode, TrainMethod, train_method
from alpagasus.errors import AlpagasusError
from alpagasus.models import resolve_model_path

if TYPE_CHECKING:
    from alpagasus.context import RunContext


class TrainConfigError(AlpagasusError, ValueError):
    pass


METHOD_NAMES = {TrainMethod.full: "full fine-tuning", TrainMethod.lora: "a LoRA",
                TrainMethod.qlora: "a QLoRA"}
# The groups that train each method, as the fix to suggest.
METHOD_GROUPS = {TrainMethod.full: "lora=none quant=none", TrainMethod.lora: "lora=paper quant=none",
                 TrainMethod.qlora: "lora=paper quant=nf4"}


def check_method(cfg: Config) -> None:
    """A preset's learning rate is for its method: a LoRA at a full fine-tuning rate (or the
    reverse) learns nothing useful, so a mismatch must be asked for (train.method=...)."""
    expected = cfg.train.method
    if expected is None:  # a preset for any method (smoke)
        return
    actual = train_method(cfg.lora.enabled, cfg.quant.mode)
    if actual != expected:
        raise TrainConfigError(
            f"train={cfg.train.name} is {METHOD_NAMES[expected]} but lora={cfg.lora.name} "
            f"quant={cfg.quant.name} is {METHOD_NAMES[actual]}: add {METHOD_GROUPS[expected]}, "
            f"or train.method={actual} to train {METHOD_NAMES[actual]} at this preset's "
            "rate on purpose"
        )


def validate(cfg: Config) -> None:
    """Checks that need no weights: run them before anything is loaded."""
    if cfg.quant.mode != QuantMode.none and not cfg.lora.enabled:
        raise TrainConfigError(
            f"quant={cfg.quant.name} trains adapters only: add a LoRA (e.g. lora=paper)"
        )
    check_method(cfg)
    if cfg.lora.enabled and not cfg.lora.target_modules:
        raise TrainConfigError(f"lora={cfg.lora.name} names no target module")
    if cfg.model.context_length and cfg.train.max_length > cfg.model.context_length:
        raise TrainConfigError(
            f"train.max_length={cfg.train.max_length} exceeds the context of model "
            f"'{cfg.model.name}' ({cfg.model.context_length} tokens)"
        )
    if cfg.train.effective_batch_size % cfg.train.per_device_batch_size:
        raise TrainConfigError("train.effective_batch_size must be a multiple of per_device_batch_size")
    gradient_accumulation(cfg.train.effective_batch_size, cfg.train.per_device_batch_size,
                          world_size())  # under a multi-process launch: fails before rating


def preflight(cfg: Config, cache_dir: Path) -> str:
    """validate() plus the checks that need the model's config, but still no weights.

    The architecture is instantiated on the meta device (no memory, no weights) so LoRA
    targets are checked against the real module names, and the context length is read from
    the model config when the model group does not give it. Returns the model path.
    """
    from transformers import AutoConfig

    validate(cfg)
    path = resolve_model_path(cfg.model.name_or_path, cache_dir)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError) as e:
        raise TrainConfigError(f"cannot read the config of model '{path}': {e}") from e
    context = cfg.model.context_length or getattr(config, "max_position_embeddings", None)
    if context and cfg.train.max_length > context:
        raise TrainConfigError(
            f"train.max_length={cfg.train.max_length} exceeds the context of model "
            f"'{cfg.model.name}' ({context} tokens)"
        )
    if cfg.lora.enabled:
        check_lora_targets(list(cfg.lora.target_modules), module_names(config, cfg))
    return path


def module_names(config, cfg: Config) -> dict[str, str]:
    """Qualified module name -> class name, from the architecture alone (meta device)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            config, trust_remote_code=cfg.model.trust_remote_code
        )
    return {name: type(module).__name__ for name, module in model.named_modules() if name}


def check_lora_targets(targets: list[str], modules: dict[str, str]) -> None:
    """Every target must name at least one module (peft's suffix match), else fail now."""
    if targets == ["all-linear"]:
        if not any(kind == "Linear" for kind in modules.values()):
            raise TrainConfigError("lora target all-linear: the model has no linear layer")
        return
    if "all-linear" in targets:
        raise TrainConfigError("lora target all-linear must be the only target")
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in modules)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, kind in modules.items() if kind == "Linear"})
        raise TrainConfigError(
            f"LoRA target modules not in the model: {missing} (its linear layers: {linear})"
        )


def gradient_accumulation(effective: int, per_device: int, world_size: int) -> int:
    """Keep the effective batch whatever the number of devices."""
    per_step = per_device * world_size
    if effective % per_step:
        raise TrainConfigError(
            f"effective batch {effective} is not a multiple of {per_device} x {world_size} devices"
        )
    return effective // per_step


def world_size() -> int:
    """Processes in this training job (set by accelerate launch / torchrun), before init."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def training_spec(ctx: RunContext, items_key: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The train artifact's (config, inputs) for a training set (`select.items_key`); stage=plan
    uses it too. Keyed by the items themselves, in order, not by the selection that chose them:
    arms that keep the same items (two thresholds, or a filter that keeps everything and the
    all-data arm) share one model, and so its answers (generate is keyed by this model's key)."""
    config = {k: ctx.section(k) for k in ("model", "lora", "quant", "train")}
    for section in config.values():
        section.pop("name", None)  # a preset's name does not change the weights
    config["train"].pop("method", None)  # implied by lora/quant, already in the key
    # How it is spread over GPUs, and the shape planning reads, do not change the weights.
    config["train"].pop("strategy", None)
    config["model"].pop("arch", None)
    return config, {"items": items_key}
