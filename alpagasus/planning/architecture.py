"""A model's shape and tokenizer, found without a download.

In order: a local folder's or the local HF cache's config.json (the model itself), then the
model preset's ``arch`` (7b, 13b, the embedded default carry theirs; never the
network). When none has it, the plan says why instead of guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpagasus import models
from alpagasus.models import EMBEDDED
from alpagasus.planning.estimate import Arch

# Hub organisations whose models need an accepted licence and `huggingface-cli login`.
GATED_ORGS = ("meta-llama/", "mistralai/", "google/gemma")
_CONFIG_KEYS = {  # ours -> the names HF configs use (Llama first, then GPT-2 style)
    "layers": ("num_hidden_layers", "n_layer"), "hidden": ("hidden_size", "n_embd"),
    "intermediate": ("intermediate_size", "n_inner"), "heads": ("num_attention_heads", "n_head"),
    "vocab": ("vocab_size",),
}


@dataclass(frozen=True)
class Found:
    arch: Arch | None
    source: str  # where it came from, or why there is none
    tokenizer: str | None = None  # a local folder holding the tokenizer, if any


def arch_from_node(node: Any) -> Arch:
    fields = ("layers", "hidden", "intermediate", "heads", "vocab", "kv_heads",
              "tied_embeddings", "params")
    return Arch(**{k: getattr(node, k) for k in fields})


def arch_from_config(config: dict[str, Any]) -> Arch | None:
    values = {}
    for ours, names in _CONFIG_KEYS.items():
        value = next((config[n] for n in names if config.get(n) is not None), None)
        if value is None and ours == "intermediate" and "hidden" in values:
            value = 4 * values["hidden"]  # GPT-2's default n_inner
        if value is None:
            return None
        values[ours] = int(value)
    return Arch(**values, kv_heads=config.get("num_key_value_heads"),
                tied_embeddings=bool(config.get("tie_word_embeddings", False)))


def embedded_folder(name_or_path: str, cache_dir: Path) -> Path | None:
    """The converted folder of ``embedded:NAME`` if it exists (conversion is not planning)."""
    name = name_or_path.split(":", 1)[1]
    if name not in EMBEDDED:
        return None
    folder = models.embedded_folder(name, cache_dir)
    return folder if (folder / "config.json").is_file() else None


def cached_hub_file(repo: str, filename: str) -> Path | None:
    """A file of a hub repo from the local HF cache only (no request)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo, filename)
    except Exception:  # an id that is not a repo name
        return None
    return Path(found) if isinstance(found, str) else None


def local_folder(name_or_path: str, cache_dir: Path) -> tuple[Path | None, str]:
    """(a local folder with config.json, or None; what was looked at)."""
    if name_or_path.startswith("embedded:"):
        folder = embedded_folder(name_or_path, cache_dir)
        return folder, f"{name_or_path} not converted yet (the first real run converts it)"
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return path, str(path)
    config = cached_hub_file(name_or_path, "config.json")
    if config is not None:
        return config.parent, f"the local HF cache ({config.parent})"
    return None, (f"'{name_or_path}' is neither a local folder with config.json nor in the local "
                  "HF cache")


def has_tokenizer(folder: Path) -> bool:
    return any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer.model",
                                                 "tokenizer_config.json"))


def find(name_or_path: str, cache_dir: str | Path, preset: Any = None) -> Found:
    """The architecture of a model (``preset``: the model group's ``arch`` node, if any)."""
    folder, looked = local_folder(name_or_path, Path(cache_dir))
    tokenizer = str(folder) if folder is not None and has_tokenizer(folder) else None
    # The model's own config.json first: a preset's arch is stale when model.name_or_path
    # is overridden to another model.
    arch = None
    if folder is not None:
        arch = arch_from_config(json.loads((folder / "config.json").read_text()))
        if arch is not None:
            return Found(arch, f"{folder}/config.json", tokenizer)
    if preset is not None:
        return Found(arch_from_node(preset), "the model preset's arch", tokenizer)
    if folder is None:
        return Found(None, f"no architecture: {looked}; give model.arch.* (layers, hidden, "
                           "intermediate, heads, vocab) or download the model once")
    return Found(None, f"{folder}/config.json: not a decoder layout the planner knows "
                       "(num_hidden_layers, hidden_size, ...); give model.arch.*")


def gated(name_or_path: str) -> bool:
    return name_or_path.startswith(GATED_ORGS)


def weights_cached(name_or_path: str, cache_dir: str | Path) -> bool:
    """Whether a real run would find the weights without a download."""
    folder, _ = local_folder(name_or_path, Path(cache_dir))
    if folder is None:
        return False
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin")) or \
        cached_hub_file(name_or_path, "model.safetensors.index.json") is not None
