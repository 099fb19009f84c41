"""Training helpers: the method and precision of a run, and Trainer callbacks (throughput
and memory logging, a guard against dead LoRA gradients)."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import TrainerCallback

from alpagasus.config import TrainMethod, train_method  # noqa: F401 (train_method: its old home)


@dataclass(frozen=True)
class Precision:
    """The dtype the trainable model is loaded in, and the dtype it computes in.

    compute=bf16 means TrainingArguments(bf16=True): accelerate wraps forward in
    torch.autocast(bf16) and leaves the parameters in the dtype they were loaded in, so the
    optimizer updates (and its states) stay in that dtype.
    """

    weights: torch.dtype
    compute: torch.dtype

    @property
    def autocast_bf16(self) -> bool:
        return self.compute == torch.bfloat16


# Weights per method, from (compute dtype, quant.compute_dtype).
WEIGHT_DTYPE: dict[TrainMethod, Callable[[torch.dtype, torch.dtype], torch.dtype]] = {
    # fp32 master weights: a step of lr 2e-5 on a bf16 weight of size ~0.02 (bf16 spacing
    # there: 1.2e-4) rounds away most of the time. FSDP/DeepSpeed keep fp32 masters too.
    TrainMethod.full: lambda compute, quant: torch.float32,
    # The base is frozen, so compute-dtype weights lose nothing; peft keeps the adapters
    # (the trained parameters) in fp32 (get_peft_model's autocast_adapter_dtype=True).
    TrainMethod.lora: lambda compute, quant: compute,
    # 4/8-bit base; its non-quantised leftovers in quant.compute_dtype (peft's
    # prepare_model_for_kbit_training then upcasts them to fp32); adapters fp32 as above.
    TrainMethod.qlora: lambda compute, quant: quant,
}


def precision(method: TrainMethod, compute: torch.dtype, quant_compute: torch.dtype) -> Precision:
    return Precision(weights=WEIGHT_DTYPE[method](compute, quant_compute), compute=compute)


class ThroughputCallback(TrainerCallback):
    """Adds real tokens/s (padding excluded) and peak memory to every training log.

    Insert it first in the callback list: it edits the logs dict that W&B then reports, and
    the log_history entry the Trainer appended just before.
    """

    def __init__(self) -> None:
        self._time = 0.0
        self._tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._time, self._tokens = time.perf_counter(), int(state.num_input_tokens_seen or 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs:
            return
        now, tokens = time.perf_counter(), int(state.num_input_tokens_seen or 0)
        extra = {
            "tokens_per_s": round((tokens - self._tokens) / max(now - self._time, 1e-9), 1),
            "peak_memory_gib": self.peak_memory_gib(),
        }
        self._time, self._tokens = now, tokens
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)

    @staticmethod
    def peak_memory_gib() -> float:
        """Peak GPU memory allocated by torch, or on CPU the process's peak resident set."""
        if torch.cuda.is_available():
            return round(torch.cuda.max_memory_allocated() / 2**30, 3)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return round(rss / (2**30 if sys.platform == "darwin" else 2**20), 3)


class DeadGradientError(RuntimeError):
    pass


class GradientGuard(TrainerCallback):
    """Fail on the first optimizer step if trainable (LoRA) parameters get no gradient.

    Known failure: a bitsandbytes 4-bit model that ran generate() before training gives
    its adapters no gradient and training silently learns nothing. Checked once; skipped
    under FSDP/DeepSpeed, whose gradients are sharded.
    """

    def __init__(self) -> None:
        self.checked = False

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.checked or model is None or args.fsdp or args.deepspeed:
            return
        self.checked = True
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        missing = [n for n, p in params if p.grad is None]
        # lora_B starts at zero, so lora_A's first gradient is legitimately zero; the rest
        # (lora_B, or a full fine-tune's weights) cannot all be.
        live = [n for n, p in params if p.grad is not None and "lora_A" not in n
                and bool(torch.any(p.grad != 0))]
        if missing or not live:
            raise DeadGradientError(
                f"trainable tensors got no gradient ({len(missing)} of {len(params)} have none, "
                f"{len(live)} non-zero): was the model reused after generate()? "
                "Load a fresh model for training."
            )
