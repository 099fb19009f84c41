"""Stage `train`: fine-tune the base model on the selected items, and on all items.

Alpaca prompt format, loss on response tokens only, EOS appended. Full fine-tuning, LoRA,
or QLoRA (quant=nf4|int8 with a LoRA). Padding-free packing by default: the examples of a
batch are concatenated into one row with position_ids restarting at 0, and the model keeps
attention within each example (needs use_cache=False while training).

Output: model/ (a LoRA adapter or full weights, plus tokenizer) and train_log.json.
Checkpoints live in the artifact's partial folder until the run ends, so rerunning the same
command after an interrupt resumes from the last one.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any, Literal

import torch

from alpagasus.artifacts import Artifact
from alpagasus.config import Config
from alpagasus.context import RunContext
from alpagasus.data import Item
from alpagasus.models import default_device, load_tokenizer, resolve_model_path
from alpagasus.prompts import alpaca_prompt
from alpagasus.stages import select

log = logging.getLogger(__name__)

Variant = Literal["selected", "full"]
MODEL_DIR = "model"


class TrainConfigError(ValueError):
    pass


def validate(cfg: Config) -> None:
    """Checks that need no weights: run them before anything is loaded."""
    if cfg.quant.mode not in ("none", "nf4", "int8"):
        raise TrainConfigError(f"quant.mode must be none, nf4 or int8, got '{cfg.quant.mode}'")
    if cfg.quant.mode != "none" and not cfg.lora.enabled:
        raise TrainConfigError(
            f"quant={cfg.quant.name} trains adapters only: add a LoRA (e.g. lora=paper)"
        )
    if cfg.model.context_length and cfg.train.max_length > cfg.model.context_length:
        raise TrainConfigError(
            f"train.max_length={cfg.train.max_length} exceeds the context of model "
            f"'{cfg.model.name}' ({cfg.model.context_length} tokens)"
        )
    if cfg.train.effective_batch_size % cfg.train.per_device_batch_size:
        raise TrainConfigError("train.effective_batch_size must be a multiple of per_device_batch_size")


def tokenize_item(tok, item: Item, max_length: int) -> dict[str, list[int]] | None:
    """Prompt + response + EOS; labels mask the prompt. None if no response token fits."""
    prompt_ids = tok(alpaca_prompt(item.instruction, item.input))["input_ids"]
    response_ids = tok(item.output, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    input_ids = (prompt_ids + response_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_length]
    if all(label == -100 for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


def gradient_accumulation(effective: int, per_device: int, world_size: int) -> int:
    """Keep the effective batch whatever the number of devices."""
    per_step = per_device * world_size
    if effective % per_step:
        raise TrainConfigError(
            f"effective batch {effective} is not a multiple of {per_device} x {world_size} devices"
        )
    return effective // per_step


def run(ctx: RunContext, variant: Variant) -> Artifact:
    return ctx.once(f"train/{variant}", lambda: _run(ctx, variant))


def _run(ctx: RunContext, variant: Variant) -> Artifact:
    cfg = ctx.cfg
    validate(cfg)
    if variant == "selected":
        selection = select.run(ctx)
        items = [Item(**d) for d in select.read_selected(selection)]
        inputs = {"dataset": f"select/{selection.key}"}
    else:
        items = ctx.items
        inputs = {"dataset": f"data/{ctx.data_key}"}
    config = {k: ctx.section(k) for k in ("model", "lora", "quant", "train")}
    for section in config.values():
        section.pop("name", None)  # a preset's name does not change the weights
    artifact = ctx.store.ensure(
        "train", config, inputs, lambda workdir: train(cfg, items, workdir, ctx), resumable=True
    )
    return ctx.finish_stage(artifact)


def load_trainable_model(cfg: Config, path: str):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = default_device()
    kwargs: dict[str, Any] = {"attn_implementation": cfg.model.attn_implementation}
    if cfg.quant.mode != "none":
        compute = getattr(torch, cfg.quant.compute_dtype)
        if cfg.quant.mode == "nf4":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=cfg.quant.double_quant, bnb_4bit_compute_dtype=compute,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["dtype"] = compute
    else:
        kwargs["dtype"] = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False  # per-example attention in packed rows needs it
    if cfg.quant.mode != "none":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.train.gradient_checkpointing
        )
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        missing = [t for t in cfg.lora.target_modules if t not in names and t != "all-linear"]
        if missing:
            raise TrainConfigError(f"LoRA target modules not in the model: {missing}")
        model = get_peft_model(model, LoraConfig(
            r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM",
        ))
    return model


def train(cfg: Config, items: list[Item], workdir: Path, ctx: RunContext) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import (
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        Trainer,
        TrainingArguments,
    )

    tc = cfg.train
    path = resolve_model_path(cfg.model.name_or_path, ctx.cache_dir)
    tok = load_tokenizer(path)
    examples = [ex for it in items if (ex := tokenize_item(tok, it, tc.max_length))]
    if not examples:
        raise TrainConfigError("no training example has a response token within max_length")
    dataset = Dataset.from_list(examples)
    model = load_trainable_model(cfg, path)
    if tc.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    accumulation = gradient_accumulation(tc.effective_batch_size, tc.per_device_batch_size, world)
    if tc.packing:
        collator = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    else:
        collator = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    on_gpu = default_device() == "cuda"
    args = TrainingArguments(
        output_dir=str(workdir / "checkpoints"),
        num_train_epochs=tc.epochs,
        max_steps=tc.max_steps,
        learning_rate=tc.learning_rate,
        per_device_train_batch_size=tc.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        warmup_steps=tc.warmup_ratio,
        lr_scheduler_type=tc.lr_scheduler,
        weight_decay=tc.weight_decay,
        logging_steps=tc.logging_steps,
        save_steps=tc.save_steps,
        save_total_limit=1,
        seed=tc.seed,
        data_seed=tc.seed,
        bf16=on_gpu and cfg.quant.mode == "none",
        use_cpu=not on_gpu,
        report_to=["wandb"] if ctx.tracker.enabled else [],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # Packed rows hold no padding; padded batches carry an attention mask to count by.
        include_num_input_tokens_seen="all" if tc.packing else "non_padding",
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    checkpoints = sorted((workdir / "checkpoints").glob("checkpoint-*"))
    if checkpoints:
        log.info("resuming from %s", checkpoints[-1])
    result = trainer.train(resume_from_checkpoint=bool(checkpoints))

    trainer.save_model(str(workdir / MODEL_DIR))
    tok.save_pretrained(workdir / MODEL_DIR)
    (workdir / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    metrics = result.metrics
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    return {
        "examples": len(examples),
        "dropped_too_long": len(items) - len(examples),
        "steps": trainer.state.global_step,
        "train_loss": round(float(metrics.get("train_loss", math.nan)), 6),
        "tokens": tokens,
        "seconds": round(float(metrics.get("train_runtime", 0.0)), 2),
        "tokens_per_s": round(tokens / max(float(metrics.get("train_runtime", 1e-9)), 1e-9), 1),
        "adapter": bool(cfg.lora.enabled),
        "base_model": path,
    }


def model_location(artifact: Artifact) -> tuple[str, str | None]:
    """(base weights, adapter or None) to load the trained model for inference."""
    manifest = artifact.manifest
    model_dir = str(artifact.path / MODEL_DIR)
    if manifest["counts"].get("adapter"):
        return manifest["counts"]["base_model"], model_dir
    return model_dir, None
