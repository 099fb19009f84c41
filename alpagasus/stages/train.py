"""Stage `train`: fine-tune the base model on an arm's training set.

Alpaca prompt format, loss on response tokens only, EOS appended. Full fine-tuning, LoRA,
or QLoRA (quant=nf4|int8 with a LoRA); a preset's `train.method` must match lora/quant.
Full fine-tuning keeps fp32 weights and optimizer states and computes in bf16 (autocast) on
a GPU; LoRA trains fp32 adapters over a bf16 or quantised base (alpagasus.training.precision).
Padding-free packing by default: the examples of a batch are concatenated into one row with
position_ids restarting at 0, and the model keeps attention within each example (needs
use_cache=False while training).

Keyed by the content of the training set (the selected items, in order) and the model and
training config, not by the arm: arms whose selections hold the same items share one model.

Output: model/ (a LoRA adapter or full weights, plus tokenizer) and train_log.json.
Checkpoints live in the artifact's partial folder until the run ends, so rerunning the same
command after an interrupt resumes from the last one. Under `accelerate launch`/torchrun all
ranks train together and rank 0 publishes the artifact (ArtifactStore.ensure_collective).

Every check that needs no weights (preflight) runs before any is loaded: LoRA targets are
matched against the architecture built on the meta device, max length against the context.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.config import Config, QuantMode
from alpagasus.context import RunContext
from alpagasus.data import Item
from alpagasus.models import compute_dtype, default_device, load_tokenizer, resolve_model_path
from alpagasus.prompts import alpaca_prompt
from alpagasus.stages import select
from alpagasus.stages.train_checks import (  # noqa: F401 (re-exported: stages.train.validate ...)
    METHOD_GROUPS,
    METHOD_NAMES,
    TrainConfigError,
    check_lora_targets,
    check_method,
    gradient_accumulation,
    module_names,
    preflight,
    training_spec,
    validate,
    world_size,
)
from alpagasus.training import GradientGuard, Precision, ThroughputCallback, precision, train_method

log = logging.getLogger(__name__)

MODEL_DIR = "model"


def tokenize_item(tok, item: Item, max_length: int) -> dict[str, list[int]] | None:
    """Prompt + response + EOS; labels mask the prompt. None if no response token fits."""
    prompt_ids = tok(alpaca_prompt(item.instruction, item.input))["input_ids"]
    response_ids = tok(item.output, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    input_ids = (prompt_ids + response_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_length]
    if all(label == -100 for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels}


def run(ctx: RunContext, arm: Arm) -> Artifact:
    return ctx.once(f"train/{arm.role}", lambda: _run(ctx, arm))


def _run(ctx: RunContext, arm: Arm) -> Artifact:
    cfg = ctx.cfg  # already validated by main.run; train() re-checks via preflight()
    selection = select.run(ctx, arm)
    selected = select.read_selected(selection)
    items = [Item(**d) for d in selected]
    config, inputs = training_spec(ctx, select.items_key(selected))

    def build(workdir: Path) -> dict[str, Any]:
        return train(cfg, items, workdir, ctx, log_prefix=f"train/{arm.name}")

    if world_size() > 1:
        # Every rank must enter the Trainer together; rank 0 alone publishes the artifact.
        from accelerate import PartialState

        # cpu=True: without it accelerate sees no distributed CPU job (gloo) and the ranks
        # would each train alone, then deadlock at the first collective.
        state = PartialState(cpu=default_device() != "cuda")
        artifact = ctx.store.ensure_collective(
            "train", config, inputs, build, state.is_main_process, state.wait_for_everyone,
            meta={"arm": arm.describe()},
        )
    else:
        artifact = ctx.store.ensure("train", config, inputs, build, resumable=True,
                                    meta={"arm": arm.describe()})
    return ctx.finish_stage(artifact, name=f"train/{arm.name}")


def attn_implementation(requested: str, device: str) -> str:
    """auto: flash-attn varlen kernels for packed rows when available, else sdpa."""
    if requested != "auto":
        return requested
    if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def training_precision(cfg: Config) -> Precision:
    """fp32 weights for full fine-tuning, bf16/fp32 or quantised base for LoRA; bf16 compute
    on a GPU that has it."""
    return precision(train_method(cfg.lora.enabled, cfg.quant.mode), compute_dtype(default_device()),
                     getattr(torch, cfg.quant.compute_dtype))


def load_trainable_model(cfg: Config, path: str):
    """Always a fresh model from disk, never an object that has served generate().

    A 4-bit bitsandbytes model that has generated before keeps state that silently stops
    the LoRA gradients, so training takes a path, not a model (GradientGuard checks it too).
    """
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = default_device()
    kwargs: dict[str, Any] = {
        "attn_implementation": attn_implementation(cfg.model.attn_implementation, device),
        "trust_remote_code": cfg.model.trust_remote_code,
        # Full fine-tuning: fp32, whatever the checkpoint's dtype (under FSDP these become
        # the fp32 sharded masters; DeepSpeed keeps its own fp32 masters).
        "dtype": training_precision(cfg).weights,
    }
    if cfg.quant.mode != QuantMode.none:
        compute = getattr(torch, cfg.quant.compute_dtype)
        if cfg.quant.mode == QuantMode.nf4:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=cfg.quant.double_quant, bnb_4bit_compute_dtype=compute,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        if device == "cuda":  # one device per process: quantised weights cannot move later
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False  # per-example attention in packed rows needs it
    if cfg.quant.mode != QuantMode.none:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.train.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        targets = list(cfg.lora.target_modules)
        model = get_peft_model(model, LoraConfig(
            r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
            target_modules="all-linear" if targets == ["all-linear"] else targets,
            task_type="CAUSAL_LM",
        ), autocast_adapter_dtype=True)  # fp32 adapters over a bf16 base (peft's default)
    return model


def make_collator(tok, packing: bool):
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

    if packing:
        # One row per batch, position_ids restarting at 0 per example: the attention mask
        # is rebuilt block-diagonal from them (sdpa/eager) or varlen (flash-attn). The first
        # label of each example becomes -100 so no example learns to predict the next one.
        return DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    return DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)


def training_arguments(cfg: Config, workdir: Path, report_to: list[str]):
    from transformers import TrainingArguments

    tc = cfg.train
    accumulation = gradient_accumulation(tc.effective_batch_size, tc.per_device_batch_size,
                                         world_size())
    device = default_device()
    return TrainingArguments(
        output_dir=str(workdir / "checkpoints"),
        num_train_epochs=tc.epochs,
        max_steps=tc.max_steps,
        learning_rate=tc.learning_rate,
        per_device_train_batch_size=tc.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        warmup_steps=tc.warmup_ratio,  # a float < 1 is a ratio of the total steps
        lr_scheduler_type=tc.lr_scheduler,
        weight_decay=tc.weight_decay,
        logging_steps=tc.logging_steps,
        save_steps=tc.save_steps,
        save_total_limit=1,
        seed=tc.seed,
        data_seed=tc.seed,
        # Autocast only: the weights keep the dtype they were loaded in (fp32 for full FT).
        bf16=training_precision(cfg).autocast_bf16,
        use_cpu=device != "cuda",
        report_to=report_to,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        # Packed rows hold no padding; padded batches carry an attention mask to count by.
        include_num_input_tokens_seen="all" if tc.packing else "non_padding",
    )


def train(cfg: Config, items: list[Item], workdir: Path, ctx: RunContext,
          callbacks: Sequence[Any] = (), log_prefix: str = "train") -> dict[str, Any]:
    from datasets import Dataset
    from transformers import Trainer, set_seed

    tc = cfg.train
    path = preflight(cfg, ctx.cache_dir)  # again here: train() is also called directly
    set_seed(tc.seed)  # LoRA init and dropout, as well as the data order
    tok = load_tokenizer(path)
    examples = [ex for it in items if (ex := tokenize_item(tok, it, tc.max_length))]
    if not examples:
        raise TrainConfigError("no training example has a response token within max_length")
    dataset = Dataset.from_list(examples)
    model = load_trainable_model(cfg, path)
    # As loaded: fp32 for full FT and for adapters (DeepSpeed may cast the module, its
    # optimizer keeps fp32 masters).
    trainable_dtype = ",".join(sorted({str(p.dtype).removeprefix("torch.")
                                       for p in model.parameters() if p.requires_grad}))
    if tc.gradient_checkpointing and cfg.quant.mode == QuantMode.none:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.lora.enabled:
            model.enable_input_require_grads()

    # Not the Trainer's own W&B callback: it logs every run under "train/*", so a job that
    # trains two arms would overwrite one with the other. Ours logs under `log_prefix`.
    args = training_arguments(cfg, workdir, report_to=[])
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      data_collator=make_collator(tok, tc.packing), processing_class=tok)
    # First, so W&B (and log_history) see the metrics it adds to each log.
    trainer.callback_handler.callbacks.insert(0, ThroughputCallback())
    if cfg.lora.enabled:
        trainer.add_callback(GradientGuard())
    if ctx.tracker.enabled:
        trainer.add_callback(ctx.tracker.trainer_callback(log_prefix))
    for callback in callbacks:
        trainer.add_callback(callback)
    checkpoints = sorted((workdir / "checkpoints").glob("checkpoint-*"))
    if checkpoints:
        log.info("resuming from %s", checkpoints[-1])
    result = trainer.train(resume_from_checkpoint=bool(checkpoints))

    trainer.save_model(str(workdir / MODEL_DIR))
    metrics = result.metrics
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    if trainer.args.should_save:
        tok.save_pretrained(workdir / MODEL_DIR)
        (workdir / "train_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
    return {
        "examples": len(examples),
        "dropped_too_long": len(items) - len(examples),
        "steps": trainer.state.global_step,
        "train_loss": round(float(metrics.get("train_loss", math.nan)), 6),
        "final_loss": losses[-1] if losses else None,
        "tokens": tokens,
        "seconds": round(float(metrics.get("train_runtime", 0.0)), 2),
        "tokens_per_s": round(tokens / max(float(metrics.get("train_runtime", 1e-9)), 1e-9), 1),
        "peak_memory_gib": ThroughputCallback.peak_memory_gib(),
        "world_size": world_size(),
        "adapter": bool(cfg.lora.enabled),
        "quant": str(cfg.quant.mode),
        "method": str(train_method(cfg.lora.enabled, cfg.quant.mode)),
        "trainable_dtype": trainable_dtype,
        "base_model": path,
    }


def model_location(artifact: Artifact, cache_dir: Path) -> tuple[str, str | None]:
    """(base weights, adapter or None) to load the trained model for inference.

    The base is resolved again from the recorded model config rather than read as a path,
    so an artifact stays usable when the cache of converted models moves.
    """
    manifest = artifact.manifest
    model_dir = str(artifact.path / MODEL_DIR)
    if manifest["counts"].get("adapter"):
        return resolve_model_path(manifest["config"]["model"]["name_or_path"], cache_dir), model_dir
    return model_dir, None
