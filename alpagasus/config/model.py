"""Schemas of what is trained and how: model, data, test sets, LoRA, quantisation, training,
export, generation."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from alpagasus.config.checks import _positive
from alpagasus.config.enums import (
    DataSource,
    EmptyPolicy,
    ExportArm,
    GeneratorBackend,
    QuantMode,
    TrainMethod,
    TrainStrategy,
)
from alpagasus.errors import ConfigError


@dataclass
class ArchConfig:
    """A model's shape, so planning needs no download (alpagasus/planning/architecture.py)."""

    layers: int = MISSING
    hidden: int = MISSING
    intermediate: int = MISSING
    heads: int = MISSING
    vocab: int = MISSING
    kv_heads: int | None = None  # None: heads (no grouped-query attention)
    tied_embeddings: bool = False
    params: int | None = None  # None: counted from the shape (Llama layout)


@dataclass
class ModelConfig:
    name: str = MISSING
    # An HF hub id, a local folder, or "embedded:smollm2" for the GGUF model shipped on PyPI.
    name_or_path: str = MISSING
    context_length: int | None = None  # None: read from the model config
    dtype: str = "auto"  # auto: bf16 on a GPU that supports it, fp32 on CPU
    # auto: flash_attention_2 (varlen kernels for packed rows) on a GPU when flash-attn is
    # installed, else sdpa; or name one explicitly (sdpa | eager | flash_attention_2).
    attn_implementation: str = "auto"
    trust_remote_code: bool = False
    arch: ArchConfig | None = None  # None: read config.json from a local folder or HF cache


@dataclass
class LoraConfig:
    name: str = MISSING
    enabled: bool = False
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    # Module names (last path component), or ["all-linear"]: every linear layer but the head.
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class QuantConfig:
    name: str = MISSING
    mode: QuantMode = QuantMode.none
    double_quant: bool = True
    compute_dtype: str = "bfloat16"


@dataclass
class DataConfig:
    name: str = MISSING
    source: DataSource = DataSource.demo
    path: str | None = None  # file: local JSON/JSONL; hub: dataset id
    split: str = "train"
    limit: int | None = None  # keep only the first N items (smoke runs)
    empty_policy: EmptyPolicy = EmptyPolicy.refuse  # empty instruction/output: refuse|drop|keep
    fields: dict[str, str] = field(default_factory=dict)  # ours -> the source's: {output: response}

    def __post_init__(self) -> None:
        _positive("data.limit", self.limit)


@dataclass
class TestsetsConfig:
    __test__ = False  # not a pytest class

    name: str = MISSING
    dir: str | None = None
    # Each entry: set name -> file. "demo" is the package's own demo prompts.
    files: dict[str, str] = field(default_factory=dict)
    limit: int | None = None  # first N prompts of each set (smoke runs)

    def __post_init__(self) -> None:
        _positive("testsets.limit", self.limit)


@dataclass
class TrainConfig:
    name: str = MISSING
    # The preset's method, checked against lora/quant (train.validate); null: any method.
    method: TrainMethod | None = None
    epochs: float = 3.0
    learning_rate: float = 2e-5
    effective_batch_size: int = 128
    per_device_batch_size: int = 4
    max_length: int = 512
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    weight_decay: float = 0.0
    max_steps: int = -1  # > 0 overrides epochs
    packing: bool = True
    gradient_checkpointing: bool = False
    strategy: TrainStrategy = TrainStrategy.auto  # not in the artifact key
    save_steps: int = 200
    logging_steps: int = 5
    seed: int = 42


@dataclass
class ExportConfig:
    arm: ExportArm = ExportArm.a  # a | b | both: which arm's trained model(s) to export
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bfloat16 | float16 | float32


# The Alpaca template's own section headers: an Alpaca-trained model goes on to write the next
# "### Instruction:", so answers stop there. A markdown "### Heading" inside an answer is kept.
ALPACA_STOPS = ["\n### Instruction", "\n### Input", "\n### Response"]


@dataclass
class GenerateConfig:
    max_new_tokens: int = 1024  # the paper's; the demo and smoke configs lower it
    batch_size: int = 8
    temperature: float = 0.0
    stop: list[str] = field(default_factory=lambda: list(ALPACA_STOPS))

    def __post_init__(self) -> None:
        _positive("generate.max_new_tokens", self.max_new_tokens)
        _positive("generate.batch_size", self.batch_size)
        _positive("generate.temperature", self.temperature, allow_zero=True)


@dataclass
class GeneratorConfig:
    """What produces the answers: the `generator` group (hf | vllm)."""

    name: str = "hf"
    backend: GeneratorBackend = GeneratorBackend.hf
    # Prompts per call, answers saved after each (a rerun resumes from them). None: the hf
    # batch, generate.batch_size; vLLM schedules its own batches inside a call.
    chunk_size: int | None = None
    # vLLM only.
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None  # None: the model's own
    dtype: str = "auto"

    def __post_init__(self) -> None:
        _positive("generator.chunk_size", self.chunk_size)
        _positive("generator.tensor_parallel_size", self.tensor_parallel_size)
        _positive("generator.max_model_len", self.max_model_len)
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"generator.gpu_memory_utilization={self.gpu_memory_utilization}: "
                              "must be in (0, 1]")
