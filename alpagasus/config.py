"""Typed configuration: one dataclass per stage/group, registered in Hydra's ConfigStore.

The YAML files under ``alpagasus/conf/`` only fill these schemas in, so a misspelt key, a
value of the wrong type or an unknown mode (every mode string is an Enum) fails when Hydra
composes the config. Value checks that a type cannot express (a negative size, a port out of
range, a threshold outside the judge's scale) live in each schema's ``__post_init__``;
``validate(cfg)`` builds the typed objects, which runs them all, before anything is spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from alpagasus.data import EmptyPolicy
from alpagasus.errors import ConfigError

__all__ = ["ConfigError"]


class Mode(str, Enum):
    """A mode string: compares equal to its value and prints as it ("nf4", not "QuantMode.nf4")."""

    def __str__(self) -> str:
        return self.value


class Stage(Mode):
    """Targets of the `alpagasus` entry point (alpagasus/stages/__init__.py: STAGES)."""

    rate = "rate"
    select = "select"
    train = "train"
    export = "export"
    generate = "generate"
    judge = "judge"
    report = "report"
    pipeline = "pipeline"
    benchmark = "benchmark"
    human = "human"
    ifd = "ifd"
    analyze = "analyze"
    compare = "compare"
    noise = "noise"
    plan = "plan"


class JudgeBackend(Mode):
    local = "local"  # in-process transformers model
    openai = "openai"  # any OpenAI-protocol server (OpenAI, vLLM, transformers serve)
    anthropic = "anthropic"


class ScoreMode(Mode):
    text = "text"  # parse the generated reply (the paper's score)
    logits = "logits"  # local judge: read the score off the digits' next-token distribution
    # The parsed score and, beside it, the expected score from the judge's token
    # probabilities (OpenAI-protocol servers: logprobs; the local judge: its logits).
    expected = "expected"


class RevisionPolicy(Mode):
    """What a judge reply that states a score and then revises it gives (parsing_revisions)."""

    unparsed = "unparsed"  # counted and listed with the other unparsed replies
    final = "final"  # the score after the last revision


class RateMode(Mode):
    online = "online"  # concurrent requests
    batch = "batch"  # the provider's batch API (half price, up to 24 h)


class BudgetScope(Mode):
    cache = "cache"  # everything the reply cache has spent for this judge and data
    run = "run"  # only what this run sends


class UnparsedPolicy(Mode):
    exclude = "exclude"
    include = "include"


class SelectScore(Mode):
    """Which of a rating row's scores thresholds and top-N read."""

    score = "score"  # the score parsed from the reply (the paper's)
    expected = "expected"  # the expected score (judge.score_mode=expected or logits)


class SelectOrder(Mode):
    draw = "draw"  # `size` items drawn uniformly (seeded) from those that pass
    top = "top"  # the `size` best-scored, ties broken by a seeded hash


class DataSource(Mode):
    demo = "demo"
    hub = "hub"
    file = "file"


class ExportArm(Mode):
    a = "a"
    b = "b"
    both = "both"


class ModelSource(Mode):
    adapter = "adapter"  # the base with the arm's LoRA adapter (or the full fine-tune's folder)
    merged = "merged"  # the export stage's merged model


class GeneratorBackend(Mode):
    hf = "hf"  # transformers generate(), length-sorted batches (CPU or GPU)
    vllm = "vllm"  # vLLM on GPUs (optional extra `alpagasus[vllm]`)


class AggregationRule(Mode):
    """How the two answer orders' verdicts combine into one per prompt."""

    alpagasus = "alpagasus"  # the paper: two wins, or a win and a tie, is a win
    strict = "strict"  # FastChat: a win only when both orders agree; disagreement is a tie
    # Each answer's expected score averaged over both orders; the higher wins (position
    # bias cancels). Needs eval_judge.score_mode=expected (docs/expected-scores.md).
    expected = "expected"
    auto = "auto"  # expected when eval_judge.score_mode=expected, else alpagasus


