"""Why an API judge stopped: the exceptions the engine, its providers and batch jobs raise."""

from __future__ import annotations

from alpagasus.errors import AlpagasusError


class JudgeStop(AlpagasusError):
    """The judge stopped before every request had a reply; the cache keeps what it got."""

    exit_code = 2


class DryRun(JudgeStop):
    exit_code = 0  # an expected stop: the estimate is the result


class BudgetExceeded(JudgeStop):
    hint = "raise rate.max_cost_usd and run the same command again: cached replies are not paid twice"


class BatchPending(JudgeStop):
    """Batch jobs were submitted or are still running: rerun the command later."""

    exit_code = 0


class MissingReplies(JudgeStop):
    """reparse: some requests have no stored reply, and reparse sends nothing."""

    hint = "run without rate.reparse=true first, so every item gets a reply"


REPLIES_CACHED = "every reply received so far is cached"


class JudgeRequestError(AlpagasusError, RuntimeError):
    """A non-retryable API error (bad request, auth, unknown model): the provider's message."""

    exit_code = 2
    hint = ("check the key in the variable judge.api_key_env names, judge.model and "
            f"judge.base_url; {REPLIES_CACHED}")


class NoLogprobs(JudgeRequestError):
    """score_mode=expected, and the server answered without the logprobs it was asked for."""

    hint = ("use judge.score_mode=text (scores from the reply text only), or a server that "
            "returns logprobs (OpenAI, vLLM); docs/expected-scores.md")

