"""Start-up checks that need the registries: a rating prompt's name, a selection strategy
and its options, a benchmark kind.

The schemas (alpagasus/config) import nothing of ours above them, so these checks live here,
a layer above both the schemas and the registries. ``validate(cfg)`` builds the typed config
(running every schema's own ``__post_init__`` check) and then these, once at start-up, before
anything is spent.
"""

from __future__ import annotations

from omegaconf import DictConfig

from alpagasus.config import (
    BenchmarkConfig,
    Config,
    ConfigError,
    FilterConfig,
    SelectScore,
    check_threshold,
    to_object,
)
from alpagasus.evals import get_benchmark
from alpagasus.judges.base import reads_expected
from alpagasus.prompts import RATING_PROMPTS
from alpagasus.selection import get_strategy


def check_prompt(spec: FilterConfig) -> None:
    """The filter's (or baseline's) rating prompt is one alpagasus/prompts.py defines."""
    if spec.prompt not in RATING_PROMPTS:
        raise ConfigError(f"filter '{spec.name}': prompt={spec.prompt} is not a rating prompt "
                          f"(one of {', '.join(RATING_PROMPTS)})")


def check_benchmark(benchmark: BenchmarkConfig) -> None:
    """The registered benchmark of this kind checks its own options."""
    get_benchmark(benchmark.kind).check(benchmark)


def check_selection(config: Config) -> None:
    """Each arm's strategy exists and accepts its options; thresholds within the scale."""
    for prefix, spec, threshold, size in (
        ("filter.", config.filter, config.threshold, config.size),
        ("baseline.", config.baseline, config.baseline.threshold, config.baseline.size),
    ):
        strategy = get_strategy(spec.method, key=f"{prefix}method")
        strategy.check(spec, size, prefix)
        if strategy.uses_threshold and threshold is not None:
            check_threshold("threshold" if prefix == "filter." else "baseline.threshold",
                            threshold)
    if get_strategy(config.baseline.method).needs_judge and config.baseline.judge is None:
        raise ConfigError(f"baseline={config.baseline.name} (method judge) names no judge: "
                          "use a baseline option with a judge (baseline=chatgpt|claude)")
    if config.select.score == SelectScore.expected:
        for key, judge, method in (("judge", config.judge, config.filter.method),
                                   ("baseline.judge", config.baseline.judge,
                                    config.baseline.method)):
            if get_strategy(method).needs_judge and judge is not None \
                    and not reads_expected(judge):
                raise ConfigError(
                    f"select.score=expected needs expected scores, but {key}.score_mode="
                    f"{judge.score_mode}: set {key}.score_mode=expected (docs/expected-scores.md)")


def validate(cfg: DictConfig) -> Config:
    """The typed config, with every check that needs no data run: the schemas' own, then the
    registries' (prompt names, strategies, benchmark kinds)."""
    config = to_object(cfg)
    check_prompt(config.filter)
    check_prompt(config.baseline)
    if config.benchmark is not None:
        check_benchmark(config.benchmark)
    check_selection(config)
    return config
