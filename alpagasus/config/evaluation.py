"""Schemas of evaluation: benchmarks, the human study, the pairwise report, compare."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf

from alpagasus.config.checks import _positive
from alpagasus.config.enums import AggregationRule, ModelSource, MTBenchSampling
from alpagasus.errors import ConfigError


@dataclass
class LmEvalTask:
    task: str = MISSING  # an lm-eval task or group name (or one from benchmark.include_path)
    num_fewshot: int | None = None  # None: the task's own default
    metric: str = "acc,none"  # the lm-eval results key the table reports


@dataclass
class BenchmarkConfig:
    """A benchmark run on each arm's model (alpagasus/evals: one module per `kind`)."""

    name: str = MISSING
    kind: str = MISSING  # a registered benchmark: open_llm | mt_bench
    # open_llm (lm-evaluation-harness)
    tasks: list[LmEvalTask] = field(default_factory=list)
    include_path: str | None = None  # a folder of extra task YAMLs
    builtin_tasks: bool = True  # index lm-eval's own ~15k tasks too (about 20 s)
    # auto: lm-eval finds the largest that fits on a GPU; on CPU, where that search runs
    # full-length forward passes for minutes, `cpu_batch_size` is used instead.
    batch_size: str = "auto"
    max_batch_size: int = 64
    cpu_batch_size: int = 8
    model_source: ModelSource = ModelSource.adapter
    # Smoke runs: open_llm, examples per task (a fraction if < 1); mt_bench, questions.
    limit: float | None = None
    # mt_bench: a folder with question.jsonl, judge_prompts.jsonl, reference answers
    path: str | None = None
    question_ids: list[int] | None = None  # None: every question (after `limit`)
    max_new_tokens: int = 1024  # per turn (FastChat's)
    judge_max_tokens: int = 2048  # the judge explains before its [[rating]] (FastChat's)
    # mt_bench: fastchat (per-category temperatures, FastChat's llm_judge) | greedy
    sampling: MTBenchSampling = MTBenchSampling.fastchat
    seed: int = 0  # mt_bench: the sampled answers' seed (each turn and batch its own draw)

    def __post_init__(self) -> None:
        if self.name is MISSING or self.name == "???":
            return
        _positive("benchmark.limit", self.limit)
        for key in ("max_batch_size", "cpu_batch_size", "max_new_tokens", "judge_max_tokens"):
            _positive(f"benchmark.{key}", getattr(self, key))
        # The kind's own checks need the benchmark registry: alpagasus/validation.py.


@dataclass
class HumanConfig:
    """The blind human study (stage=human): one local page per annotator, labels in SQLite.
    docs/human-study.md tells the whole story."""

    host: str = "127.0.0.1"  # loopback: only this machine can reach the page
    port: int = 8765  # 0: any free port
    # Who labels: names (human.annotators=[alice,bob]) or a count (human.annotators=3:
    # annotator1..3); one secret link each. Names are stored with the labels and shown on
    # the organiser's progress page.
    annotators: Any = field(default_factory=lambda: ["${oc.env:USER,researcher}"])
    # None: every annotator labels every prompt. N: the first N prompts of the study's
    # seeded order go to everyone (agreement is measured on them), the rest are dealt out
    # one annotator at a time.
    overlap: int | None = None
    # Host headers accepted besides 127.0.0.1 / localhost / [::1] (with the port): the
    # names or addresses the annotators type when `host` is not loopback. Anything else is
    # refused (DNS rebinding).
    hosts: list[str] = field(default_factory=list)
    db: str = "${paths.root}/human/labels.sqlite"
    # The annotators' and organiser's secret links (mode 0600, reused on a restart so
    # links stay valid; delete the file to issue new ones). Never logged or tracked.
    links: str = "${paths.root}/human/links.json"
    seed: int = 0  # prompt order per annotator and which answer is left (recorded per label)
    serve: bool = True  # false: only write the report from the labels stored so far

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"human.port={self.port}: must be in 0-65535 (0: any free port)")
        names = self.annotator_names(self.annotators)
        for name in names:
            if not name.strip() or len(name) > 64 or not name.isprintable():
                raise ConfigError(f"human.annotators: {name!r} is not a usable name",
                                  hint="a printable name of 1-64 characters")
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ConfigError(f"human.annotators: {dup!r} is named twice")
        if self.overlap is not None and self.overlap < 0:
            raise ConfigError(f"human.overlap={self.overlap}: must be >= 0 "
                              "(or null: everyone labels every prompt)")
        for h in self.hosts:
            if not h or any(c in str(h) for c in "/ @?#"):
                raise ConfigError(f"human.hosts: {h!r} is not a host name or address",
                                  hint="e.g. human.hosts=[10.0.0.5,labbox.local]")

    @staticmethod
    def annotator_names(annotators: Any) -> list[str]:
        """``human.annotators`` as names: a list as given, a count N as annotator1..N."""
        is_list = isinstance(annotators, (list, tuple)) or OmegaConf.is_list(annotators)
        if isinstance(annotators, bool) or not (is_list or isinstance(annotators, int)):
            raise ConfigError(f"human.annotators={annotators!r}: a list of names or a count",
                              hint="e.g. human.annotators=[alice,bob] or human.annotators=2")
        if isinstance(annotators, int):
            if annotators < 1:
                raise ConfigError(f"human.annotators={annotators}: must be >= 1")
            return [f"annotator{i}" for i in range(1, annotators + 1)]
        names = [str(a) for a in annotators]
        if not names:
            raise ConfigError("human.annotators=[]: name at least one annotator",
                              hint="e.g. human.annotators=[alice,bob]")
        return names


@dataclass
class ReportConfig:
    rule: AggregationRule = AggregationRule.auto
    # rule=expected: mean expected scores closer than this (1-10 scale) are a tie.
    expected_tie_margin: float = 0.01
    # Percentile bootstrap CI of every winning score, resampling prompts (alpagasus/stats.py).
    ci_level: float = 0.95
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 0

    def __post_init__(self) -> None:
        _positive("report.bootstrap_resamples", self.bootstrap_resamples)
        _positive("report.expected_tie_margin", self.expected_tie_margin, allow_zero=True)
        if not 0 < self.ci_level < 1:
            raise ConfigError(f"report.ci_level={self.ci_level}: must be in (0, 1)")


@dataclass
class CompareConfig:
    """stage=compare: judge two answer files (any two models' answers) pairwise."""

    a: str | None = None  # JSON/JSONL: answers.jsonl rows, or alpaca_eval instruction/output
    b: str | None = None
    name_a: str | None = None  # labels in the report; None: the file name
    name_b: str | None = None
