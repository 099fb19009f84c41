"""The root schema (`Config`), the typed object built from a composed config, and its
registration in Hydra's ConfigStore."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from alpagasus.config.checks import check_size
from alpagasus.config.enums import Stage
from alpagasus.config.evaluation import (
    BenchmarkConfig,
    CompareConfig,
    HumanConfig,
    ReportConfig,
)
from alpagasus.config.judge import JudgeConfig
from alpagasus.config.model import (
    DataConfig,
    ExportConfig,
    GenerateConfig,
    GeneratorConfig,
    LoraConfig,
    ModelConfig,
    QuantConfig,
    TestsetsConfig,
    TrainConfig,
)
from alpagasus.config.runtime import HardwareConfig, LoggerConfig, PathsConfig, PlanConfig
from alpagasus.config.selection import (
    AnalyzeConfig,
    BaselineConfig,
    FilterConfig,
    IFDConfig,
    NoiseConfig,
    RateConfig,
    SelectConfig,
)
from alpagasus.errors import ConfigError


@dataclass
class Config:
    stage: Stage = Stage.pipeline
    seed: int = 42
    # Arm A, the design card's top-level selection: filter + threshold + size (+ seed).
    threshold: float = 4.5
    size: Any = None  # max items kept (null = all that pass; "match" = arm B's size)
    model: ModelConfig = MISSING
    judge: JudgeConfig = MISSING  # rates the training items for arm A's filter
    eval_judge: JudgeConfig = MISSING  # compares the two trained models' answers
    filter: FilterConfig = MISSING
    baseline: BaselineConfig = field(default_factory=BaselineConfig)  # arm B
    select: SelectConfig = field(default_factory=SelectConfig)
    lora: LoraConfig = MISSING
    quant: QuantConfig = MISSING
    data: DataConfig = MISSING
    testsets: TestsetsConfig = MISSING
    train: TrainConfig = MISSING
    export: ExportConfig = field(default_factory=ExportConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    rate: RateConfig = field(default_factory=RateConfig)
    benchmark: BenchmarkConfig | None = None  # `benchmark=open_llm|mt_bench`
    human: HumanConfig = field(default_factory=HumanConfig)
    ifd: IFDConfig = field(default_factory=IFDConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    logger: LoggerConfig = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        if self.filter is MISSING or not isinstance(self.filter, FilterConfig):
            return  # the schema's own default instance
        if self.stage == Stage.benchmark and self.benchmark is None:
            raise ConfigError("stage=benchmark needs a benchmark: benchmark=open_llm or "
                              "benchmark=mt_bench")
        check_size("size", self.size, allow_match=True)
        check_size("baseline.size", self.baseline.size, allow_match=True)
        if self.size == "match" and self.baseline.size == "match":
            raise ConfigError("size=match and baseline.size=match: one arm needs a size")
        # The checks that need the strategy registry: alpagasus/validation.py.


def to_object(cfg: DictConfig) -> Config:
    """The typed config; every schema's ``__post_init__`` check runs here."""
    try:
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except ConfigError:
        raise
    except Exception as e:  # omegaconf's own errors: a missing value (???), a bad type
        key = getattr(e, "full_key", None)
        what = str(e).splitlines()[0]
        if "missing mandatory value" in what.lower() and key:
            raise ConfigError(f"{key} is required (set {key}=...)") from e
        raise ConfigError(f"config{f' key {key}' if key else ''}: {what}") from e


def register_configs() -> None:
    # One schema for the whole tree: every group option merged into it is typed by the
    # field it lands in (model -> ModelConfig, ...), so the YAMLs need no schema of their own.
    ConfigStore.instance().store(name="base_config", node=Config)
