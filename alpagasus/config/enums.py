"""Every mode string of the config: an Enum, so a misspelt mode fails when Hydra composes."""

from __future__ import annotations

from enum import Enum


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


class ReplyBound(str, Enum):  # noqa: UP042 (StrEnum: Python >= 3.11)
    """The most tokens a reply can bill, as the budget reserves it for a request in flight."""

    auto = "auto"  # max_tokens for the providers' own endpoints (no base_url), else context
    max_tokens = "max_tokens"  # trust the server to stop at max_tokens (OpenAI, Anthropic do)
    context = "context"  # only the context bounds it: holds whatever the server does

    def __str__(self) -> str:
        return self.value


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


class TrainStrategy(str, Enum):  # noqa: UP042
    """How training spreads over several GPUs; also picks conf/accelerate/<file> to launch."""

    auto = "auto"  # fsdp for full fine-tuning on several GPUs (the paper's), else ddp
    fsdp = "fsdp"  # FSDP full shard: weights, gradients, optimizer states sharded
    ddp = "ddp"  # each GPU holds everything
    zero2 = "zero2"  # DeepSpeed ZeRO-2: optimizer states and gradients sharded

    def __str__(self) -> str:
        return self.value


class JournalMode(str, Enum):  # noqa: UP042
    """SQLite journal of the judge cache."""

    wal = "wal"  # fast, concurrent readers; needs shared memory: local disks only
    delete = "delete"  # rollback journal, no shared memory: network file systems (NFS)

    def __str__(self) -> str:
        return self.value


class EmptyPolicy(str, Enum):  # noqa: UP042 (StrEnum needs Python 3.11; we support 3.10)
    """What loading does with items whose instruction or output is empty or only whitespace."""

    refuse = "refuse"  # stop, naming every such item
    drop = "drop"  # leave them out; logged with their locations and counted
    keep = "keep"  # use them as they are (the paper rated Alpaca-52k as is); logged, counted


def train_method(lora_enabled: bool, quant_mode: QuantMode | str) -> TrainMethod:
    """What the lora/quant groups train (quant without a LoRA is rejected by validate())."""
    if not lora_enabled:
        return TrainMethod.full
    return TrainMethod.lora if QuantMode(quant_mode) == QuantMode.none else TrainMethod.qlora
