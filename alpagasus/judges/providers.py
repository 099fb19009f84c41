"""API providers (OpenAI protocol, Anthropic Messages): one request each, errors classified."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from alpagasus.config import JudgeConfig
from alpagasus.expected import LogprobsError, compact_logprobs, openai_logprobs
from alpagasus.judges.base import Messages
from alpagasus.judges.errors import JudgeRequestError
from alpagasus.judges.options import expects_logprobs
from alpagasus.judges.retry import RETRYABLE_STATUS, _Retryable, retry_after_s

log = logging.getLogger(__name__)


# Where a judge's key might be by mistake: named in the log when the judge's own is unset.
_KNOWN_KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_COMPATIBLE_API_KEY")


def _api_key(cfg: JudgeConfig) -> str:
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if key:
        return key
    if cfg.base_url:  # a self-hosted server usually ignores the key, but the SDKs want one
        others = [v for v in _KNOWN_KEY_VARS if v != cfg.api_key_env and os.environ.get(v)]
        read = cfg.api_key_env or "(none: judge.api_key_env is not set)"
        if others:
            log.warning(
                "judge '%s' reads its API key from %s, which is not set, so requests to %s "
                "carry no real key (fine for a server without auth). %s is set but this judge "
                "does not read it: export %s=... or set judge.api_key_env=%s if the server "
                "needs it.", cfg.name, read, cfg.base_url, " and ".join(others),
                cfg.api_key_env or "NAME", others[0])
        else:
            log.info("judge '%s' reads its API key from %s, which is not set: requests to %s "
                     "carry no real key", cfg.name, read, cfg.base_url)
        return "not-needed"
    raise JudgeRequestError(
        f"judge '{cfg.name}' needs an API key in the environment variable "
        f"{cfg.api_key_env or '(judge.api_key_env is not set)'}"
    )


class _SdkProvider:
    """What both SDK providers share. ``send`` uses client.post (the SDKs' documented route
    for raw requests) with a body we build ourselves: the same auth, URL, timeout and error
    classes as the typed create() calls, without their params transform and response models,
    about half the client CPU per request (benchmarks/rating_throughput.py). The Anthropic
    body also carries temperature/top_p, which that SDK's messages.create() no longer names
    but the Messages API reads."""

    label: str  # the provider's name in error messages
    path: str  # the endpoint, below the client's base URL
    cfg: JudgeConfig
    sdk: Any
    client: Any
    key: str
    url: str

    def body(self, messages: Messages) -> dict[str, Any]:
        raise NotImplementedError

    def read_reply(self, r: Any) -> tuple[str, int, int, list | None]:
        raise NotImplementedError

    async def send(self, messages: Messages) -> tuple[str, int, int, list | None]:
        try:
            r = await self.client.post(self.path, body=self.body(messages), cast_to=object)
        except Exception as e:
            raise _classify(self.sdk, self.label, e, self.key, self.url) from e
        return self.read_reply(r)

    async def aclose(self) -> None:
        await self.client.close()


class OpenAIProvider(_SdkProvider):
    name, label, path = "openai", "OpenAI", "/chat/completions"

    def __init__(self, cfg: JudgeConfig, http_client: Any = None):
        import openai

        self.cfg, self.sdk = cfg, openai
        self.key = _api_key(cfg)
        # max_retries=0: the engine retries (backoff, Retry-After, counting) itself.
        self.client = openai.AsyncOpenAI(api_key=self.key, base_url=cfg.base_url,
                                         max_retries=0, timeout=cfg.request_timeout_s,
                                         http_client=http_client)
        self.url = str(self.client.base_url).rstrip("/") + self.path

    def body(self, messages: Messages) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages,
                                "temperature": self.cfg.temperature,
                                "max_tokens": self.cfg.max_tokens}
        if self.cfg.top_p != 1.0:
            body["top_p"] = self.cfg.top_p
        if expects_logprobs(self.cfg):  # expected scores: the tokens' probabilities
            body["logprobs"] = True
            body["top_logprobs"] = self.cfg.top_logprobs
        return body

    def read_reply(self, r: Any) -> tuple[str, int, int, list | None]:
        return reply_from_openai(r, self.url)


class AnthropicProvider(_SdkProvider):
    name, label, path = "anthropic", "Anthropic", "/v1/messages"

    def __init__(self, cfg: JudgeConfig, http_client: Any = None):
        import anthropic

        self.cfg, self.sdk = cfg, anthropic
        self.key = key = _api_key(cfg)
        # This SDK sends the key as "Authorization: Bearer"; the Messages API documents (and
        # Anthropic-protocol servers such as llm-katan require) the x-api-key header.
        self.client = anthropic.AsyncAnthropic(api_key=key, base_url=cfg.base_url,
                                               max_retries=0, timeout=cfg.request_timeout_s,
                                               http_client=http_client,
                                               default_headers={"x-api-key": key})
        self.url = str(self.client.base_url).rstrip("/") + self.path

    def body(self, messages: Messages) -> dict[str, Any]:
        # Anthropic takes the system prompt as a parameter, not as a message.
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {"model": self.cfg.model, "max_tokens": self.cfg.max_tokens,
                                "temperature": self.cfg.temperature,
                                "messages": [m for m in messages if m["role"] != "system"]}
        if system:
            body["system"] = system
        if self.cfg.top_p != 1.0:  # recent models refuse temperature and top_p together
            body["top_p"] = self.cfg.top_p
        return body

    def read_reply(self, r: Any) -> tuple[str, int, int, list | None]:
        return reply_from_anthropic(r, self.url)


def _json_body(body: Any, where: str) -> dict[str, Any]:
    if not isinstance(body, dict):  # a 200 that is not JSON: no retry would fix the server
        raise JudgeRequestError(f"the judge server at {where} replied with non-JSON: "
                                f"{str(body)[:200]!r}")
    return body


def _not_a_reply(where: str, body: dict[str, Any], what: str) -> JudgeRequestError:
    return JudgeRequestError(
        f"the judge server at {where} replied with JSON that is not {what}: "
        f"{json.dumps(body, ensure_ascii=False)[:300]}. Is judge.base_url right (the server's "
        "API root, e.g. http://HOST:PORT/v1 for OpenAI-protocol servers) and judge.backend the "
        "protocol it speaks?")


def reply_from_openai(body: Any, where: str = "?") -> tuple[str, int, int, list | None]:
    """(text, prompt tokens, reply tokens, logprobs as the cache stores them or None)."""
    body = _json_body(body, where)
    choices = body.get("choices")
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)
            and isinstance(choices[0].get("message"), dict)):
        raise _not_a_reply(where, body, "a chat completion (no 'choices[0].message')")
    usage = body.get("usage") or {}
    text = choices[0]["message"].get("content") or ""
    try:
        tokens = openai_logprobs(choices[0])
    except LogprobsError as e:
        raise _not_a_reply(where, body, f"chat completion logprobs ({e})") from e
    return (text, usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0,
            None if tokens is None else compact_logprobs(tokens))


def reply_from_anthropic(body: Any, where: str = "?") -> tuple[str, int, int, list | None]:
    body = _json_body(body, where)
    content = body.get("content")
    if not isinstance(content, list):
        raise _not_a_reply(where, body, "a Messages API reply (no 'content' list)")
    usage = body.get("usage") or {}
    text = "".join(b.get("text", "") for b in content
                   if isinstance(b, dict) and b.get("type") == "text")
    return text, usage.get("input_tokens") or 0, usage.get("output_tokens") or 0, None


def _classify(sdk: Any, provider: str, e: Exception, key: str = "", url: str = "?") -> Exception:
    if isinstance(e, sdk.APIStatusError):
        status = e.status_code
        # Some servers quote the key they were sent: it must not reach the logs.
        message = e.message.replace(key, "***") if len(key) >= 8 else e.message
        # OpenAI answers an exhausted quota with 429 too, but waiting does not refill it.
        quota = getattr(e, "code", None) == "insufficient_quota"
        if (status in RETRYABLE_STATUS or status >= 500) and not quota:
            return _Retryable(f"http {status}", retry_after_s(e.response.headers),
                              f"{url}: {message}")
        return JudgeRequestError(f"{provider} API error {status} from {url}: {message}")
    if isinstance(e, sdk.APITimeoutError):
        return _Retryable("timeout", None, f"no reply from {url} in time")
    if isinstance(e, sdk.APIConnectionError):
        cause = e.__cause__ or e.__context__
        return _Retryable("connection error", None,
                          f"cannot connect to {url}: {cause or e} ({type(cause or e).__name__})")
    return e


def make_provider(cfg: JudgeConfig, http_client: Any = None) -> OpenAIProvider | AnthropicProvider:
    if cfg.backend == "openai":
        return OpenAIProvider(cfg, http_client)
    if cfg.backend == "anthropic":
        return AnthropicProvider(cfg, http_client)
    raise ValueError(f"unknown API judge backend '{cfg.backend}' (openai | anthropic)")