class MTBenchSampling(Mode):
    """How MT-Bench answers are decoded (alpagasus/evals/mt_bench.py)."""

    fastchat = "fastchat"  # FastChat's per-category temperatures (writing 0.7, math 0.0, ...)
    greedy = "greedy"  # temperature 0 for every question


class LoggerMode(Mode):
    offline = "offline"
    online = "online"
    disabled = "disabled"


class LockMode(str, Enum):  # noqa: UP042
    """How sweep jobs take the per-artifact lock (alpagasus/artifacts.py)."""

    fcntl = "fcntl"  # an OS lock (flock): freed when its process dies; local disks
    soft = "soft"  # a lock file created with O_EXCL: safe on NFS and other network file systems


def _positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={value}: must be {'>= 0' if allow_zero else '> 0'}")


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


class ReplyBound(str, Enum):  # noqa: UP042 (StrEnum: Python >= 3.11)
    """The most tokens a reply can bill, as the budget reserves it for a request in flight."""

    auto = "auto"  # max_tokens for the providers' own endpoints (no base_url), else context
    max_tokens = "max_tokens"  # trust the server to stop at max_tokens (OpenAI, Anthropic do)
    context = "context"  # only the context bounds it: holds whatever the server does

    def __str__(self) -> str:
        return self.value


@dataclass
class JudgeConfig:
    """An LLM judge: used to rate training items and to compare answers pairwise."""

    name: str = MISSING
    backend: JudgeBackend = JudgeBackend.local
    model: str = MISSING  # API model name, or for backend=local a model path/"embedded:..."
    base_url: str | None = None
    # Name of the environment variable holding the key: keys never enter a config file.
    api_key_env: str | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    # text: parse the reply; expected: also the expected score from token probabilities
    # (docs/expected-scores.md); logits: the local judge reads its score off the digits.
    score_mode: ScoreMode = ScoreMode.text
    # A reply that revises its score ("Score: 4 ... on reflection, 3"): unparsed, or its
    # final score. Parsing only: replies are reused, the rate/judge artifacts are rebuilt.
    revision_policy: RevisionPolicy = RevisionPolicy.unparsed
    # score_mode=expected, OpenAI-protocol servers: alternatives returned per token (0-20).
    top_logprobs: int = 20
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
    # rate.max_cost_usd reserves this many reply tokens per request in flight (a reply
    # longer than max_tokens switches a run to `context`).
    reply_bound: ReplyBound = ReplyBound.auto

    def __post_init__(self) -> None:
        if self.name is MISSING or self.name == "???":
            return  # the schema's own default instance, before a YAML fills it in
        where = f"judge '{self.name}'"
        for key in ("concurrency", "max_tokens", "batch_size", "context_tokens",
                    "requests_per_minute", "tokens_per_minute", "request_timeout_s"):
            _positive(f"{where}: {key}", getattr(self, key))
        for key in ("max_retries", "price_input_per_mtok", "price_output_per_mtok",
                    "backoff_base_s", "backoff_max_s", "temperature"):
            _positive(f"{where}: {key}", getattr(self, key), allow_zero=True)
        if not 0 < self.batch_price_factor <= 1:
            raise ConfigError(f"{where}: batch_price_factor={self.batch_price_factor}: must be in (0, 1]")
        if self.base_url is not None:
            check_base_url(self.base_url, where)
        if not 1 <= self.top_logprobs <= 20:
            raise ConfigError(f"{where}: top_logprobs={self.top_logprobs}: must be in 1-20 "
                              "(the OpenAI API's limit)")
        if self.backend == JudgeBackend.anthropic and self.score_mode != ScoreMode.text:
            raise ConfigError(f"{where}: score_mode={self.score_mode} needs token "
                              "probabilities, which the Anthropic API does not return: use "
                              "score_mode=text, or an OpenAI-protocol judge for expected scores")


