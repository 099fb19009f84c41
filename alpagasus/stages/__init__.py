"""The one list of stages: what each target runs and what it needs validated first.

`alpagasus stage=NAME` looks the target up here; `Stage` in alpagasus/config.py is the enum of
the same names (a test checks they agree), so a misspelt stage fails at compose time. A stage
module exposes ``run(ctx[, arm])``; per-arm stages run for both arms.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alpagasus.context import RunContext
from alpagasus.selection import SelectionError


@dataclass(frozen=True)
class StageSpec:
    name: str
    doc: str
    target: Callable[[RunContext], Any]
    needs_testsets: bool = False  # test prompts are loaded and validated up front
    trains: bool = False  # training config and model preflight are checked up front
    check: Callable[[RunContext], Any] | None = None  # the stage's own input checks, up front
    # Spends nothing (stage=plan): no input check fails it, no fit check, no W&B run.
    plans: bool = False
    loads_models: bool = False  # checks its steps fit the machine before loading (ifd)


def _module(name: str):
    return importlib.import_module(f"alpagasus.stages.{name}")


def _per_arm(stage: str, judged_only: bool = False) -> Callable[[RunContext], Any]:
    def target(ctx: RunContext) -> list[Any]:
        arms = [a for a in ctx.arms.values() if a.judge is not None or not judged_only]
        if judged_only and not arms:
            raise SelectionError("stage=rate: neither arm rates with a judge "
                                 f"({', '.join(a.method for a in ctx.arms.values())})")
        return [_module(stage).run(ctx, arm) for arm in arms]

    return target


def _ifd(ctx: RunContext) -> list[Any]:
    """IFD with each ifd arm's model, or with ``ifd.model`` when no arm ranks by IFD."""
    models = {a.model for a in ctx.arms.values() if a.method == "ifd"} or {None}
    return [_module("ifd").run(ctx, model) for model in sorted(models, key=str)]


STAGES: dict[str, StageSpec] = {s.name: s for s in [
    StageSpec("rate", "the judge(s) rate every item 0-5", _per_arm("rate", judged_only=True)),
    StageSpec("select", "each arm's training set", _per_arm("select")),
    StageSpec("train", "fine-tune the base model on each arm", _per_arm("train"), trains=True),
    StageSpec("export", "merge an arm's adapter into a servable model",
              lambda ctx: _module("export").run(ctx), trains=True),
    StageSpec("generate", "each arm's model answers the test prompts", _per_arm("generate"),
              needs_testsets=True, trains=True),
    StageSpec("judge", "the evaluation judge compares the arms' answers in both orders",
              lambda ctx: _module("judge").run(ctx), needs_testsets=True, trains=True),
    StageSpec("report", "win/tie/lose, winning score, plot",
              lambda ctx: _module("report").run(ctx), needs_testsets=True, trains=True),
    StageSpec("pipeline", "alias of report: the whole chain",
              lambda ctx: _module("report").run(ctx), needs_testsets=True, trains=True),
    StageSpec("benchmark", "benchmark=open_llm|mt_bench on each arm's model, side by side",
              lambda ctx: _module("benchmark").run(ctx), trains=True),
    StageSpec("human", "a blind human study of the two arms' answers, vs the LLM judge",
              lambda ctx: _module("human").run(ctx), needs_testsets=True, trains=True),
    StageSpec("ifd", "per-item Instruction-Following Difficulty with a small LM", _ifd,
              loads_models=True),
    StageSpec("analyze", "compare selections: overlap, agreement, AUC against a reference",
              lambda ctx: _module("analyze").run(ctx)),
    StageSpec("noise", "re-rate a sample k times: the judge's own noise (spread, flips, alpha)",
              lambda ctx: _module("noise").run(ctx),
              check=lambda ctx: _module("noise").check(ctx)),
    StageSpec("compare", "judge two answer files (compare.a, compare.b) pairwise and report",
              lambda ctx: _module("report").run_compare(ctx),
              check=lambda ctx: _module("judge").check_compare(ctx)),
    StageSpec("plan", "what the run would cost: API dollars, GPU memory and hours, reuse",
              lambda ctx: _module("plan").run(ctx), plans=True),
]}
