"""The judge schema: one LLM judge (rates training items, compares answers pairwise)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from alpagasus.config.checks import _positive, check_base_url
from alpagasus.config.enums import JudgeBackend, ReplyBound, RevisionPolicy, ScoreMode
from alpagasus.errors import ConfigError


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