def check_base_url(url: str, where: str) -> None:
    """A URL the HTTP client can use: http(s), a host, a port in 1-65535."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: base_url '{url}' is not an http(s) URL with a host "
                          "(e.g. http://127.0.0.1:8000/v1)")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{where}: base_url '{url}' has a port outside 1-65535")


@dataclass
class FilterConfig:
    """How arm A's items are chosen: a registered selection strategy and its options."""

    name: str = MISSING
    # A registered strategy (alpagasus/selection): judge | random | all | ...
    method: str = "judge"
    prompt: str = "accuracy"  # rating prompt template (see alpagasus/prompts.py)
    unparsed_policy: UnparsedPolicy = UnparsedPolicy.exclude
    # Strategy options (only the strategies that read them put them in their artifact key).
    path: str | None = None  # released: the released filtered file
    model: str | None = None  # per-item scorers (ifd): the scoring model

    def __post_init__(self) -> None:
        from alpagasus.prompts import RATING_PROMPTS

        if self.prompt not in RATING_PROMPTS:
            raise ConfigError(f"filter '{self.name}': prompt={self.prompt} is not a rating prompt "
                              f"(one of {', '.join(RATING_PROMPTS)})")


@dataclass
class BaselineConfig(FilterConfig):
    """Arm B: the training set arm A is compared with (default: all items, the paper's)."""

    name: str = "all"
    method: str = "all"
    # Only for method=judge: the judge that rates for this arm (a `judge` group option).
    judge: JudgeConfig | None = None
    threshold: float | None = None  # None: the study's `threshold`
    # None: every item that passes; N; or "match": the other arm's size.
    size: Any = None
    seed: int | None = None  # None: the study's `seed`


@dataclass
class SelectConfig:
    order: SelectOrder = SelectOrder.draw  # how `size` cuts the items that pass
    # What threshold and top-N read: the parsed score, or the expected score (needs a judge
    # with score_mode=expected or logits; docs/expected-scores.md).
    score: SelectScore = SelectScore.score


@dataclass
class IFDConfig:
    """Per-item Instruction-Following Difficulty (stage=ifd; filter=ifd ranks by it)."""

    # The scoring LM: an HF id, a local folder or "embedded:NAME"; filter.model overrides it.
    model: str = "embedded:smollm2"
    batch_tokens: int = 4096  # padded tokens per forward pass (length-sorted batches)
    max_length: int = 1024  # prompt + response tokens; a longer response is cut
    dtype: str = "auto"  # auto: bf16 (CPU, recent GPUs) | float32 | bfloat16 | float16
    # Per-item scores of every scorer: shared by runs and sweep jobs, resumes a crash.
    cache: str = "${paths.root}/cache/ifd.sqlite"
    progress: bool = True

    def __post_init__(self) -> None:
        _positive("ifd.batch_tokens", self.batch_tokens)
        _positive("ifd.max_length", self.max_length)
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"ifd.dtype={self.dtype}: one of auto, float32, bfloat16, float16")


@dataclass
class AnalyzeConfig:
    """stage=analyze: compare selections, against each other and a reference label set."""

    # Filter options (the `filter` group) whose selections one job compares, each composed
    # with this job's other overrides; empty: this job's two arms.
    compare: list[str] = field(default_factory=list)
    # A released filtered file: membership of each item is the reference label (ROC AUC,
    # precision, recall of each selection).
    reference: str | None = None
    # Items a judge keeps at each of these thresholds.
    thresholds: list[float] = field(default_factory=lambda: [3.0, 3.5, 4.0, 4.5, 5.0])


