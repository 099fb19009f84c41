"""Typed configuration: one dataclass per stage/group, registered in Hydra's ConfigStore.

The YAML files under ``conf/`` only fill these schemas in, so a misspelt key or a value of
the wrong type fails when Hydra composes the config, before any model load or API call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

STAGES = ("rate", "select", "train", "export", "generate", "judge", "report", "pipeline")


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


@dataclass
class JudgeConfig:
    """An LLM judge: used to rate training items and to compare answers pairwise."""

    name: str = MISSING
    backend: str = "local"  # local | openai | anthropic (openai covers any OpenAI-protocol server)
    model: str = MISSING  # API model name, or for backend=local a model path/"embedded:..."
    base_url: str | None = None
    # Name of the environment variable holding the key: keys never enter a config file.
    api_key_env: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    # local backend: read the score off the next-token distribution of the digits
    # ("logits") instead of parsing generated text ("text").
    score_mode: str = "text"
    batch_size: int = 8  # local backend only
    concurrency: int = 16
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    request_timeout_s: float = 120.0
    max_retries: int = 8
    # Exponential backoff with full jitter: sleep U(0, min(cap, base * 2**attempt)), or the
    # server's Retry-After when it sends one.
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    context_tokens: int = 16384
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    # Provider batch APIs bill at this fraction of the on-demand price (both: 50%).
    batch_price_factor: float = 0.5


@dataclass
class FilterConfig:
    name: str = MISSING
    method: str = "judge"  # judge: rate then keep score >= threshold; random: uniform sample
    prompt: str = "accuracy"  # rating prompt template (see alpagasus/prompts.py)
    unparsed_policy: str = "exclude"  # exclude | include: what selection does with unparsed replies


@dataclass
class RateConfig:
    """How the `rate` stage talks to an API judge (alpagasus/judges/engine.py)."""

    mode: str = "online"  # online: concurrent requests | batch: the provider's batch API
    dry_run: bool = False  # print the estimate (items, cached, tokens, dollars) and stop
    max_cost_usd: float | None = None  # stop sending before this run's spend could pass it
    # Re-score the replies stored in the cache with the current parser; sends nothing.
    reparse: bool = False
    # A released rating file (JSON list of {"triplet" | instruction/input/output, "review"})
    # to load into the cache before rating: those items are then not sent.
    import_path: str | None = None
    progress: bool = True


@dataclass
class LoraConfig:
    name: str = MISSING
    enabled: bool = False
    r: int = 8
    alpha: int = 32
    dropout: float = 0.05
    # Module names (last path component), or ["all-linear"]: every linear layer but the head.
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


class QuantMode(str, Enum):  # noqa: UP042 (StrEnum needs 3.11; we support 3.10)
    none = "none"
    nf4 = "nf4"  # QLoRA: 4-bit NormalFloat
    int8 = "int8"

    def __str__(self) -> str:  # "nf4", not "QuantMode.nf4", in messages and f-strings
        return self.value


class TrainMethod(str, Enum):  # noqa: UP042
    """What a training preset trains; its learning rate only makes sense for that."""

    full = "full"  # every weight, fp32 masters (lora=none quant=none)
    lora = "lora"  # adapters over a frozen bf16/fp32 base (a LoRA, quant=none)
    qlora = "qlora"  # adapters over a quantised base (a LoRA, quant=nf4|int8)

    def __str__(self) -> str:
        return self.value


@dataclass
class QuantConfig:
    name: str = MISSING
    mode: QuantMode = QuantMode.none
    double_quant: bool = True
    compute_dtype: str = "bfloat16"


@dataclass
class DataConfig:
    name: str = MISSING
    source: str = "demo"  # demo | hub | file
    path: str | None = None  # file: local JSON/JSONL; hub: dataset id
    split: str = "train"
    limit: int | None = None  # keep only the first N items (smoke runs)


@dataclass
class TestsetsConfig:
    __test__ = False  # not a pytest class

    name: str = MISSING
    dir: str | None = None
    # Each entry: set name -> file. "demo" is the package's own demo prompts.
    files: dict[str, str] = field(default_factory=dict)
    limit: int | None = None  # first N prompts of each set (smoke runs)


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
    save_steps: int = 200
    logging_steps: int = 5
    seed: int = 42


@dataclass
class ExportConfig:
    variant: str = "selected"  # selected | full | both: which trained model(s) to export
    dtype: str = "auto"  # auto (bf16 on GPU, fp32 on CPU) | bfloat16 | float16 | float32


@dataclass
class GenerateConfig:
    max_new_tokens: int = 256
    batch_size: int = 8
    temperature: float = 0.0
    stop: list[str] = field(default_factory=lambda: ["###"])


@dataclass
class LoggerConfig:
    name: str = MISSING
    enabled: bool = True
    project: str = "alpagasus"
    entity: str | None = None
    mode: str = "offline"  # offline | online | disabled
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    root: str = "outputs"
    artifacts: str = "${paths.root}/artifacts"
    wandb: str = "${paths.root}"
    # Converted embedded models and other per-user downloads.
    cache: str = "${oc.env:ALPAGASUS_CACHE,${oc.env:HOME}/.cache/alpagasus}"
    # Every judge reply (SQLite, WAL): shared by runs and sweep jobs, so nothing is paid twice.
    judge_cache: str = "${paths.root}/cache/judge.sqlite"


@dataclass
class Config:
    stage: str = "pipeline"
    seed: int = 42
    threshold: float = 4.5
    size: int | None = None  # max items kept by selection (null = all that pass)
    model: ModelConfig = MISSING
    judge: JudgeConfig = MISSING  # rates the training items (filter=chatgpt|claude|local)
    eval_judge: JudgeConfig = MISSING  # compares the two trained models' answers
    filter: FilterConfig = MISSING
    lora: LoraConfig = MISSING
    quant: QuantConfig = MISSING
    data: DataConfig = MISSING
    testsets: TestsetsConfig = MISSING
    train: TrainConfig = MISSING
    export: ExportConfig = field(default_factory=ExportConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    rate: RateConfig = field(default_factory=RateConfig)
    logger: LoggerConfig = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)


def register_configs() -> None:
    # One schema for the whole tree: every group option merged into it is typed by the
    # field it lands in (model -> ModelConfig, ...), so the YAMLs need no schema of their own.
    ConfigStore.instance().store(name="base_config", node=Config)
