"""Stage `export`: a trained model as one ready-to-serve HF folder (model/ + tokenizer).

A LoRA adapter is merged into its base weights. For QLoRA the base is reloaded unquantised
(bf16/fp32) and the adapter merged into that: merging into 4-bit weights would round the
update away, and a bitsandbytes checkpoint is not what vLLM/TGI/llama.cpp serve. A full
fine-tune is re-saved in the export dtype. `export.arm` (a | b | both) picks the arm(s).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from alpagasus.arms import Arm
from alpagasus.artifacts import Artifact
from alpagasus.context import RunContext
from alpagasus.models import compute_dtype, default_device, load_tokenizer
from alpagasus.stages import train

MODEL_DIR = "model"
log = logging.getLogger(__name__)


def run(ctx: RunContext) -> list[Artifact]:
    choice = getattr(ctx.cfg.export.arm, "value", ctx.cfg.export.arm)
    roles = ["a", "b"] if choice == "both" else [choice]
    return [run_arm(ctx, ctx.arms[r]) for r in roles]


def run_arm(ctx: RunContext, arm: Arm) -> Artifact:
    """One arm's merged model (also what `benchmark.model_source=merged` evaluates)."""
    return ctx.once(f"export/{arm.role}", lambda: _run(ctx, arm))


def export_dtype(name: str) -> torch.dtype:
    if name == "auto":
        return compute_dtype(default_device())
    return getattr(torch, name)


def merged_model(base: str, adapter: str | None, dtype: torch.dtype):
    """The base in full precision with the adapter merged in (or the model as it is)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)  # never quantised here
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.config.use_cache = True  # training turned it off; serving wants it
    return model


def _run(ctx: RunContext, arm: Arm) -> Artifact:
    trained = train.run(ctx, arm)
    dtype = export_dtype(ctx.cfg.export.dtype)

    def build(workdir: Path) -> dict[str, Any]:
        base, adapter = train.model_location(trained, ctx.cache_dir)
        model = merged_model(base, adapter, dtype)
        model.save_pretrained(workdir / MODEL_DIR)
        load_tokenizer(adapter or base).save_pretrained(workdir / MODEL_DIR)
        return {
            "arm": arm.name,
            "merged_adapter": adapter is not None,
            "dequantised_base": str(trained.manifest["config"]["quant"]["mode"]) != "none",
            "dtype": str(dtype).removeprefix("torch."),
            "parameters": sum(p.numel() for p in model.parameters()),
        }

    config = {"dtype": str(dtype).removeprefix("torch.")}
    artifact = ctx.store.ensure("export", config, {"model": trained.key}, build,
                                meta={"arm": arm.describe()})
    log.info("[export] arm %s (%s): %s", arm.role, arm.name, artifact.path / MODEL_DIR)
    return ctx.finish_stage(artifact, name=f"export/{arm.name}")