@dataclass
class NoiseConfig:
    """stage=noise: re-rate a sample of items `repeats` times to measure the judge's own noise
    (alpagasus/noise.py computes it; docs/noise.md)."""

    sample: int | None = 200  # distinct items drawn (seeded); null: every distinct item
    seed: int = 0  # the draw, the perturbed orders and the local judge's sampling
    repeats: int = 5  # ratings per item; repeat 0 is the plain rating (see docs/noise.md)
    # null: the judge's own temperature; else every repeat samples at this one.
    temperature: float | None = None
    # Repeats 1.. show the item's instruction/input/response blocks in another order.
    perturb_order: bool = False

    def __post_init__(self) -> None:
        _positive("noise.sample", self.sample)
        _positive("noise.temperature", self.temperature, allow_zero=True)
        if self.repeats < 2:
            raise ConfigError(f"noise.repeats={self.repeats}: must be >= 2 (a spread needs "
                              "two ratings of an item)")


@dataclass
class RateConfig:
    """How the `rate` stage talks to an API judge (alpagasus/judges/engine.py)."""

    mode: RateMode = RateMode.online
    dry_run: bool = False  # print the estimate (items, cached, tokens, dollars) and stop
    # Stop sending before the spend could pass this many dollars; counted over `budget_scope`.
    max_cost_usd: float | None = None
    budget_scope: BudgetScope = BudgetScope.cache
    # Re-score the replies stored in the cache with the current parser; sends nothing.
    reparse: bool = False
    # A released rating file (JSON list of {"triplet" | instruction/input/output, "review"})
    # to load into the cache before rating: those items are then not sent.
    import_path: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        _positive("rate.max_cost_usd", self.max_cost_usd)


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


class TrainStrategy(str, Enum):  # noqa: UP042
    """How training spreads over several GPUs; also picks conf/accelerate/<file> to launch."""

    auto = "auto"  # fsdp for full fine-tuning on several GPUs (the paper's), else ddp
    fsdp = "fsdp"  # FSDP full shard: weights, gradients, optimizer states sharded
    ddp = "ddp"  # each GPU holds everything
    zero2 = "zero2"  # DeepSpeed ZeRO-2: optimizer states and gradients sharded

    def __str__(self) -> str:
        return self.value


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
        from alpagasus.evals import get_benchmark  # registry: imports the benchmarks

        get_benchmark(self.kind).check(self)


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


@dataclass
class HardwareConfig:
    """The machine a plan is made for (`hardware` group); `auto` detects this one, and any
    field set here (hardware.memory_gib=...) overrides what detection finds."""

    name: str = "auto"
    gpu: str | None = None  # "cpu" for a CPU-only machine
    gpus: int | None = None
    memory_gib: float | None = None  # per GPU (CPU: the machine's RAM)
    bf16_tflops: float | None = None  # dense peak per GPU (CPU: fp32 peak of all cores)
    mfu: float | None = None  # assumed model FLOPs utilization of that peak in training
    memory_bandwidth_gbs: float | None = None  # per GPU: bounds decoding speed
    price_per_gpu_hour: float | None = None  # then the plan prices compute too

    def __post_init__(self) -> None:
        for key in ("gpus", "memory_gib", "bf16_tflops", "memory_bandwidth_gbs"):
            _positive(f"hardware.{key}", getattr(self, key))
        _positive("hardware.price_per_gpu_hour", self.price_per_gpu_hour, allow_zero=True)
        if self.mfu is not None and not 0 < self.mfu <= 1:
            raise ConfigError(f"hardware.mfu={self.mfu}: must be in (0, 1]")


@dataclass
class PlanConfig:
    """stage=plan, and the fit check every train/generate/IFD run makes before loading."""

    # false: run a step the estimate says cannot fit this machine (an expert's override).
    check_fit: bool = True


@dataclass
class LoggerConfig:
    name: str = MISSING
    enabled: bool = True
    project: str = "alpagasus"
    entity: str | None = None
    mode: LoggerMode = LoggerMode.offline
    group: str | None = None
    tags: list[str] = field(default_factory=list)


class JournalMode(str, Enum):  # noqa: UP042
    """SQLite journal of the judge cache."""

    wal = "wal"  # fast, concurrent readers; needs shared memory: local disks only
    delete = "delete"  # rollback journal, no shared memory: network file systems (NFS)

    def __str__(self) -> str:
        return self.value


