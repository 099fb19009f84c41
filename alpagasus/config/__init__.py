"""Typed configuration: one dataclass per stage/group, registered in Hydra's ConfigStore.

The YAML files under ``alpagasus/conf/`` only fill these schemas in, so a misspelt key, a
value of the wrong type or an unknown mode (every mode string is an Enum) fails when Hydra
composes the config. Value checks that a type cannot express (a negative size, a port out of
range, a threshold outside the judge's scale) live in each schema's ``__post_init__``;
``to_object(cfg)`` builds the typed objects, which runs them all. The schemas import nothing of
ours but errors; the checks that need a registry (a prompt name, a selection strategy, a
benchmark kind) are in alpagasus/validation.py, whose ``validate(cfg)`` runs both at start-up,
before anything is spent.

One module per topic, every name re-exported here: enums (the mode strings), checks (shared
value checks), judge, model (model, data, training, generation), selection (filters, rating,
IFD, analysis, noise), evaluation (benchmarks, human study, report), runtime (hardware,
logger, paths) and root (``Config``, ``to_object``, ``register_configs``).
"""

from alpagasus.config.checks import (
    RATING_SCALE,
    check_base_url,
    check_size,
    check_threshold,
)
from alpagasus.config.enums import (
    AggregationRule,
    BudgetScope,
    DataSource,
    EmptyPolicy,
    ExportArm,
    GeneratorBackend,
    JournalMode,
    JudgeBackend,
    LockMode,
    LoggerMode,
    Mode,
    ModelSource,
    MTBenchSampling,
    QuantMode,
    RateMode,
    ReplyBound,
    RevisionPolicy,
    ScoreMode,
    SelectOrder,
    SelectScore,
    Stage,
    TrainMethod,
    TrainStrategy,
    UnparsedPolicy,
    train_method,
)
from alpagasus.config.evaluation import (
    BenchmarkConfig,
    CompareConfig,
    HumanConfig,
    LmEvalTask,
    ReportConfig,
)
from alpagasus.config.judge import (
    JudgeConfig,
)
from alpagasus.config.model import (
    ALPACA_STOPS,
    ArchConfig,
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
from alpagasus.config.root import (
    Config,
    register_configs,
    to_object,
)
from alpagasus.config.runtime import (
    HardwareConfig,
    LoggerConfig,
    PathsConfig,
    PlanConfig,
)
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

__all__ = [
    "ALPACA_STOPS",
    "AggregationRule",
    "AnalyzeConfig",
    "ArchConfig",
    "BaselineConfig",
    "BenchmarkConfig",
    "BudgetScope",
    "CompareConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DataSource",
    "EmptyPolicy",
    "ExportArm",
    "ExportConfig",
    "FilterConfig",
    "GenerateConfig",
    "GeneratorBackend",
    "GeneratorConfig",
    "HardwareConfig",
    "HumanConfig",
    "IFDConfig",
    "JournalMode",
    "JudgeBackend",
    "JudgeConfig",
    "LmEvalTask",
    "LockMode",
    "LoggerConfig",
    "LoggerMode",
    "LoraConfig",
    "MTBenchSampling",
    "Mode",
    "ModelConfig",
    "ModelSource",
    "NoiseConfig",
    "PathsConfig",
    "PlanConfig",
    "QuantConfig",
    "QuantMode",
    "RATING_SCALE",
    "RateConfig",
    "RateMode",
    "ReplyBound",
    "ReportConfig",
    "RevisionPolicy",
    "ScoreMode",
    "SelectConfig",
    "SelectOrder",
    "SelectScore",
    "Stage",
    "TestsetsConfig",
    "TrainConfig",
    "TrainMethod",
    "train_method",
    "TrainStrategy",
    "UnparsedPolicy",
    "check_base_url",
    "check_size",
    "check_threshold",
    "register_configs",
    "to_object",
]