@dataclass
class PathsConfig:
    root: str = "outputs"
    artifacts: str = "${paths.root}/artifacts"
    # The artifact lock: fcntl (local disk), or soft when jobs on several nodes share the
    # artifacts over NFS (hydra/launcher=slurm sets it). lock_timeout_s: give up waiting for
    # another job's lock after that long (null: wait; the log names the holder every minute).
    lock: LockMode = LockMode.fcntl
    lock_timeout_s: float | None = None
    wandb: str = "${paths.root}"
    # Converted embedded models and other per-user downloads.
    cache: str = "${oc.env:ALPAGASUS_CACHE,${oc.env:HOME}/.cache/alpagasus}"
    # Every judge reply (SQLite): shared by runs and sweep jobs, so nothing is paid twice.
    judge_cache: str = "${paths.root}/cache/judge.sqlite"
    # wal, or delete when judge_cache is on NFS (WAL's shared memory is unsafe there).
    judge_cache_journal: JournalMode = JournalMode.wal


# Rating judges answer on the paper's 0-5 scale.
RATING_SCALE = (0.0, 5.0)


def check_size(key: str, size: Any, allow_match: bool) -> None:
    if size is None or (allow_match and size == "match"):
        return
    if isinstance(size, bool) or not isinstance(size, int):
        raise ConfigError(f"{key}={size!r}: must be a whole number of items"
                          + (", 'match' (the other arm's size)" if allow_match else "")
                          + " or null (all that pass)")
    if size <= 0:
        raise ConfigError(f"{key}={size}: must be > 0 (or null: every item that passes)")


def check_threshold(key: str, threshold: float) -> None:
    low, high = RATING_SCALE
    if not low <= threshold <= high:
        raise ConfigError(f"{key}={threshold}: outside the judge's {low:g}-{high:g} scale")


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
        from alpagasus.selection import get_strategy  # registry: imports the strategies

        if self.stage == Stage.benchmark and self.benchmark is None:
            raise ConfigError("stage=benchmark needs a benchmark: benchmark=open_llm or "
                              "benchmark=mt_bench")
        check_size("size", self.size, allow_match=True)
        check_size("baseline.size", self.baseline.size, allow_match=True)
        if self.size == "match" and self.baseline.size == "match":
            raise ConfigError("size=match and baseline.size=match: one arm needs a size")
        for prefix, spec, threshold, size in (
            ("filter.", self.filter, self.threshold, self.size),
            ("baseline.", self.baseline, self.baseline.threshold, self.baseline.size),
        ):
            strategy = get_strategy(spec.method, key=f"{prefix}method")
            strategy.check(spec, size, prefix)
            if strategy.uses_threshold and threshold is not None:
                check_threshold("threshold" if prefix == "filter." else "baseline.threshold",
                                threshold)
        if get_strategy(self.baseline.method).needs_judge and self.baseline.judge is None:
            raise ConfigError(f"baseline={self.baseline.name} (method judge) names no judge: "
                              "use a baseline option with a judge (baseline=chatgpt|claude)")
        if self.select.score == SelectScore.expected:
            for key, judge, method in (("judge", self.judge, self.filter.method),
                                       ("baseline.judge", self.baseline.judge,
                                        self.baseline.method)):
                if get_strategy(method).needs_judge and judge is not None and not (
                        judge.score_mode == ScoreMode.expected or (
                            judge.backend == JudgeBackend.local
                            and judge.score_mode == ScoreMode.logits)):
                    raise ConfigError(
                        f"select.score=expected needs expected scores, but {key}.score_mode="
                        f"{judge.score_mode}: set {key}.score_mode=expected (docs/expected-scores.md)")


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


def validate(cfg: DictConfig) -> Config:
    return to_object(cfg)


def register_configs() -> None:
    # One schema for the whole tree: every group option merged into it is typed by the
    # field it lands in (model -> ModelConfig, ...), so the YAMLs need no schema of their own.
    ConfigStore.instance().store(name="base_config", node=Config)
